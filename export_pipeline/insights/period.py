"""The time an insight's chart covers, as people read it: a report that says "last week" while its charts span
six months misleads, so emails name the period the charts were computed for."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, as insight queries take `date_from` and `date_to`."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        """`1 May 2026 – 27 Oct 2026 (UTC)`: whole days name their last day (the end is exclusive); anything
        else shows its times."""
        if self.start.time() == time(0) and self.end.time() == time(0):
            first, last = self.start.date(), (self.end - timedelta(days=1)).date()
            if first == last:
                return f"{_day(first)} (UTC)"
            return f"{_day(first)} – {_day(last)} (UTC)"
        return f"{_day(self.start)} {self.start:%H:%M} – {_day(self.end)} {self.end:%H:%M} (UTC)"


def covering(periods: Iterable[Period | None]) -> Period | None:
    """The span from the earliest start to the latest end, or None when no chart has a period."""
    known = [p for p in periods if p is not None]
    if not known:
        return None
    return Period(min(p.start for p in known), max(p.end for p in known))


def _day(value) -> str:
    return f"{value.day} {value:%b %Y}"
