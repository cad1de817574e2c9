"""The one clock: every timestamp the app stores or prints is UTC, with these helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

# The years a stored or queried moment may fall in: what both the app database and ClickHouse's DateTime64
# compare correctly.
FIRST_YEAR, LAST_YEAR = 1970, 2299


def now_utc() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything stored is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@overload
def iso_utc(moment: datetime) -> str: ...
@overload
def iso_utc(moment: None) -> None: ...
def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with `Z` (None stays None); naive datetimes are UTC."""
    return None if moment is None else as_utc(moment).isoformat().replace("+00:00", "Z")


def ch_time(moment: datetime) -> str:
    """A ClickHouse DateTime64(6) literal in UTC, for a bound parameter."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
