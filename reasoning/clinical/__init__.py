"""Clinical rule scores as pure functions: NEWS2 (RCP 2017) and qSOFA (Sepsis-3).

They take measurements and return results; they read and write nothing. The advisory
``Suggestion`` built on top of them lives elsewhere in :mod:`reasoning`.
"""

from reasoning.clinical.errors import IncompleteScoreError, InvalidScoreInputError
from reasoning.clinical.news2 import News2Result, news2, news2_partial
from reasoning.clinical.qsofa import QsofaResult, qsofa

__all__ = [
    "IncompleteScoreError",
    "InvalidScoreInputError",
    "News2Result",
    "QsofaResult",
    "news2",
    "news2_partial",
    "qsofa",
]
