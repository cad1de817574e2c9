"""The one clock: every timestamp the app stores or prints is UTC, with these helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator

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


def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or ValueError saying what to give instead."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'") from None


def _known_zone(name: str) -> str:
    zone_named(name)
    return name


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]  # a pydantic field: an IANA name, checked


def wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant of a naive local wall time in `zone`: its first occurrence if repeated (fall-back), the end of
    the gap if skipped (spring-forward: 02:30 is 03:00)."""
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap, fold=0 reads the wall time with the offset before it and fold=1 with the one after, so the
    # transition lies between those two readings: find it to the second.
    low, high = int(wall.replace(tzinfo=zone, fold=1).timestamp()), int(instant.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == first.utcoffset():
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)
