"""The date range of an insight: absolute (`date_from`, `date_to`: the same chart whenever it is drawn), or
relative to the moment it is drawn ("as of"), so that a weekly report shows the latest week every week.

Relative ranges, resolved in the insight's time zone (calendar days, weeks from Monday and months follow its
midnight across daylight-saving changes):

* `-Nh`, `-Nd`, `-Nw`, `-Nm`: the N whole hours, days, weeks or months before the current one, and the
  current one up to "as of" (its bucket is incomplete). `-7d` on Wednesday at 09:00 is the seven days before
  that Wednesday and the Wednesday until 09:00.
* `wtd`, `mtd`: this week (from Monday) and this month, up to "as of".
* `previous_week`, `previous_month`: the whole week or month before the current one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from export_pipeline.clock import as_utc, wall_to_utc
from export_pipeline.insights.period import Period

Unit = Literal["hour", "day", "week", "month"]
UNITS: dict[str, Unit] = {"h": "hour", "d": "day", "w": "week", "m": "month"}
# At most about ten years back (a year of hours): enough for any chart, and far from the end of time.
MAX_COUNT: dict[Unit, int] = {"hour": 24 * 366, "day": 3660, "week": 522, "month": 120}
TO_DATE: dict[str, Unit] = {"wtd": "week", "mtd": "month"}
PREVIOUS: dict[str, Unit] = {"previous_week": "week", "previous_month": "month"}
FORMS = "-N followed by h, d, w or m (e.g. -7d, -4w, -3m), wtd, mtd, previous_week or previous_month"


@dataclass(frozen=True)
class AbsoluteRange:
    """[start, end) as given: the same whenever it is drawn."""

    start: datetime
    end: datetime

    def resolve(self, as_of: datetime, zone: ZoneInfo) -> Period:
        return Period(as_utc(self.start), as_utc(self.end), zone.key)


@dataclass(frozen=True)
class RelativeRange:
    """`count` whole `unit`s before the current one and the current one up to "as of" (`to_date`), or only
    the `count` whole ones before it (`previous_week`, `previous_month`). `text` is how it is written."""

    text: str
    unit: Unit
    count: int
    to_date: bool

    @classmethod
    def parse(cls, text: str) -> RelativeRange:
        """ValueError naming the accepted forms when `text` is none of them."""
        written = text.strip().lower()
        if written in TO_DATE:
            return cls(written, TO_DATE[written], 0, True)
        if written in PREVIOUS:
            return cls(written, PREVIOUS[written], 1, False)
        match = re.fullmatch(r"-(\d{1,5})([hdwm])", written)
        if match is None:
            raise ValueError(f"date_range must be {FORMS}; got {text!r}")
        unit, count = UNITS[match[2]], int(match[1])
        if not 1 <= count <= MAX_COUNT[unit]:
            raise ValueError(f"date_range {text!r} must go back 1 to {MAX_COUNT[unit]} {unit}s")
        return cls(written, unit, count, True)

    def resolve(self, as_of: datetime, zone: ZoneInfo) -> Period:
        current = unit_start(self.unit, as_of, zone)
        start = units_after(self.unit, current, -self.count, zone)
        return Period(start, as_utc(as_of) if self.to_date else current, zone.key)


DateRange = AbsoluteRange | RelativeRange


def unit_start(unit: Unit, moment: datetime, zone: ZoneInfo) -> datetime:
    """The start, in UTC, of the hour, day, week (Monday) or month of `zone` that holds `moment`: what
    ClickHouse's `toStartOfHour`, `toStartOfDay`, `toMonday` and `toStartOfMonth` give in that zone."""
    local = as_utc(moment).astimezone(zone)
    if unit == "hour":
        # The hour holding `moment` exists, so its start is read with the same offset (and fold).
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    day = local.date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    elif unit == "month":
        day = day.replace(day=1)
    return _midnight(day, zone)


def units_after(unit: Unit, start: datetime, count: int, zone: ZoneInfo) -> datetime:
    """`count` units after `start` (a unit's start, in UTC; negative goes back), by the calendar of `zone`: a
    day is 23 or 25 hours across a daylight-saving change."""
    if unit == "hour":
        return start + timedelta(hours=count)
    day = start.astimezone(zone).date()
    day += relativedelta(months=count) if unit == "month" else timedelta(days=count * (7 if unit == "week" else 1))
    return _midnight(day, zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return wall_to_utc(datetime(day.year, day.month, day.day), zone)
