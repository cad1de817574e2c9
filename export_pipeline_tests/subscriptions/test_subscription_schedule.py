"""Subscription schedules: rrule text, DST and time zones, due slots after downtime, invalid input."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from export_pipeline.errors import InvalidRequest
from export_pipeline.subscriptions.schedule import (
    WEEKDAYS,
    DueSlots,
    Schedule,
    describe,
    due_slots,
    next_slot,
    occurrences,
    parse_schedule,
    schedule_from_rrule,
    to_rrule,
)

# No example database: it would be written into the working tree.
FAST = settings(max_examples=100, deadline=None, database=None)


def z(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def slots(after: datetime, until: datetime, **schedule: object) -> list[datetime]:
    return list(occurrences(to_rrule(Schedule(**schedule)), after=after, until=until))


# --- time zones and DST -------------------------------------------------------------------------------


def test_weekly_monday_berlin_keeps_nine_oclock_across_both_dst_changes() -> None:
    schedule = Schedule(frequency="weekly", weekdays=["MO"], hour=9, timezone="Europe/Berlin",
                        start=datetime(2026, 3, 1))
    text = to_rrule(schedule)
    assert text == ("DTSTART;TZID=Europe/Berlin:20260301T000000\n"
                    "RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0")
    assert describe(schedule) == "Every week on Monday at 09:00 (Europe/Berlin)"
    # CET (+01:00) until Sunday 29 March 2026, CEST (+02:00) until Sunday 25 October 2026.
    assert list(occurrences(text, after=z(2026, 3, 1), until=z(2026, 4, 7))) == [
        z(2026, 3, 2, 8), z(2026, 3, 9, 8), z(2026, 3, 16, 8), z(2026, 3, 23, 8), z(2026, 3, 30, 7), z(2026, 4, 6, 7)]
    assert list(occurrences(text, after=z(2026, 10, 12), until=z(2026, 11, 3))) == [
        z(2026, 10, 12, 7), z(2026, 10, 19, 7), z(2026, 10, 26, 8), z(2026, 11, 2, 8)]


def test_new_york_changes_on_its_own_dates() -> None:
    # US DST 2026: Sunday 8 March to Sunday 1 November, while Berlin is still on winter time until 29 March.
    weekly = dict(frequency="weekly", weekdays=["MO"], hour=9, start=datetime(2026, 3, 1))
    assert slots(z(2026, 3, 1), z(2026, 3, 17), timezone="America/New_York", **weekly) == [
        z(2026, 3, 2, 14), z(2026, 3, 9, 13), z(2026, 3, 16, 13)]
    assert slots(z(2026, 3, 1), z(2026, 3, 17), timezone="Europe/Berlin", **weekly) == [
        z(2026, 3, 2, 8), z(2026, 3, 9, 8), z(2026, 3, 16, 8)]
    assert slots(z(2026, 10, 19), z(2026, 11, 10), timezone="America/New_York", **weekly) == [
        z(2026, 10, 19, 13), z(2026, 10, 26, 13), z(2026, 11, 2, 14), z(2026, 11, 9, 14)]
    daily = dict(frequency="daily", hour=9, timezone="America/New_York", start=datetime(2026, 1, 1))
    assert slots(z(2026, 3, 7), z(2026, 3, 9, 23), **daily) == [z(2026, 3, 7, 14), z(2026, 3, 8, 13), z(2026, 3, 9, 13)]
    assert slots(z(2026, 10, 31), z(2026, 11, 2, 23), **daily) == [
        z(2026, 10, 31, 13), z(2026, 11, 1, 14), z(2026, 11, 2, 14)]


def test_sydney_summer_time_is_the_other_way_round() -> None:
    # AEDT (+11:00) ends Sunday 5 April 2026, AEST (+10:00) ends Sunday 4 October 2026.
    daily = dict(frequency="daily", hour=9, timezone="Australia/Sydney", start=datetime(2026, 1, 1))
    assert slots(z(2026, 4, 2), z(2026, 4, 6), **daily) == [
        z(2026, 4, 2, 22), z(2026, 4, 3, 22), z(2026, 4, 4, 23), z(2026, 4, 5, 23)]
    assert slots(z(2026, 10, 1), z(2026, 10, 5), **daily) == [
        z(2026, 10, 1, 23), z(2026, 10, 2, 23), z(2026, 10, 3, 22), z(2026, 10, 4, 22)]


def test_kolkata_half_hour_offset_and_utc_every_two_days() -> None:
    kolkata = slots(z(2026, 3, 27), z(2026, 3, 31), frequency="daily", hour=9, timezone="Asia/Kolkata",
                    start=datetime(2026, 1, 1))
    assert kolkata == [z(2026, 3, 27, 3, 30), z(2026, 3, 28, 3, 30), z(2026, 3, 29, 3, 30), z(2026, 3, 30, 3, 30)]
    schedule = Schedule(frequency="daily", interval=2, hour=18, minute=30, start=datetime(2026, 1, 1))
    assert describe(schedule) == "Every 2 days at 18:30 (UTC)"
    assert list(occurrences(to_rrule(schedule), after=z(2025, 12, 1), until=z(2026, 1, 7))) == [
        z(2026, 1, 1, 18, 30), z(2026, 1, 3, 18, 30), z(2026, 1, 5, 18, 30)]


def test_wall_time_in_the_spring_forward_gap_is_sent_when_the_gap_ends() -> None:
    berlin = dict(frequency="daily", hour=2, minute=30, timezone="Europe/Berlin", start=datetime(2026, 1, 1))
    march = slots(z(2026, 3, 28), z(2026, 3, 31), **berlin)
    # 02:30 does not exist on 29 March: sent at 03:00 CEST = 01:00Z.
    assert march == [z(2026, 3, 28, 1, 30), z(2026, 3, 29, 1), z(2026, 3, 30, 0, 30)]
    assert march[1].astimezone(ZoneInfo("Europe/Berlin")).time() == time(3, 0)
    new_york = slots(z(2026, 3, 8), z(2026, 3, 9), frequency="daily", hour=2, minute=30,
                     timezone="America/New_York", start=datetime(2026, 1, 1))
    assert new_york == [z(2026, 3, 8, 7)]  # 03:00 EDT
    # Lord Howe moves 30 minutes (02:00 -> 02:30, +10:30 -> +11:00) on 4 October 2026.
    lord_howe = slots(z(2026, 10, 2), z(2026, 10, 5), frequency="daily", hour=2, minute=15,
                      timezone="Australia/Lord_Howe", start=datetime(2026, 1, 1))
    assert lord_howe == [z(2026, 10, 2, 15, 45), z(2026, 10, 3, 15, 30), z(2026, 10, 4, 15, 15)]


def test_repeated_wall_time_on_fall_back_day_is_sent_once_at_its_first_occurrence() -> None:
    berlin = slots(z(2026, 10, 23, 12), z(2026, 10, 27), frequency="daily", hour=2, minute=30,
                   timezone="Europe/Berlin", start=datetime(2026, 1, 1))
    # 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET) on 25 October; only the first counts.
    assert berlin == [z(2026, 10, 24, 0, 30), z(2026, 10, 25, 0, 30), z(2026, 10, 26, 1, 30)]
    new_york = slots(z(2026, 10, 31, 12), z(2026, 11, 2, 12), frequency="daily", hour=1, minute=30,
                     timezone="America/New_York", start=datetime(2026, 1, 1))
    assert new_york == [z(2026, 11, 1, 5, 30), z(2026, 11, 2, 6, 30)]


# --- monthly, intervals, until ------------------------------------------------------------------------


def test_day_31_falls_back_to_the_months_last_day() -> None:
    schedule = Schedule(frequency="monthly", day_of_month=31, start=datetime(2027, 1, 1))
    text = to_rrule(schedule)
    assert "BYMONTHDAY=28,29,30,31;BYSETPOS=-1" in text
    assert describe(schedule) == "Every month on day 31 (or the month's last day) at 09:00 (UTC)"
    days = [slot.date().isoformat() for slot in occurrences(text, after=z(2027, 1, 1), until=z(2028, 5, 1))]
    assert days[:4] == ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]
    assert days[12:] == ["2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30"]
    # The rrule text alone carries the rule: a plain RFC 5545 reader gets the same days.
    assert [d.date().isoformat() for d in rrulestr(text).between(z(2027, 1, 1), z(2028, 5, 1))] == days


@pytest.mark.parametrize(("day", "february_2027", "february_2028", "april"), [
    (29, "2027-02-28", "2028-02-29", "2027-04-29"),
    (30, "2027-02-28", "2028-02-29", "2027-04-30"),
    (15, "2027-02-15", "2028-02-15", "2027-04-15"),
])
def test_other_days_of_month(day: int, february_2027: str, february_2028: str, april: str) -> None:
    text = to_rrule(Schedule(frequency="monthly", day_of_month=day, start=datetime(2027, 1, 1)))
    days = {slot.date().isoformat() for slot in occurrences(text, after=z(2027, 1, 1), until=z(2028, 3, 1))}
    assert {february_2027, february_2028, april} <= days
    assert len(days) == 14


def test_every_two_weeks_on_two_weekdays() -> None:
    schedule = Schedule(frequency="weekly", interval=2, weekdays=["TH", "MO", "TH"], timezone="Europe/Berlin",
                        start=datetime(2026, 1, 7))  # a Wednesday: that week's Monday has passed
    assert schedule.weekdays == ["MO", "TH"]
    assert describe(schedule) == "Every 2 weeks on Monday and Thursday at 09:00 (Europe/Berlin)"
    assert list(occurrences(to_rrule(schedule), after=z(2026, 1, 1), until=z(2026, 2, 9))) == [
        z(2026, 1, 8, 8), z(2026, 1, 19, 8), z(2026, 1, 22, 8), z(2026, 2, 2, 8), z(2026, 2, 5, 8)]


def test_until_is_inclusive() -> None:
    daily = dict(frequency="daily", timezone="Europe/Berlin", start=datetime(2026, 1, 1))
    text = to_rrule(Schedule(until=datetime(2026, 1, 3, 9), **daily))
    assert text.endswith(";UNTIL=20260103T080000Z")
    assert list(occurrences(text, after=z(2025, 1, 1), until=z(2027, 1, 1))) == [
        z(2026, 1, 1, 8), z(2026, 1, 2, 8), z(2026, 1, 3, 8)]
    assert next_slot(text, z(2026, 1, 3, 8)) is None
    cut = to_rrule(Schedule(until=datetime(2026, 1, 3, 8, 59, 59), **daily))
    assert list(occurrences(cut, after=z(2025, 1, 1), until=z(2027, 1, 1))) == [z(2026, 1, 1, 8), z(2026, 1, 2, 8)]
    # The window: after is exclusive, until inclusive.
    open_ended = to_rrule(Schedule(**daily))
    assert list(occurrences(open_ended, after=z(2026, 1, 1, 8), until=z(2026, 1, 3, 8))) == [
        z(2026, 1, 2, 8), z(2026, 1, 3, 8)]
    assert list(occurrences(open_ended, after=z(2026, 1, 1, 8), until=z(2026, 1, 3, 7, 59, 59))) == [z(2026, 1, 2, 8)]
    assert next_slot(open_ended, z(2026, 1, 1, 8)) == z(2026, 1, 2, 8)
    assert next_slot(open_ended, z(2040, 6, 1)) == z(2040, 6, 1, 7)  # far after the start, in summer time


def test_defaults_come_from_start_and_are_written_into_the_rule() -> None:
    weekly = Schedule(frequency="weekly", timezone="Europe/Berlin", start=datetime(2026, 11, 26, 13, 5))
    assert weekly.weekdays == ["TH"]
    assert weekly.start == datetime(2026, 11, 26, 13, 5, tzinfo=ZoneInfo("Europe/Berlin"))
    assert Schedule(frequency="monthly", start=datetime(2026, 11, 26)).day_of_month == 26
    # An aware start is the same instant, written as wall time in the schedule's zone.
    aware = Schedule(frequency="daily", timezone="Asia/Kolkata", start=z(2026, 1, 1, 12))
    assert to_rrule(aware).startswith("DTSTART;TZID=Asia/Kolkata:20260101T173000\n")
    before = datetime.now(UTC).replace(microsecond=0)
    now = Schedule(frequency="daily", timezone="America/New_York").start
    assert now is not None and before <= now <= datetime.now(UTC)
    assert now.tzinfo == ZoneInfo("America/New_York")


SCHEDULES = [
    Schedule(frequency="daily", start=datetime(2026, 1, 1)),
    Schedule(frequency="daily", interval=3, hour=0, minute=59, timezone="Pacific/Chatham",
             start=datetime(2026, 4, 5, 2, 45, 7), until=datetime(2027, 1, 1)),
    Schedule(frequency="weekly", weekdays=["SU", "WE", "FR"], interval=52, hour=23, timezone="America/Santiago",
             start=datetime(2026, 9, 6)),
    Schedule(frequency="monthly", day_of_month=31, timezone="Australia/Sydney", start=z(2026, 10, 3, 16),
             until=z(2030, 2, 28, 22, 0, 1)),
    Schedule(frequency="monthly", interval=5, day_of_month=1, timezone="Europe/Berlin",
             start=datetime(2026, 10, 25, 2, 30)),  # ambiguous wall time: its first occurrence
    Schedule(frequency="daily", timezone="Europe/Berlin", start=datetime(2026, 3, 29, 2, 30)),  # in the gap
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=[to_rrule(s).replace("\n", " ") for s in SCHEDULES])
def test_round_trip_through_rrule_text(schedule: Schedule) -> None:
    text = to_rrule(schedule)
    back = schedule_from_rrule(text)
    assert back == schedule
    assert to_rrule(back) == text
    assert describe(back) == describe(schedule)


def test_round_trip_normalizes_start_in_gap_and_fold() -> None:
    gap, repeated = SCHEDULES[-1], SCHEDULES[-2]
    assert gap.start is not None and repeated.start is not None
    assert gap.start.replace(tzinfo=None) == datetime(2026, 3, 29, 3, 0)
    assert repeated.start.astimezone(UTC) == z(2026, 10, 25, 0, 30)


# --- properties ---------------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "Australia/Lord_Howe",
         "America/Santiago", "Pacific/Chatham", "America/Havana", "Africa/Casablanca"]
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1))


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    frequency = draw(st.sampled_from(["daily", "weekly", "monthly"]))
    start = draw(MOMENTS)
    fields: dict[str, object] = {
        "frequency": frequency, "interval": draw(st.integers(1, 6) | st.just(52)),
        # Half the time an hour where DST changes happen, so gaps and repeated hours come up.
        "hour": draw(st.integers(0, 23) | st.integers(0, 3)), "minute": draw(st.integers(0, 59)),
        "timezone": draw(st.sampled_from(ZONES)),
        "start": draw(st.just(start) | st.just(start.replace(tzinfo=UTC))),
    }
    if frequency == "weekly" and draw(st.booleans()):
        fields["weekdays"] = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7))
    if frequency == "monthly" and draw(st.booleans()):
        fields["day_of_month"] = draw(st.integers(1, 31))
    if draw(st.booleans()):
        fields["until"] = start + draw(st.timedeltas(timedelta(days=1), timedelta(days=3000)))
    return Schedule(**fields)


@FAST
@given(schedules())
def test_property_round_trip(schedule: Schedule) -> None:
    text = to_rrule(schedule)
    back = schedule_from_rrule(text)
    assert back.model_dump() == schedule.model_dump()
    assert back.start and schedule.start and back.start.timestamp() == schedule.start.timestamp()
    assert (back.until and back.until.timestamp()) == (schedule.until and schedule.until.timestamp())
    assert to_rrule(back) == text


@FAST
@given(schedules(), st.integers(0, 2 * 365 * 24), st.integers(1, 40))
def test_property_slots_keep_the_wall_time_and_increase(schedule: Schedule, hours_later: int, days: int) -> None:
    assert schedule.start is not None
    zone, text = ZoneInfo(schedule.timezone), to_rrule(schedule)
    after = schedule.start.astimezone(UTC) + timedelta(hours=hours_later)
    until = after + timedelta(days=days * (31 if schedule.frequency == "monthly" else 7))
    found = list(occurrences(text, after=after, until=until))
    assert all(after < slot <= until and slot.tzinfo is UTC for slot in found)
    assert all(earlier < later for earlier, later in zip(found, found[1:], strict=False))
    for slot in found:
        local = slot.astimezone(zone)
        wall = datetime.combine(local.date(), time(schedule.hour, schedule.minute))
        assert local.fold == 0  # a repeated wall time is taken at its first occurrence
        if local.time() != wall.time():  # only allowed in a DST gap, and then sent as the gap ends
            assert wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall
            assert (slot - timedelta(seconds=1)).astimezone(zone).utcoffset() != local.utcoffset()
            assert local.replace(tzinfo=None) > wall
        if schedule.weekdays:
            assert WEEKDAYS[local.weekday()] in schedule.weekdays
    # Starting late (the rule fast-forwards) finds exactly the slots a walk from the start finds.
    walk = occurrences(text, after=schedule.start.astimezone(UTC) - timedelta(days=3), until=until)
    assert found == [slot for slot in walk if slot > after]


def first_instant_reaching(wall: datetime, zone: ZoneInfo) -> datetime:
    """Reference, by scanning minute by minute (not via zoneinfo folds): the first instant whose local time
    reaches `wall`. That is the first occurrence of a repeated wall time and the end of the gap for a skipped one."""
    moment = wall.replace(tzinfo=UTC) - timedelta(hours=15)  # before any zone reaches `wall`
    while moment.astimezone(zone).replace(tzinfo=None) < wall:
        moment += timedelta(minutes=1)
    return moment


@settings(max_examples=60, deadline=None, database=None)
@given(st.sampled_from(ZONES), st.integers(2000, 2039), st.integers(0, 3) | st.integers(0, 23), st.integers(0, 59))
def test_property_one_daily_slot_per_local_day_through_a_whole_year(zone_name: str, year: int, hour: int,
                                                                    minute: int) -> None:
    zone = ZoneInfo(zone_name)
    text = to_rrule(Schedule(frequency="daily", hour=hour, minute=minute, timezone=zone_name,
                             start=datetime(year, 1, 1)))
    found = list(occurrences(text, after=z(year, 1, 1), until=z(year + 1, 1, 1)))
    by_day = {slot.astimezone(zone).date(): slot for slot in found}
    assert len(by_day) == len(found)  # never twice on a day, also on fall-back days
    day = date(year, 1, 2)
    while day < date(year, 12, 31):
        assert day in by_day  # never skipped, also on spring-forward days
        day += timedelta(days=1)
    for day, slot in by_day.items():
        wall = datetime.combine(day, time(hour, minute))
        local = slot.astimezone(zone)
        if local.replace(tzinfo=None) != wall or local.fold != 0:  # a DST day: check against the reference
            assert slot == first_instant_reaching(wall, zone)


# --- due slots ----------------------------------------------------------------------------------------

DAILY_NINE_UTC = to_rrule(Schedule(frequency="daily", start=datetime(2026, 1, 1)))


def test_nothing_due_before_the_first_slot_and_one_due_at_it() -> None:
    created = z(2026, 1, 1, 8)
    assert due_slots(DAILY_NINE_UTC, last_slot=None, not_before=created, now=z(2026, 1, 1, 8, 59, 59)) == DueSlots(None, [])
    assert due_slots(DAILY_NINE_UTC, last_slot=None, not_before=created, now=z(2026, 1, 1, 9)) == DueSlots(z(2026, 1, 1, 9), [])


def test_last_slot_is_never_resent() -> None:
    due = due_slots(DAILY_NINE_UTC, last_slot=z(2026, 1, 1, 9), not_before=z(2026, 1, 1), now=z(2026, 1, 2, 8))
    assert due == DueSlots(None, [])
    due = due_slots(DAILY_NINE_UTC, last_slot=z(2026, 1, 1, 9), not_before=z(2026, 1, 1), now=z(2026, 1, 2, 9))
    assert due == DueSlots(z(2026, 1, 2, 9), [])


def test_after_downtime_the_latest_is_sent_and_the_others_skipped() -> None:
    due = due_slots(DAILY_NINE_UTC, last_slot=z(2026, 1, 1, 9), not_before=z(2026, 1, 1), now=z(2026, 1, 5, 10))
    assert due == DueSlots(z(2026, 1, 5, 9), [z(2026, 1, 2, 9), z(2026, 1, 3, 9), z(2026, 1, 4, 9)])
    few = due_slots(DAILY_NINE_UTC, last_slot=z(2026, 1, 1, 9), not_before=z(2026, 1, 1), now=z(2026, 1, 5, 10),
                    max_skipped=2)
    assert few == DueSlots(z(2026, 1, 5, 9), [z(2026, 1, 3, 9), z(2026, 1, 4, 9)])
    none_listed = due_slots(DAILY_NINE_UTC, last_slot=z(2026, 1, 1, 9), not_before=z(2026, 1, 1), now=z(2026, 1, 5, 10),
                            max_skipped=0)
    assert none_listed == DueSlots(z(2026, 1, 5, 9), [])


def test_long_outage_lists_a_bounded_number_of_skipped_slots() -> None:
    since_2000 = to_rrule(Schedule(frequency="daily", start=datetime(2000, 1, 1)))
    due = due_slots(since_2000, last_slot=z(2000, 1, 1, 9), not_before=z(2000, 1, 1), now=z(2026, 6, 1, 12))
    assert due.send == z(2026, 6, 1, 9)
    assert len(due.skipped) == 1000
    assert due.skipped[0] == z(2026, 6, 1, 9) - timedelta(days=1000) and due.skipped[-1] == z(2026, 5, 31, 9)


def test_not_before_keeps_a_new_subscription_from_sending_older_slots() -> None:
    # Created 3 January 10:00 on a rule that started 1 January: 1-3 January are not its slots.
    due = due_slots(DAILY_NINE_UTC, last_slot=None, not_before=z(2026, 1, 3, 10), now=z(2026, 1, 5, 10))
    assert due == DueSlots(z(2026, 1, 5, 9), [z(2026, 1, 4, 9)])
    assert due_slots(DAILY_NINE_UTC, last_slot=None, not_before=z(2026, 1, 3, 10), now=z(2026, 1, 4, 8)) == DueSlots(None, [])
    # A slot exactly at not_before is due; not_before also wins over an older last_slot.
    assert due_slots(DAILY_NINE_UTC, last_slot=None, not_before=z(2026, 1, 3, 9), now=z(2026, 1, 3, 9)).send == z(2026, 1, 3, 9)
    due = due_slots(DAILY_NINE_UTC, last_slot=z(2026, 1, 1, 9), not_before=z(2026, 1, 3, 10), now=z(2026, 1, 5, 10))
    assert due == DueSlots(z(2026, 1, 5, 9), [z(2026, 1, 4, 9)])


def test_due_slots_across_a_dst_change() -> None:
    text = to_rrule(Schedule(frequency="daily", timezone="Europe/Berlin", start=datetime(2026, 3, 1)))
    due = due_slots(text, last_slot=z(2026, 3, 27, 8), not_before=z(2026, 3, 1), now=z(2026, 3, 30, 7))
    assert due == DueSlots(z(2026, 3, 30, 7), [z(2026, 3, 28, 8), z(2026, 3, 29, 7)])


# --- invalid input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"frequency": "daily", "timezone": "Mars/Olympus_Mons"}, "timezone", "IANA"),
    ({"frequency": "daily", "timezone": "../etc/passwd"}, "timezone", "IANA"),
    ({"frequency": "daily", "weekdays": ["MO"]}, "weekdays", "weekly"),
    ({"frequency": "weekly", "weekdays": []}, "weekdays", "at least one"),
    ({"frequency": "weekly", "weekdays": ["XX"]}, "weekdays.0", "'MO'"),
    ({"frequency": "weekly", "day_of_month": 3}, "day_of_month", "monthly"),
    ({"frequency": "monthly", "day_of_month": 32}, "day_of_month", "31"),
    ({"frequency": "daily", "hour": 24}, "hour", "23"),
    ({"frequency": "daily", "minute": -1}, "minute", "0"),
    ({"frequency": "weekly", "interval": 0}, "interval", "1"),
    ({"frequency": "hourly"}, "frequency", "daily"),
    ({"frequency": "daily", "start": datetime(2026, 5, 1), "until": datetime(2026, 4, 30)}, "until", "before start"),
    ({"frequency": "daily", "start": datetime(1900, 1, 1)}, "start", "1970"),
    ({"frequency": "daily", "every": "day"}, "every", "Extra"),
])
def test_invalid_schedules_name_the_field(fields: dict, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Schedule(**fields)
    assert [".".join(map(str, e["loc"])) for e in raised.value.errors()] == [field]
    with pytest.raises(InvalidRequest) as invalid:
        parse_schedule(fields)
    assert list(invalid.value.details) == [field] and words in invalid.value.details[field]
    assert field in invalid.value.message


@pytest.mark.parametrize(("text", "words"), [
    ("every monday", "DTSTART line followed by an RRULE"),
    ("DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "DTSTART;TZID="),
    ("DTSTART;TZID=UTC:2026-01-01\nRRULE:FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "%Y%m%dT%H%M%S"),
    ("DTSTART;TZID=UTC:20260101T000000\nRRULE:FREQ=DAILY;BYHOUR=9", "missing BYMINUTE"),
    ("DTSTART;TZID=UTC:20260101T000000\nRRULE:FREQ=DAILY;BYHOUR=9;BYMINUTE=0;COUNT=3", "COUNT"),
    ("DTSTART;TZID=UTC:20260101T000000\nRRULE:FREQ=MONTHLY;BYMONTHDAY=31;BYHOUR=9;BYMINUTE=0", "BYSETPOS=-1"),
    ("DTSTART;TZID=UTC:20260101T000000\nRRULE:FREQ=DAILY;BYHOUR=9;BYMINUTE=0;UNTIL=20270101T000000", "UTC"),
    ("DTSTART;TZID=UTC:20260101T000000\nRRULE:FREQ=DAILY;BYHOUR=9;BYHOUR=10;BYMINUTE=0", "repeated"),
])
def test_invalid_rrule_text(text: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as invalid:
        schedule_from_rrule(text)
    assert words in invalid.value.details["rrule"]


def test_rrule_with_invalid_fields_names_them() -> None:
    with pytest.raises(InvalidRequest) as invalid:
        schedule_from_rrule("DTSTART;TZID=Europe/Atlantis:20260101T000000\nRRULE:FREQ=DAILY;BYHOUR=25;BYMINUTE=0")
    assert set(invalid.value.details) == {"timezone", "hour"}
    with pytest.raises(InvalidRequest):
        list(occurrences("nonsense", after=z(2026, 1, 1), until=z(2026, 2, 1)))
    with pytest.raises(ValueError, match="max_skipped"):
        due_slots(DAILY_NINE_UTC, last_slot=None, not_before=z(2026, 1, 1), now=z(2026, 1, 2), max_skipped=-1)
