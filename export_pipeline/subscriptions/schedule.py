"""When a subscription sends: a daily / weekly / monthly schedule in an IANA time zone, stored as RFC 5545 text.

The recurrence is expanded in naive local wall time and each slot converted to UTC here, because dateutil's
arithmetic on aware datetimes goes wrong across DST changes. DST rules:

* the wall-clock time is kept: 09:00 Europe/Berlin is 08:00Z in winter and 07:00Z in summer;
* a wall time skipped by spring-forward is sent at the first instant after the gap (02:30 -> 03:00);
* a wall time repeated by fall-back is sent once, at its first occurrence (as RFC 5545 §3.3.5 reads it).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import pydantic
from dateutil import rrule as du
from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from export_pipeline.clock import TimeZoneName, as_utc, wall_to_utc
from export_pipeline.errors import InvalidRequest, invalid_fields

Weekday = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
WEEKDAYS: tuple[Weekday, ...] = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_FREQUENCIES = {"daily": du.DAILY, "weekly": du.WEEKLY, "monthly": du.MONTHLY}
_UNITS = {"daily": "day", "weekly": "week", "monthly": "month"}


class Schedule(BaseModel):
    """A validated schedule. Validation fills every default (start, weekdays, day_of_month), so it round-trips
    through `to_rrule` / `schedule_from_rrule` exactly. `start` and `until` are aware, in `timezone`."""

    model_config = ConfigDict(extra="forbid")

    frequency: Literal["daily", "weekly", "monthly"]
    interval: int = Field(1, ge=1, le=52)
    weekdays: list[Weekday] | None = None
    day_of_month: int | None = Field(None, ge=1, le=31)
    hour: int = Field(9, ge=0, le=23)
    minute: int = Field(0, ge=0, le=59)
    timezone: TimeZoneName = "UTC"
    start: datetime | None = Field(None, validate_default=True)
    until: datetime | None = None

    @field_validator("weekdays", "day_of_month")
    @classmethod
    def _check_frequency(cls, value: list[Weekday] | int | None, info: pydantic.ValidationInfo) -> object:
        wanted = "weekly" if info.field_name == "weekdays" else "monthly"
        if value is None:
            return None
        if info.data.get("frequency", wanted) != wanted:
            raise ValueError(f"{info.field_name} is only for a {wanted} schedule; remove it or use frequency {wanted!r}")
        if isinstance(value, list):
            if not value:
                raise ValueError("pick at least one weekday (MO..SU), or leave weekdays out to use the start's weekday")
            return sorted(set(value), key=WEEKDAYS.index)  # canonical order, so the rrule text is deterministic
        return value

    @field_validator("start")
    @classmethod
    def _check_start(cls, value: datetime | None, info: pydantic.ValidationInfo) -> datetime | None:
        if "timezone" not in info.data:
            return value  # the time zone is invalid and already reported
        zone = ZoneInfo(info.data["timezone"])
        # DTSTART holds a wall time, so a start in a repeated hour means that hour's first occurrence.
        return _in_zone(_in_zone(value or datetime.now(UTC), zone).replace(tzinfo=None), zone)

    @field_validator("until")
    @classmethod
    def _check_until(cls, value: datetime | None, info: pydantic.ValidationInfo) -> datetime | None:
        if value is None or "timezone" not in info.data:
            return value
        until, start = _in_zone(value, ZoneInfo(info.data["timezone"])), info.data.get("start")
        if start is not None and until.timestamp() < start.timestamp():
            raise ValueError(f"until ({until:%Y-%m-%d %H:%M}) is before start ({start:%Y-%m-%d %H:%M}); "
                             "choose a later end or leave until out")
        return until

    @model_validator(mode="after")
    def _fill_defaults(self) -> Schedule:
        assert self.start is not None  # set by _check_start
        if self.frequency == "weekly" and self.weekdays is None:
            self.weekdays = [WEEKDAYS[self.start.weekday()]]
        if self.frequency == "monthly" and self.day_of_month is None:
            self.day_of_month = self.start.day
        return self


@dataclass(frozen=True)
class DueSlots:
    """`send` is the latest due slot; `skipped` the older due ones (most recent `max_skipped`), oldest first."""

    send: datetime | None
    skipped: list[datetime]


def parse_schedule(raw: Mapping[str, object]) -> Schedule:
    """A validated schedule, or InvalidRequest with one message per invalid field."""
    try:
        return Schedule.model_validate(raw)
    except pydantic.ValidationError as error:
        raise invalid_fields(error, "schedule", default="schedule") from None


def to_rrule(schedule: Schedule) -> str:
    """RFC 5545 DTSTART + RRULE lines; the same schedule always gives the same text."""
    assert schedule.start is not None
    parts = [f"FREQ={schedule.frequency.upper()}", f"INTERVAL={schedule.interval}"]
    if schedule.weekdays:
        parts.append("BYDAY=" + ",".join(schedule.weekdays))
    if schedule.day_of_month is not None:
        days, position = _month_days(schedule.day_of_month)
        parts.append("BYMONTHDAY=" + ",".join(map(str, days)) + (f";BYSETPOS={position}" if position else ""))
    parts += [f"BYHOUR={schedule.hour}", f"BYMINUTE={schedule.minute}", "BYSECOND=0"]
    if schedule.until is not None:
        parts.append(f"UNTIL={_stamp(schedule.until.astimezone(UTC))}Z")  # RFC 5545: UTC when DTSTART has a TZID
    return f"DTSTART;TZID={schedule.timezone}:{_stamp(schedule.start)}\nRRULE:" + ";".join(parts)


def schedule_from_rrule(text: str) -> Schedule:
    """The schedule `to_rrule` wrote; InvalidRequest for text it cannot have written."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    try:
        if len(lines) != 2 or not lines[0].startswith("DTSTART") or not lines[1].startswith("RRULE:"):
            raise ValueError("expected a DTSTART line followed by an RRULE line")
        head, _, stamp = lines[0].partition(":")
        if not head.startswith("DTSTART;TZID="):
            raise ValueError(f"unsupported {head!r}; use DTSTART;TZID=<IANA zone>:YYYYMMDDTHHMMSS")
        pairs = [part.partition("=")[::2] for part in lines[1].removeprefix("RRULE:").split(";")]
        parts = dict(pairs)
        if len(parts) != len(pairs):
            raise ValueError("a rule part is repeated")
        raw: dict[str, object] = {"frequency": parts.pop("FREQ").lower(), "start": _parse_stamp(stamp),
                                  "timezone": head.removeprefix("DTSTART;TZID="),
                                  "hour": int(parts.pop("BYHOUR")), "minute": int(parts.pop("BYMINUTE")),
                                  "interval": int(parts.pop("INTERVAL", "1"))}
        if parts.pop("BYSECOND", "0") != "0":
            raise ValueError("BYSECOND must be 0")
        if "BYDAY" in parts:
            raw["weekdays"] = parts.pop("BYDAY").split(",")
        if "BYMONTHDAY" in parts:
            days = [int(day) for day in parts.pop("BYMONTHDAY").split(",")]
            position = int(parts.pop("BYSETPOS")) if "BYSETPOS" in parts else None
            if (days, position) != _month_days(days[-1]):
                raise ValueError("BYMONTHDAY must be one day 1..28, or 28,...,N with BYSETPOS=-1 (day N or the last day)")
            raw["day_of_month"] = days[-1]
        if "UNTIL" in parts:
            until = parts.pop("UNTIL")
            if not until.endswith("Z"):
                raise ValueError("UNTIL must be in UTC (YYYYMMDDTHHMMSSZ)")
            raw["until"] = _parse_stamp(until[:-1]).replace(tzinfo=UTC)
        if parts:
            raise ValueError("unsupported rule parts: " + ", ".join(sorted(parts)))
    except (KeyError, ValueError) as error:
        reason = f"missing {error.args[0]}" if isinstance(error, KeyError) else str(error)
        raise InvalidRequest(f"Invalid schedule rule: {reason}.", details={"rrule": reason}) from None
    return parse_schedule(raw)


def describe(schedule: Schedule) -> str:
    """Human text, e.g. "Every week on Monday at 09:00 (Europe/Berlin)"."""
    unit = _UNITS[schedule.frequency]
    text = f"Every {unit}" if schedule.interval == 1 else f"Every {schedule.interval} {unit}s"
    if schedule.weekdays:
        names = [_DAY_NAMES[WEEKDAYS.index(day)] for day in schedule.weekdays]
        text += " on " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])
    if schedule.day_of_month is not None:
        text += f" on day {schedule.day_of_month}" + (" (or the month's last day)" if schedule.day_of_month > 28 else "")
    text += f" at {schedule.hour:02d}:{schedule.minute:02d} ({schedule.timezone})"
    return text + (f", until {schedule.until:%Y-%m-%d %H:%M}" if schedule.until else "")


def occurrences(rrule_text: str, *, after: datetime, until: datetime) -> Iterator[datetime]:
    """Slots as aware UTC datetimes with `after < slot <= until`, in order, computed lazily. Naive = UTC."""
    end = as_utc(until)
    return itertools.takewhile(lambda slot: slot <= end, _slots(schedule_from_rrule(rrule_text), as_utc(after)))


def next_slot(rrule_text: str, after: datetime) -> datetime | None:
    """The first slot after `after`, or None when the rule has ended."""
    return next(_slots(schedule_from_rrule(rrule_text), as_utc(after)), None)


def due_slots(rrule_text: str, *, last_slot: datetime | None, not_before: datetime, now: datetime,
              max_skipped: int = 1000) -> DueSlots:
    """Slots in (last_slot, now] and not before `not_before`: the latest is sent, the older ones skipped."""
    if max_skipped < 0:
        raise ValueError("max_skipped must be >= 0")
    floor = as_utc(not_before) - timedelta(microseconds=1)  # a slot exactly at not_before is due
    if last_slot is not None:
        floor = max(floor, as_utc(last_slot))
    # Bounded: after a long outage only the most recent slots are kept.
    recent = deque(occurrences(rrule_text, after=floor, until=now), maxlen=max_skipped + 1)
    if not recent:
        return DueSlots(None, [])
    send = recent.pop()
    return DueSlots(send, list(recent))


def _slots(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    assert schedule.start is not None
    zone = ZoneInfo(schedule.timezone)
    # Margin for the local/UTC difference (and a skipped day): everything dropped here is before `after`.
    target = (after.astimezone(zone) - timedelta(days=2)).replace(tzinfo=None)
    days, position = _month_days(schedule.day_of_month) if schedule.day_of_month else (None, None)
    rule = du.rrule(_FREQUENCIES[schedule.frequency], dtstart=_fast_forward(schedule, target),
                    interval=schedule.interval, byweekday=[WEEKDAYS.index(d) for d in schedule.weekdays or []] or None,
                    bymonthday=days, bysetpos=position, byhour=schedule.hour, byminute=schedule.minute, bysecond=0,
                    cache=False)
    last = schedule.until.astimezone(UTC) if schedule.until else None
    for wall in rule:
        slot = wall_to_utc(wall, zone)
        if last is not None and slot > last:
            return
        if slot > after:
            yield slot


def _fast_forward(schedule: Schedule, target: datetime) -> datetime:
    """A dtstart whole intervals after the start (so in phase with it) but not after `target`: skips past slots."""
    assert schedule.start is not None
    start = schedule.start.replace(tzinfo=None)
    if schedule.frequency == "monthly":
        periods = ((target.year - start.year) * 12 + target.month - start.month) // schedule.interval
        first_day = datetime(start.year, start.month, 1)
        return first_day + relativedelta(months=periods * schedule.interval) if periods > 0 else start
    step = schedule.interval * (1 if schedule.frequency == "daily" else 7)
    periods = (target.date() - start.date()).days // step
    return datetime.combine(start.date() + timedelta(days=periods * step), time()) if periods > 0 else start


def _in_zone(value: datetime, zone: ZoneInfo) -> datetime:
    """`value` as an aware datetime in `zone`, whole seconds; a naive value is a wall time there."""
    if not 1970 <= value.year <= 9000:
        raise ValueError(f"{value:%Y-%m-%d} is out of range; use a date between 1970 and 9000")
    value = value.replace(microsecond=0)
    return wall_to_utc(value, zone).astimezone(zone) if value.tzinfo is None else value.astimezone(zone)


def _month_days(day: int) -> tuple[list[int], int | None]:
    """BYMONTHDAY (and BYSETPOS) for a day of month: 31 -> 28,29,30,31 with the last one a month has."""
    return ([day], None) if day <= 28 else (list(range(28, day + 1)), -1)


def _stamp(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat().replace("-", "").replace(":", "")


def _parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%S")  # its error names the expected form

