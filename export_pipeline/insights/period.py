"""The time an insight's chart covers, as people read it: a report that says "last week" while its charts span
six months misleads, so emails name the period the charts were computed for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

UTC_NAME = "UTC"


@dataclass(frozen=True)
class Period:
    """[start, end) as instants in UTC, as insight queries take `date_from` and `date_to`; `zone` (an IANA
    name) is the time zone it is read in: the insight's."""

    start: datetime
    end: datetime
    zone: str = UTC_NAME

    def __str__(self) -> str:
        """`1 May 2026 – 27 Oct 2026 (UTC)`, in the period's own zone: whole days name their last day (the end
        is exclusive); anything else shows its times."""
        zone = ZoneInfo(self.zone)
        start, end = self.start.astimezone(zone), self.end.astimezone(zone)
        if start.time() == time(0) and end.time() == time(0):
            first, last = start.date(), end.date() - timedelta(days=1)
            if first == last:
                return f"{_day(first)} ({self.zone})"
            return f"{_day(first)} – {_day(last)} ({self.zone})"
        return f"{_day(start)} {start:%H:%M} – {_day(end)} {end:%H:%M} ({self.zone})"


def covering(periods: Iterable[Period | None]) -> Period | None:
    """The span from the earliest start to the latest end, or None when no chart has a period. Read in the
    charts' zone when they share one, else in UTC."""
    known = [p for p in periods if p is not None]
    if not known:
        return None
    zones = {p.zone for p in known}
    return Period(min(p.start for p in known), max(p.end for p in known),
                  zones.pop() if len(zones) == 1 else UTC_NAME)


def _day(value) -> str:
    return f"{value.day} {value:%b %Y}"
