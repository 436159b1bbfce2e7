"""The scorer interface every advisory scorer implements."""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Collection
from typing import ClassVar

from sqlalchemy.orm import Session

from healthos_core.errors import InvalidInputError
from reasoning.suggestion import Suggestion


def resolve_as_of(as_of: dt.datetime | None) -> dt.datetime:
    """Return the moment a scorer reads the record at, in UTC.

    Parameters
    ----------
    as_of : datetime, optional
        Aware moment; ``None`` means now.

    Raises
    ------
    InvalidInputError
        If ``as_of`` is not a datetime or is naive.
    """
    if as_of is None:
        return dt.datetime.now(dt.UTC)
    if not isinstance(as_of, dt.datetime):
        raise InvalidInputError(f"as_of must be an aware datetime, got {as_of!r}")
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise InvalidInputError(f"naive as_of {as_of.isoformat()} given: times must be aware")
    return as_of.astimezone(dt.UTC)


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

    def score_subjects(
        self, session: Session, subjects: Collection[str], *, as_of: dt.datetime | None = None
    ) -> list[Suggestion]:
        """Score only these subjects (the live path's rescoring of one encounter or claim).

        The default runs :meth:`score` over the whole record and keeps the suggestions
        about ``subjects``: always right, but as slow as a batch. Scorers whose subjects
        are encounters or claims override it to read only those.

        Parameters
        ----------
        session : sqlalchemy.orm.Session
            Read only.
        subjects : collection of str
            ``"Type/id"`` references (``"Encounter/12"``, ``"Claim/9"``); others of a
            type the scorer does not score give nothing.
        as_of : datetime, optional
            The moment the record is read at.

        Returns
        -------
        list of Suggestion
            The same suggestions :meth:`score` gives for these subjects.
        """
        wanted = set(subjects)
        if not wanted:
            return []
        return [s for s in self.score(session, as_of=as_of) if s.subject in wanted]


class EncounterScorer(Scorer):
    """A scorer whose subjects are encounters, read by one ``_score`` for all or some.

    Subclasses implement :meth:`_score` (``encounter_ids=None``: every encounter they
    score) and call it from :meth:`score`; :meth:`score_subjects` runs it for only the
    encounters among the subjects.
    """

    @abc.abstractmethod
    def _score(
        self, session: Session, *, as_of: dt.datetime | None, encounter_ids: list[str] | None
    ) -> list[Suggestion]:
        """Score the encounters with these ids (``None``: all of them)."""

    def score_subjects(
        self, session: Session, subjects: Collection[str], *, as_of: dt.datetime | None = None
    ) -> list[Suggestion]:
        """Score only the encounters among ``subjects`` (see :meth:`Scorer.score_subjects`)."""
        ids = subject_ids(subjects, "Encounter")
        return self._score(session, as_of=as_of, encounter_ids=ids) if ids else []


def subject_ids(subjects: Collection[str], type_name: str) -> list[str]:
    """Return the ids of the ``type_name`` references among ``subjects``, sorted.

    >>> subject_ids(["Encounter/2", "Claim/9", "Encounter/1"], "Encounter")
    ['1', '2']
    """
    prefix = f"{type_name}/"
    return sorted({s[len(prefix) :] for s in subjects if s.startswith(prefix)})
