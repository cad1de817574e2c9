"""Insight queries on a small, hand-built event history whose answers are worked out by hand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from export_pipeline.insights.queries import InsightQuery, compute
from export_pipeline_tests.fakes.exportdata import insert_events

PROJECT = 9701
P = {name: uuid.uuid5(uuid.NAMESPACE_DNS, name) for name in ("p1", "p2", "p3", "p4")}
RANGE = {"date_from": "2026-03-01", "date_to": "2026-03-04"}


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


HISTORY = [
    # (day, hour, person, event, properties)
    (1, 9, "p1", "signed_up", '{"plan": "pro"}'),
    (1, 10, "p1", "$pageview", '{"plan": "pro"}'),
    (1, 11, "p1", "$pageview", '{"plan": "pro"}'),
    (1, 12, "p2", "$pageview", '{"plan": "free"}'),
    (2, 9, "p2", "signed_up", '{"plan": "free"}'),
    (2, 10, "p1", "purchase", '{"plan": "pro"}'),
    (2, 11, "p3", "$pageview", '{"plan": "free"}'),
    (3, 10, "p3", "signed_up", '{"plan": "free"}'),
    (3, 11, "p3", "purchase", '{"plan": "free"}'),
    (3, 12, "p4", "purchase", '{}'),
    (4, 9, "p4", "$pageview", '{}'),  # outside the range (date_to is exclusive)
    (2, 15, "p2", "$pageview", '{"plan": "free"}'),
]
PREVIOUS_PERIOD = [(27, 9, "p1", "$pageview", "{}"), (28, 9, "p2", "$pageview", "{}")]  # February


@pytest.fixture(scope="module", autouse=True)
def history(clickhouse, events_table):
    rows = [[PROJECT, uuid.uuid4(), event, at(day, hour), person, P[person], props]
            for day, hour, person, event, props in HISTORY]
    rows += [[PROJECT, uuid.uuid4(), event, datetime(2026, 2, day, hour, tzinfo=UTC), person, P[person], props]
             for day, hour, person, event, props in PREVIOUS_PERIOD]
    insert_events(clickhouse, events_table, rows)


def run(clickhouse, events_table, definition: dict):
    query = TypeAdapter(InsightQuery).validate_python(definition)
    with clickhouse.session("insight test") as session:
        return compute(session, events_table, PROJECT, query)


def test_trends_count_events_per_day(clickhouse, events_table):
    result = run(clickhouse, events_table, {"kind": "trends", "events": ["$pageview", "purchase"], **RANGE})
    assert result.columns == ("bucket", "series", "value")
    assert result.rows == [
        ("2026-03-01T00:00:00Z", "$pageview", 3),
        ("2026-03-02T00:00:00Z", "$pageview", 2),
        ("2026-03-02T00:00:00Z", "purchase", 1),
        ("2026-03-03T00:00:00Z", "purchase", 2),
    ]


def test_trends_unique_users_broken_down_by_a_property(clickhouse, events_table):
    result = run(clickhouse, events_table, {
        "kind": "trends", "events": ["$pageview"], "math": "unique_users", "interval": "week",
        "breakdown": {"by": "property", "key": "plan"}, **RANGE,
    })
    # 2026-03-01 is a Sunday: its week starts Monday 2026-02-23; the 2nd and 3rd are in the next week.
    assert result.rows == [
        ("2026-02-23", "free", 1), ("2026-02-23", "pro", 1),
        ("2026-03-02", "free", 2),
    ]


def test_funnel_counts_people_reaching_each_step_within_the_window(clickhouse, events_table):
    result = run(clickhouse, events_table, {
        "kind": "funnel", "steps": ["signed_up", "purchase"], "window_seconds": 2 * 86_400, **RANGE,
    })
    # p1: signed up, bought a day later; p2: signed up only; p3: both on day 3; p4 bought without signing up.
    assert result.rows == [(1, "signed_up", 3, 1.0), (2, "purchase", 2, 0.6667)]


def test_funnel_window_excludes_slow_conversions(clickhouse, events_table):
    result = run(clickhouse, events_table, {
        "kind": "funnel", "steps": ["signed_up", "purchase"], "window_seconds": 3_600 * 2, **RANGE,
    })
    assert result.rows == [(1, "signed_up", 3, 1.0), (2, "purchase", 1, 0.3333)]  # only p3 within 2 hours


def test_table_of_top_events_and_of_property_values(clickhouse, events_table):
    events = run(clickhouse, events_table, {"kind": "table", **RANGE})
    assert events.rows == [("$pageview", 5), ("purchase", 3), ("signed_up", 3)]
    plans = run(clickhouse, events_table, {"kind": "table", "by": "property", "key": "plan", "math": "unique_users", **RANGE})
    assert plans.rows == [("free", 2), ("", 1), ("pro", 1)]


def test_number_with_change_against_the_previous_period(clickhouse, events_table):
    result = run(clickhouse, events_table, {"kind": "number", "event": "$pageview", **RANGE})
    assert result.columns == ("value", "previous", "change")
    assert result.rows == [(5, 2, 1.5)]  # 3 days vs the 3 days before: 5 vs 2 pageviews


@pytest.mark.parametrize("definition", [
    {"kind": "trends", "events": [], **RANGE},
    {"kind": "funnel", "steps": ["only one"], **RANGE},
    {"kind": "table", "by": "property", **RANGE},
    {"kind": "number", "date_from": "2026-03-04", "date_to": "2026-03-01"},
    {"kind": "trends", "events": ["x"], "interval": "minute", **RANGE},
    {"kind": "trends", "events": ["x"], "sql": "DROP TABLE events", **RANGE},
])
def test_invalid_definitions_are_rejected(definition):
    with pytest.raises(ValidationError):
        TypeAdapter(InsightQuery).validate_python(definition)


def test_property_keys_are_bound_parameters_not_sql(clickhouse, events_table):
    hostile = "plan') OR 1=1 --"
    result = run(clickhouse, events_table, {"kind": "table", "by": "property", "key": hostile, **RANGE})
    assert result.rows == [("", 11)]  # no such key: every event in range has an empty value
