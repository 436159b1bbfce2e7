"""Clinical rule scores as pure functions.

NEWS2 (RCP 2017), qSOFA (Sepsis-3), SIRS (ACCP/SCCM 1992), LACE with the Charlson index
(van Walraven 2010) and KDIGO 2012 AKI staging from serum creatinine.

They take measurements and return results; they read and write nothing. The advisory
``Suggestion`` built on top of them lives elsewhere in :mod:`reasoning`.
"""

from reasoning.clinical.errors import IncompleteScoreError, InvalidScoreInputError
from reasoning.clinical.kdigo import KdigoResult, kdigo_aki
from reasoning.clinical.lace import LaceResult, charlson_conditions, charlson_index, lace
from reasoning.clinical.news2 import News2Result, news2, news2_partial
from reasoning.clinical.qsofa import QsofaResult, qsofa
from reasoning.clinical.sirs import SirsResult, sirs

__all__ = [
    "IncompleteScoreError",
    "InvalidScoreInputError",
    "KdigoResult",
    "LaceResult",
    "News2Result",
    "QsofaResult",
    "SirsResult",
    "charlson_conditions",
    "charlson_index",
    "kdigo_aki",
    "lace",
    "news2",
    "news2_partial",
    "qsofa",
    "sirs",
]
