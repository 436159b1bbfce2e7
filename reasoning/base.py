"""The scorer interface every advisory scorer implements."""

from __future__ import annotations

import abc
import datetime as dt
from typing import ClassVar

from sqlalchemy.orm import Session

from reasoning.suggestion import Suggestion


class Scorer(abc.ABC):
    """Reads the record and returns suggestions; never writes.

    Subclasses set ``name``, ``kind``, ``version`` and ``reference`` and implement
    :meth:`score`. ``__init__`` stores configuration only (scikit-learn estimator
    convention); ``score`` does no I/O beyond reading the session it is given.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    version: ClassVar[str]
    reference: ClassVar[str | None] = None

    @abc.abstractmethod
    def score(self, session: Session, *, as_of: dt.datetime | None = None) -> list[Suggestion]:
        """Score the record as of ``as_of`` (aware UTC; default now).

        Parameters
        ----------
        session : sqlalchemy.orm.Session
            Read-only use: a scorer never adds, changes or deletes rows.
        as_of : datetime, optional
            The moment the record is read at.

        Returns
        -------
        list of Suggestion
        """
