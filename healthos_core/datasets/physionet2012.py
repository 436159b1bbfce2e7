"""Reader for the PhysioNet/Computing in Cardiology Challenge 2012 ICU data.

Silva I, Moody G, Scott DJ, Celi LA, Mark RG. Predicting in-hospital mortality of ICU
patients: the PhysioNet/Computing in Cardiology Challenge 2012. *Comput Cardiol*
2012;39:245-248.

Expected layout of ``directory`` (as in ``../shared/data/physionet-2012-icu-mortality``)::

    set-a.tar.gz     set-a/<RecordID>.txt, one CSV per ICU stay
    set-b.tar.gz     set-b/<RecordID>.txt
    Outcomes-a.txt   RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death
    Outcomes-b.txt

Each record file has the header ``Time,Parameter,Value``. ``Time`` is ``hh:mm`` elapsed
since ICU admission (hours may exceed 23). The **descriptors** RecordID, Age, Gender,
Height, ICUType and Weight are given once each at ``00:00``; ``-1`` means unknown.

Descriptors vs measurements
---------------------------
Usually the six descriptor rows come first. But when a stay has measurements at
``00:00`` too, the ``00:00`` rows are sorted by parameter name after RecordID and Age, so
descriptors and measurements interleave (e.g. ``RecordID, Age, Gender, Height, HR,
ICUType, NIDiasABP, ..., Weight``). The rule used here is therefore: **among the rows at
00:00, the first row of each descriptor parameter is the descriptor**; every other row,
including a second ``Weight`` at 00:00 and every later ``Weight``, is a measurement.
(Weight is both a descriptor -- admission weight -- and a time series.)

Nothing is dropped or cleaned: every measurement row is kept exactly as written,
including implausible values such as 0 or -1. Flagging them is the job of whoever
imports or analyses the data. Only descriptor values of ``-1`` become ``None``.

The reader streams: each ``tar.gz`` is read sequentially and one stay at a time is
parsed and yielded; nothing is extracted to disk.
"""

from __future__ import annotations

import gzip
import math
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = [
    "DESCRIPTORS",
    "Measurement",
    "Outcome",
    "Stay",
    "iter_stays",
    "read_outcomes",
]

#: Descriptor parameters other than RecordID, in file order; keys of :attr:`Stay.descriptors`.
DESCRIPTORS: Final = ("Age", "Gender", "Height", "ICUType", "Weight")

_HEADER: Final = "Time,Parameter,Value"
_OUTCOMES_HEADER: Final = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"
_RECORD_NAME: Final = re.compile(r"(?:.*/)?(\d+)\.txt")
_SET_ARCHIVE: Final = re.compile(r"set-([A-Za-z0-9]+)\.tar\.gz")
_UNKNOWN: Final = -1.0


@dataclass(frozen=True, slots=True)
class Measurement:
    """One time-stamped row of a record file, kept as written.

    Parameters
    ----------
    minutes : int
        Minutes since ICU admission (``Time`` ``hh:mm`` as ``60 * hh + mm``).
    parameter : str
        The PhysioNet parameter name, e.g. ``"HR"``, ``"NISysABP"``, ``"GCS"``.
    value : float
        The value in the parameter's PhysioNet unit; may be implausible (0, -1, ...).
    """

    minutes: int
    parameter: str
    value: float


@dataclass(frozen=True, slots=True)
class Stay:
    """One ICU stay: its descriptors and all its time-stamped measurements.

    Parameters
    ----------
    record_id : str
        The PhysioNet RecordID, e.g. ``"132539"``.
    set_name : str
        The set it came from, e.g. ``"set-a"``.
    descriptors : dict of str to float or None
        Age (years), Gender (0 female, 1 male), Height (cm), ICUType (1 coronary care,
        2 cardiac surgery recovery, 3 medical, 4 surgical) and Weight (kg, on admission);
        ``None`` where the file says ``-1`` or the row is absent. Keys are
        :data:`DESCRIPTORS`.
    measurements : tuple of Measurement
        Every other row, in file order (which is time order).
    """

    record_id: str
    set_name: str
    descriptors: dict[str, float | None] = field(hash=False)
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The outcome row of one stay (``Outcomes-X.txt``).

    Parameters
    ----------
    record_id : str
        The PhysioNet RecordID.
    saps_i : int or None
        SAPS-I score (first 24 h); ``None`` where the file says -1.
    sofa : int or None
        SOFA score (first 24 h); ``None`` where the file says -1.
    length_of_stay : int or None
        Length of stay in days; ``None`` where the file says -1.
    survival : int or None
        Days from ICU admission to death; ``None`` (file: -1) when the patient is not
        known to have died.
    in_hospital_death : bool
        In-hospital death (file: 1) or survival to discharge (file: 0).
    """

    record_id: str
    saps_i: int | None
    sofa: int | None
    length_of_stay: int | None
    survival: int | None
    in_hospital_death: bool


def _existing_directory(directory: str | Path) -> Path:
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"PhysioNet 2012 data directory not found: {path}")
    return path


def _set_archives(directory: Path, sets: str | Iterable[str] | None) -> list[tuple[str, Path]]:
    if sets is None:
        found = sorted(
            (f"set-{m.group(1)}", p)
            for p in directory.iterdir()
            if (m := _SET_ARCHIVE.fullmatch(p.name)) and p.is_file()
        )
        if not found:
            raise FileNotFoundError(f"no set-*.tar.gz files in {directory}")
        return found
    if isinstance(sets, str):
        sets = [sets]
    archives = []
    for requested in sets:
        name = requested if requested.startswith("set-") else f"set-{requested}"
        path = directory / f"{name}.tar.gz"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (requested set {requested!r})")
        archives.append((name, path))
    return archives


def _parse_time(text: str) -> int:
    hours, sep, minutes = text.partition(":")
    if (
        not sep
        or not hours.isdigit()
        or len(minutes) != 2
        or not minutes.isdigit()
        or int(minutes) > 59
    ):
        raise ValueError(f"Time {text!r} is not hh:mm")
    return int(hours) * 60 + int(minutes)


def _parse_value(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"Value {text!r} is not a finite number")
    return value


def _parse_record(text: str, *, record_id: str, set_name: str, source: str) -> Stay:
    lines = text.splitlines()
    if not lines or lines[0].lstrip("\ufeff").strip() != _HEADER:
        first = lines[0] if lines else ""
        raise ValueError(f"{source} line 1: expected header {_HEADER!r}, got {first!r}")
    descriptors: dict[str, float | None] = dict.fromkeys(DESCRIPTORS)
    seen: set[str] = set()
    measurements: list[Measurement] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 3:
            raise ValueError(
                f"{source} line {number}: expected 3 fields Time,Parameter,Value, got {line!r}"
            )
        time_text, parameter, value_text = (part.strip() for part in parts)
        try:
            minutes = _parse_time(time_text)
            value = _parse_value(value_text)
        except ValueError as exc:
            raise ValueError(f"{source} line {number}: {exc}: {line!r}") from None
        if not parameter:
            raise ValueError(f"{source} line {number}: empty Parameter: {line!r}")
        if (
            minutes == 0
            and parameter not in seen
            and (parameter == "RecordID" or parameter in descriptors)
        ):
            seen.add(parameter)
            if parameter == "RecordID":
                if value != int(record_id):
                    raise ValueError(
                        f"{source} line {number}: RecordID {value_text} does not match "
                        f"the file name"
                    )
            else:
                descriptors[parameter] = None if value == _UNKNOWN else value
            continue
        measurements.append(Measurement(minutes, parameter, value))
    if "RecordID" not in seen:
        raise ValueError(f"{source}: no RecordID descriptor row at 00:00")
    return Stay(
        record_id=record_id,
        set_name=set_name,
        descriptors=descriptors,
        measurements=tuple(measurements),
    )


def _iter_archive(set_name: str, path: Path) -> Iterator[Stay]:
    try:
        with tarfile.open(path, mode="r|gz") as archive:
            for member in archive:
                match = _RECORD_NAME.fullmatch(member.name)
                if not member.isfile() or match is None:
                    continue
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - isfile() members always have data
                    continue
                source = f"{path.name}:{member.name}"
                try:
                    text = handle.read().decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{source}: not UTF-8 text ({exc})") from None
                yield _parse_record(
                    text, record_id=str(int(match.group(1))), set_name=set_name, source=source
                )
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{path}: not a readable tar.gz archive ({exc})") from exc


def iter_stays(
    directory: str | Path,
    *,
    sets: str | Iterable[str] | None = None,
    limit: int | None = None,
) -> Iterator[Stay]:
    """Stream the ICU stays of the PhysioNet 2012 ``set-*.tar.gz`` archives.

    The archives are read sequentially, one member at a time, and never extracted to
    disk; only the stay being yielded is held in memory.

    Parameters
    ----------
    directory : str or Path
        The dataset directory holding ``set-a.tar.gz``, ``set-b.tar.gz``, ...
    sets : str or iterable of str, optional
        The set(s) to read, in that order, as ``"set-a"`` or ``"a"``. Default: every
        ``set-*.tar.gz`` in ``directory``, sorted by name.
    limit : int, optional
        Stop after this many stays in total (across sets). Default: all.

    Returns
    -------
    Iterator of Stay
        One stay per ``set-X/<RecordID>.txt`` member, in archive order. Members that
        are not record files (directories, other names) are ignored.

    Raises
    ------
    FileNotFoundError
        If ``directory`` does not exist, holds no ``set-*.tar.gz``, or a requested set's
        archive is missing. These are raised by the call itself, before iterating.
    ValueError
        If ``limit`` is negative, an archive is not a readable tar.gz, or a record file
        is malformed (wrong header, not three fields, bad ``hh:mm`` time, non-numeric
        value, RecordID missing or not matching the file name); the message names the
        archive, the member and the line number.

    Examples
    --------
    With the shared data beside the repository::

        data = Path("../shared/data/physionet-2012-icu-mortality")
        stay = next(iter_stays(data, sets=["a"], limit=1))
        stay.record_id  # '132539'
        stay.descriptors  # {'Age': 54.0, 'Gender': 0.0, 'Height': None, 'ICUType': 4.0, ...}
        stay.measurements[0]  # Measurement(minutes=7, parameter='GCS', value=15.0)
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    root = _existing_directory(directory)
    return _iter_archives(_set_archives(root, sets), limit)


def _iter_archives(archives: list[tuple[str, Path]], limit: int | None) -> Iterator[Stay]:
    remaining = limit
    for set_name, path in archives:
        if remaining == 0:
            return
        for stay in _iter_archive(set_name, path):
            yield stay
            if remaining is not None:
                remaining -= 1
                if remaining == 0:
                    return


def _outcome_int(text: str) -> int | None:
    number = int(text)
    return None if number == -1 else number


def read_outcomes(directory: str | Path) -> dict[str, Outcome]:
    """Read every ``Outcomes-*.txt`` file of the dataset directory.

    Parameters
    ----------
    directory : str or Path
        The dataset directory holding ``Outcomes-a.txt``, ``Outcomes-b.txt``, ...

    Returns
    -------
    dict of str to Outcome
        Outcomes keyed by RecordID, over all files.

    Raises
    ------
    FileNotFoundError
        If ``directory`` does not exist or holds no ``Outcomes-*.txt``.
    ValueError
        If a file has the wrong header, a line does not have six integer fields,
        ``In-hospital_death`` is not 0 or 1, or a RecordID appears twice; the message
        names the file and the line number.

    Examples
    --------
    With the shared data beside the repository::

        outcomes = read_outcomes("../shared/data/physionet-2012-icu-mortality")
        outcomes["132539"]
        # Outcome(record_id='132539', saps_i=6, sofa=1, length_of_stay=5, survival=None,
        #         in_hospital_death=False)
    """
    root = _existing_directory(directory)
    files = sorted(p for p in root.glob("Outcomes-*.txt") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no Outcomes-*.txt files in {root}")
    outcomes: dict[str, Outcome] = {}
    for path in files:
        with path.open(encoding="utf-8") as handle:
            header = handle.readline().lstrip("\ufeff").strip()
            if header != _OUTCOMES_HEADER:
                raise ValueError(
                    f"{path} line 1: expected header {_OUTCOMES_HEADER!r}, got {header!r}"
                )
            for number, line in enumerate(handle, start=2):
                if not line.strip():
                    continue
                fields = [part.strip() for part in line.split(",")]
                try:
                    if len(fields) != 6:
                        raise ValueError(f"expected 6 fields, got {len(fields)}")
                    record_id = str(int(fields[0]))
                    death = int(fields[5])
                    if death not in (0, 1):
                        raise ValueError(f"In-hospital_death must be 0 or 1, got {death}")
                    outcome = Outcome(
                        record_id=record_id,
                        saps_i=_outcome_int(fields[1]),
                        sofa=_outcome_int(fields[2]),
                        length_of_stay=_outcome_int(fields[3]),
                        survival=_outcome_int(fields[4]),
                        in_hospital_death=bool(death),
                    )
                except ValueError as exc:
                    raise ValueError(f"{path} line {number}: {exc}: {line.rstrip()!r}") from None
                if record_id in outcomes:
                    raise ValueError(f"{path} line {number}: RecordID {record_id} appears twice")
                outcomes[record_id] = outcome
    return outcomes
