"""The one "as of" rule (:func:`healthos_core.fhir.refs.parse_as_of`) the CLI and API share."""

from __future__ import annotations

import datetime as dt

import pytest

from healthos_core.errors import InvalidInputError
from healthos_core.fhir.refs import parse_as_of

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-07-31", dt.datetime(2021, 7, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2021-07-31T12:00:00Z", dt.datetime(2021, 7, 31, 12, tzinfo=UTC)),
        ("2021-07-31t12:00:00z", dt.datetime(2021, 7, 31, 12, tzinfo=UTC)),
        ("2021-07-31T14:30:00.25+02:00", dt.datetime(2021, 7, 31, 12, 30, 0, 250000, tzinfo=UTC)),
        ("2021-07-31T23:00:00-05:00", dt.datetime(2021, 8, 1, 4, tzinfo=UTC)),
        ("2021-07-31T12:00:00.1234567Z", dt.datetime(2021, 7, 31, 12, 0, 0, 123456, tzinfo=UTC)),
        ("9999-12-31", dt.datetime.max.replace(tzinfo=UTC)),
        ("1900-01-01T00:00:00Z", dt.datetime(1900, 1, 1, tzinfo=UTC)),
    ],
)
def test_iso_date_is_its_end_and_aware_date_time_is_utc(text: str, expected: dt.datetime) -> None:
    parsed = parse_as_of(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.0", "not an ISO 8601 date"),
        ("1700000000", "not an ISO 8601 date"),
        ("", "not an ISO 8601 date"),
        ("2021-07", "not an ISO 8601 date"),
        ("20210731", "not an ISO 8601 date"),
        ("2021-W30-6", "not an ISO 8601 date"),
        ("2021-07-31T12:00Z", "not an ISO 8601 date"),  # RFC 3339 needs the seconds
        ("2021-07-31 12:00:00Z", "not an ISO 8601 date"),
        ("2021-02-30", "not a calendar date"),
        ("2021-07-31T25:00:00Z", "not a calendar date"),
        ("2021-07-31T12:00:00", "has no time zone"),
        ("0001-01-01T00:30:00+01:00", "out of range"),
        ("9999-12-31T23:00:00-05:00", "out of range"),
        ("1899-12-31", "out of range: before 1900-01-01"),
        ("1900-01-01T00:30:00+01:00", "out of range: before 1900-01-01"),
    ],
)
def test_anything_else_is_refused_naming_the_parameter(text: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason) as caught:
        parse_as_of(text, name="--as-of")
    assert str(caught.value).startswith("--as-of ")
