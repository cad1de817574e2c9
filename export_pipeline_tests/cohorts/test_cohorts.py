"""Cohorts: static (person ids, CSV) and dynamic (person properties and "performed EVENT at least N times
in the last D days", all or any) have exactly their members, evaluated in ClickHouse as of the request."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.cohorts.store import CohortStore, person_ids_from_csv
from export_pipeline.engine.extract import ExportQuery, iter_chunks
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import InvalidRequest, NotFound
from export_pipeline.models.persons import cohort_model
from export_pipeline.models.resolve import resolve_spec
from export_pipeline_tests.fakes.exportdata import insert_events
from export_pipeline_tests.fakes.peopledata import (
    T0,
    export_rows,
    insert_distinct_ids,
    insert_persons,
    person_uuid,
)

PROJECT = 7103
AS_OF = datetime(2029, 1, 1, tzinfo=UTC)
EDGE = AS_OF - timedelta(days=30)
MICRO = timedelta(microseconds=1)
P1, P2, P3, P4, P5, P6, DELETED = (person_uuid(PROJECT, n) for n in range(1, 8))
PAGEVIEWS = [  # (distinct_id, timestamp)
    ("p1-a", EDGE), ("p1-a", AS_OF), ("p1-b", AS_OF - timedelta(days=3)),  # 3 over two ids, window edges included
    ("p2", EDGE - MICRO), ("p2", EDGE + MICRO), ("p2", AS_OF - timedelta(days=1)),  # 2 inside
    ("p3", AS_OF + MICRO), ("p3", AS_OF - MICRO), ("p3", EDGE + timedelta(days=1)),  # 2 inside (one after as_of)
    ("moved", EDGE + timedelta(days=2)), ("moved", EDGE + timedelta(days=3)), ("moved", EDGE + timedelta(days=4)),
]


@pytest.fixture(scope="module", autouse=True)
def people(clickhouse, events_table, store):
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
    plans = {P1: {"plan": "free"}, P2: {}, P3: {}, P4: {}, P5: {"plan": "enterprise"}, P6: {}}
    insert_persons(clickhouse, events_table, [
        *[(PROJECT, pid, T0, json.dumps(props), 1, 0, 1, T0) for pid, props in plans.items()],
        (PROJECT, DELETED, T0, "{}", 1, 1, 1, T0),
    ])
    owners = {"p1-a": P1, "p1-b": P1, "p2": P2, "p3": P3, "p6": P6}
    insert_distinct_ids(clickhouse, events_table, [
        *[(PROJECT, did, pid, 0, 1, T0) for did, pid in owners.items()],
        (PROJECT, "moved", P2, 0, 1, T0), (PROJECT, "moved", P4, 0, 2, T0),  # merged from P2 into P4
    ])
    events = [(did, ts, "$pageview") for did, ts in PAGEVIEWS] + [("p6", AS_OF - timedelta(days=1), "$autocapture")] * 3
    insert_events(clickhouse, events_table, [
        [PROJECT, uuid.uuid4(), name, ts, did, uuid.UUID(int=0), "{}"] for did, ts, name in events
    ])


def members(deps, definition: dict) -> set[str]:
    cohort = CohortStore(deps.engine).create(PROJECT, name="test", kind="dynamic", created_by="maria",
                                             definition=definition)
    spec = resolve_spec(parse_spec(project_id=PROJECT, requested_by="maria", resource="cohort", cohort_id=cohort.id),
                        deps.engine)
    query = ExportQuery(cohort_model(deps.table), spec, AS_OF, carry=("id",))
    with deps.clickhouse.session("test cohort") as session:
        return {row for chunk in iter_chunks(session, query, chunk_bytes=1 << 20) for row in chunk.column("id").to_pylist()}


PAGEVIEWED = {"type": "behavioral", "event": "$pageview", "min_count": 3, "days": 30}
ENTERPRISE = {"type": "property", "key": "plan", "operator": "exact", "value": "enterprise"}


@pytest.mark.parametrize(("definition", "expected"), [
    ({"match": "all", "filters": [PAGEVIEWED]}, {P1, P4}),
    ({"match": "any", "filters": [PAGEVIEWED, ENTERPRISE]}, {P1, P4, P5}),
    ({"match": "all", "filters": [PAGEVIEWED, {"type": "property", "key": "plan", "operator": "is_set"}]}, {P1}),
    ({"match": "all", "filters": [{**PAGEVIEWED, "min_count": 2}]}, {P1, P2, P3, P4}),
    ({"match": "all", "filters": [{"type": "behavioral", "event": "$autocapture", "min_count": 3, "days": 7}]}, {P6}),
])
def test_dynamic_cohorts_have_exactly_their_members_as_of_the_request(deps, definition, expected):
    assert members(deps, definition) == expected


def test_a_one_day_window_counts_from_exactly_one_day_before(deps):
    # p1-a at as_of, p2 at as_of - 1 day (the edge, included), p3 at as_of - 1µs.
    once = {"type": "behavioral", "event": "$pageview", "min_count": 1, "days": 1}
    assert members(deps, {"match": "all", "filters": [once]}) == {P1, P2, P3}


def test_a_static_cohort_exports_its_existing_persons_in_every_format(deps):
    data = f"person_id\n{P2}\n{P3.upper()}\n{DELETED}\n{uuid.UUID(int=12345)}\n{P2}\n".encode()
    people = person_ids_from_csv(data)
    assert people == [P2, P3, DELETED, str(uuid.UUID(int=12345))]
    cohort = CohortStore(deps.engine).create(PROJECT, name="static", kind="static", created_by="maria", people=people)
    for fmt in ("ndjson", "csv", "parquet"):
        rows = export_rows(deps, parse_spec(project_id=PROJECT, requested_by="maria", resource="cohort",
                                            cohort_id=cohort.id, format=fmt))
        assert sorted(row["id"] for row in rows) == sorted([P2, P3])
        assert {row["id"]: row["distinct_ids"] for row in rows} == {P2: ["p2"], P3: ["p3"]}
    filtered = export_rows(deps, parse_spec(project_id=PROJECT, requested_by="maria", resource="persons",
                                            cohort_id=cohort.id, properties=[{"key": "plan", "operator": "is_not_set"}]))
    assert sorted(row["id"] for row in filtered) == sorted([P2, P3])


def test_bad_cohorts_are_refused(deps):
    store = CohortStore(deps.engine)
    with pytest.raises(InvalidRequest) as error:
        store.create(PROJECT, name="x", kind="dynamic", created_by="maria",
                     definition={"match": "some", "filters": [{"type": "behavioral", "event": "$pageview", "days": 0}]})
    assert error.value.details == {"definition.match": "must be all or any, got 'some'",
                                   "definition.filters.0": "days must be a whole number from 1 to 3650, got 0"}
    with pytest.raises(InvalidRequest):
        person_ids_from_csv(b"id\nnot-a-uuid\n")
    with pytest.raises(NotFound):
        deps.store.create(parse_spec(project_id=PROJECT, requested_by="maria", resource="cohort", cohort_id=999_999),
                          source="test")


def test_cohorts_and_people_requests_round_trip_in_the_app_database(app_engine):
    """On SQLite and PostgreSQL: cohorts, their people, group types, and the request's model filters."""
    from export_pipeline.exports.store import ExportStore
    from export_pipeline.models.group_types import group_type_names, set_group_type

    store = CohortStore(app_engine)
    static = store.create(PROJECT, name="Zoë's «list»", kind="static", created_by="maria", people=[P2, P1])
    dynamic = store.create(PROJECT, name="any", kind="dynamic", created_by="maria",
                           definition={"filters": [{"type": "behavioral", "event": "$pageview", "days": 7}]})
    assert store.people(static.id) == sorted([P1, P2])
    assert dynamic.definition == {"match": "all", "filters": [
        {"type": "behavioral", "event": "$pageview", "min_count": 1, "days": 7}]}
    assert store.update(PROJECT, static.id, people=[P3]).name == "Zoë's «list»" and store.people(static.id) == [P3]
    set_group_type(app_engine, PROJECT, 1, "team")
    set_group_type(app_engine, PROJECT, 1, "squad")
    assert group_type_names(app_engine, PROJECT)[1] == "squad"

    requests = ExportStore(app_engine)
    spec = parse_spec(project_id=PROJECT, requested_by="maria", resource="persons", cohort_id=static.id, format="csv",
                      properties=[{"key": "age", "operator": "gt", "value": 3}])
    stored = requests.require(requests.create(spec, source="test").id).spec
    assert stored == spec
    assert stored.resolved == {"cohort": {"kind": "static", "person_ids": [P3]}}
    groups = requests.create(parse_spec(project_id=PROJECT, requested_by="maria", resource="groups", group_type="squad"),
                             source="test")
    assert requests.require(groups.id).spec.resolved == {"group_type_index": 1, "group_type_name": "squad"}
    store.delete(PROJECT, static.id)
    assert store.get(PROJECT, static.id) is None and store.people(static.id) == []
