"""Intervals [start, end) of ingestion time, cut in a destination's time zone (days and weeks follow its
midnight, across daylight-saving changes); every instant is in UTC."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

LABEL = "%Y%m%dT%H%M%SZ"
# The hourly time dimension of the Dagster asset names an interval by its start hour in UTC.
PARTITION_FORMAT = "%Y-%m-%d-%H:%M"


class IntervalUnit(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


@dataclass(frozen=True)
class Interval:
    unit: IntervalUnit
    start: datetime
    end: datetime
    zone: ZoneInfo

    @classmethod
    def containing(cls, unit: IntervalUnit, moment: datetime, zone: ZoneInfo) -> Interval:
        local = moment.astimezone(zone)
        if unit is IntervalUnit.HOUR:
            # Whole-hour zones only (validated), so local and UTC hours start together.
            start = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            return cls(unit, start, start + timedelta(hours=1), zone)
        day = local.date() - timedelta(days=local.weekday() if unit is IntervalUnit.WEEK else 0)
        length = 7 if unit is IntervalUnit.WEEK else 1
        return cls(unit, _midnight(day, zone), _midnight(day + timedelta(days=length), zone), zone)

    @property
    def next(self) -> Interval:
        return Interval.containing(self.unit, self.end, self.zone)

    @property
    def start_label(self) -> str:
        return self.start.strftime(LABEL)

    @property
    def end_label(self) -> str:
        return self.end.strftime(LABEL)

    @property
    def label(self) -> str:
        return f"{self.start_label}-{self.end_label}"

    @property
    def partition_key(self) -> str:
        return self.start.strftime(PARTITION_FORMAT)


def _midnight(day, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def intervals_between(unit: IntervalUnit, zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[Interval]:
    """The intervals starting in [start, end), in order."""
    interval = Interval.containing(unit, start, zone)
    if interval.start < start:
        interval = interval.next
    while interval.start < end:
        yield interval
        interval = interval.next


def parse_partition_key(key: str) -> datetime:
    return datetime.strptime(key, PARTITION_FORMAT).replace(tzinfo=UTC)
