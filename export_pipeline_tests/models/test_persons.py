"""Persons and groups exports: latest version wins, deleted persons are absent, distinct ids follow merges
(all of them, no cap), every property operator, groups' latest version, every format."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta

import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.clickhouse.connection import Session
from export_pipeline.engine import extract
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import InvalidRequest
from export_pipeline.models import persons
from export_pipeline.models.group_types import set_group_type
from export_pipeline_tests.fakes.peopledata import (
    T0,
    export_rows,
    insert_distinct_ids,
    insert_groups,
    insert_persons,
    person_uuid,
)

PROJECT, OPERATORS_PROJECT = 7101, 7102
ANN, GONE, CARL, MANY, ODD = (person_uuid(PROJECT, n) for n in range(1, 6))
TRICKY = {"name": "Zoë \"the\" 'quote'\nnew line 🎉", "nothing": None, "nested": {"a": [1, None, "x"]},
          "formula": "=SUM(A1)", "tab": "a\tb", "back\\slash": "\\"}
# Each existing person's distinct ids as every export lists them (the `people` fixture's rows).
OWNED_IDS = {ANN: ["ann-1"], CARL: ["ann-2", "carl-1"], MANY: [f"many-{n:03d}" for n in range(100)], ODD: []}


@pytest.fixture(scope="module", autouse=True)
def people(clickhouse, events_table, store):
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
    add_member(store.engine, OPERATORS_PROJECT, "maria", Role.MAINTAINER)
    t = T0
    insert_persons(clickhouse, events_table, [
        (PROJECT, ANN, t, json.dumps({"name": "old"}), 0, 0, 1, t),
        (PROJECT, ANN, t, json.dumps({"name": "Ann", "plan": "pro"}), 1, 0, 2, t + timedelta(hours=1)),
        (PROJECT, GONE, t, json.dumps({"name": "Gone"}), 1, 0, 1, t),
        (PROJECT, GONE, t, json.dumps({"name": "Gone"}), 1, 1, 2, t + timedelta(hours=1)),
        (PROJECT, CARL, t + timedelta(days=1), json.dumps({"name": "Carl"}), 1, 0, 1, t),
        (PROJECT, MANY, t + timedelta(days=2), "{}", 0, 0, 1, t),
        (PROJECT, ODD, t + timedelta(days=3), json.dumps(TRICKY, ensure_ascii=False), 0, 0, 1, t),
    ])
    insert_distinct_ids(clickhouse, events_table, [
        (PROJECT, "ann-1", ANN, 0, 1, t),
        (PROJECT, "ann-2", ANN, 0, 1, t),
        (PROJECT, "ann-2", CARL, 0, 2, t + timedelta(hours=2)),  # merged into Carl
        (PROJECT, "carl-1", CARL, 0, 1, t),
        (PROJECT, "carl-old", CARL, 0, 1, t),
        (PROJECT, "carl-old", CARL, 1, 2, t),  # removed
        (PROJECT, "gone-1", GONE, 0, 1, t),
        *[(PROJECT, f"many-{n:03d}", MANY, 0, 1, t) for n in range(100)],
    ])


@pytest.mark.parametrize(("fmt", "compression"), [("ndjson", "gzip"), ("json", "none"), ("csv", "zstd"), ("parquet", "zstd")])
def test_persons_are_their_latest_version_with_all_their_distinct_ids_in_every_format(deps, fmt, compression):
    rows = export_rows(deps, parse_spec(project_id=PROJECT, requested_by="maria", resource="persons", format=fmt,
                                        compression=compression))
    assert [row["id"] for row in rows] == sorted([ANN, CARL, MANY, ODD], key=lambda u: _ch_uuid_order(u))
    by_id = {row["id"]: row for row in rows}
    assert by_id[ANN] == {"id": ANN, "created_at": "2026-03-01T00:00:00.000000Z", "is_identified": True,
                          "version": 2, "distinct_ids": ["ann-1"], "properties": {"name": "Ann", "plan": "pro"}}
    assert by_id[CARL]["distinct_ids"] == ["ann-2", "carl-1"]
    assert by_id[MANY]["distinct_ids"] == [f"many-{n:03d}" for n in range(100)]
    assert by_id[ODD]["distinct_ids"] == []
    assert by_id[ODD]["properties"] == TRICKY
    assert list(by_id[ANN]) == ["id", "created_at", "is_identified", "version", "distinct_ids", "properties"]


def _ch_uuid_order(text: str) -> tuple:
    # ClickHouse orders UUIDs by their two 64-bit halves, the low half (the text's last 16 digits) first.
    value = int(text.replace("-", ""), 16)
    return (value & ((1 << 64) - 1), value >> 64)


def test_clickhouse_orders_uuids_as_the_tests_expect(deps):
    texts = ["ffffffff-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002",
             "00000001-0000-0000-0000-000000000000", "00000000-0000-0000-ffff-000000000000"]
    with deps.clickhouse.session("test uuid order") as session:
        ordered = session.client.query("SELECT toString(u) FROM (SELECT arrayJoin({texts:Array(UUID)}) AS u) ORDER BY u",
                                       parameters={"texts": texts}).result_columns[0]
    assert ordered == sorted(texts, key=_ch_uuid_order)


def test_created_at_range_selects_persons_by_creation(deps):
    rows = export_rows(deps, parse_spec(project_id=PROJECT, requested_by="maria", resource="persons",
                                        date_from="2026-03-02", date_to="2026-03-03"))
    assert [row["id"] for row in rows] == sorted([CARL, MANY], key=_ch_uuid_order)


@pytest.fixture(scope="module")
def operator_people(clickhouse, events_table):
    values = {1: {"plan": "pro", "age": 30, "email": "ANN@Example.com"}, 2: {"plan": "free", "age": "41"},
              3: {"plan": None, "age": 17.5}, 4: {}, 5: {"plan": "Pro", "age": True}}
    insert_persons(clickhouse, events_table, [
        (OPERATORS_PROJECT, person_uuid(OPERATORS_PROJECT, n), T0, json.dumps(props), 0, 0, 1, T0)
        for n, props in values.items()
    ])


@pytest.mark.parametrize(("rule", "expected"), [
    ({"key": "plan", "operator": "exact", "value": "pro"}, {1}),
    ({"key": "plan", "operator": "is_not", "value": "pro"}, {2, 3, 4, 5}),
    ({"key": "plan", "operator": "icontains", "value": "PR"}, {1, 5}),
    ({"key": "email", "operator": "icontains", "value": "example.COM"}, {1}),
    ({"key": "plan", "operator": "is_set"}, {1, 2, 5}),
    ({"key": "plan", "operator": "is_not_set"}, {3, 4}),
    ({"key": "age", "operator": "gt", "value": 30}, {2}),
    ({"key": "age", "operator": "lt", "value": 30}, {3}),
    ({"key": "age", "operator": "exact", "value": 30}, {1}),
    ({"key": "age", "operator": "exact", "value": True}, {5}),
    ({"key": "it's \"odd\"", "operator": "exact", "value": "x' OR 1=1 --"}, set()),
])
def test_each_property_operator_selects_exactly_its_persons(deps, operator_people, rule, expected):
    rows = export_rows(deps, parse_spec(project_id=OPERATORS_PROJECT, requested_by="maria", resource="persons",
                                        properties=[rule]))
    assert {row["id"] for row in rows} == {person_uuid(OPERATORS_PROJECT, n) for n in expected}


def test_bad_property_filters_and_misplaced_fields_are_all_reported():
    with pytest.raises(InvalidRequest) as error:
        parse_spec(project_id=PROJECT, requested_by="maria", resource="persons", events=["x"],
                   properties=[{"key": "a", "operator": "gt", "value": "ten"}], group_type="organization")
    assert error.value.details == {
        "properties": "filter 0: gt compares with a number, got 'ten'",
        "events": "only events exports filter by event name",
        "group_type": "only groups exports take a group_type",
    }
    with pytest.raises(InvalidRequest) as error:
        parse_spec(project_id=PROJECT, requested_by="maria", resource="groups")
    assert error.value.details == {
        "group_type": "required: the group type to export, by name (e.g. organization) or index"}


def test_groups_are_their_latest_version_by_type_name_or_index(deps, clickhouse, events_table, store):
    set_group_type(store.engine, PROJECT, 0, "organization")
    set_group_type(store.engine, PROJECT, 1, "team")
    insert_groups(clickhouse, events_table, [
        (PROJECT, 0, "acme", T0, json.dumps({"name": "Acme v1"}), T0),
        (PROJECT, 0, "acme", T0, json.dumps({"name": "Acme v2", "seats": 12}), T0 + timedelta(days=1)),
        (PROJECT, 0, "beta", T0 + timedelta(days=2), "{}", T0),
        (PROJECT, 1, "red-team", T0, "{}", T0),
    ])
    expected = [
        {"key": "acme", "group_type": "organization", "group_type_index": 0, "created_at": "2026-03-01T00:00:00.000000Z",
         "properties": {"name": "Acme v2", "seats": 12}},
        {"key": "beta", "group_type": "organization", "group_type_index": 0, "created_at": "2026-03-03T00:00:00.000000Z",
         "properties": {}},
    ]
    for group_type, fmt in (("organization", "ndjson"), ("0", "parquet"), ("organization", "csv")):
        spec = parse_spec(project_id=PROJECT, requested_by="maria", resource="groups", group_type=group_type, format=fmt)
        assert export_rows(deps, spec) == expected
    spec = parse_spec(project_id=PROJECT, requested_by="maria", resource="groups", group_type="team",
                      properties=[{"key": "name", "operator": "is_not_set"}])
    assert [row["key"] for row in export_rows(deps, spec)] == ["red-team"]
    with pytest.raises(InvalidRequest) as error:
        deps.store.create(parse_spec(project_id=PROJECT, requested_by="maria", resource="groups", group_type="teams"),
                          source="test")
    assert error.value.details == {"group_type": "unknown group type 'teams'"}


def test_one_person_per_chunk_loses_and_repeats_nothing(deps, monkeypatch):
    # Every chunk is a fresh streamed query strictly after the last id; the count (latest versions alone)
    # sees them all.
    from export_pipeline.models.persons import persons_model

    # Every chunk ends its query (as when another process waits for the engine): each next chunk is a fresh
    # query after the last key, as when an export is handed over or resumed.
    monkeypatch.setattr(Session, "is_wanted", lambda self: True)
    query = extract.ExportQuery(persons_model(deps.table), parse_spec(project_id=PROJECT, requested_by="maria",
                                                                      resource="persons"), T0,
                                carry=("id", "distinct_ids"))
    with deps.clickhouse.session("test chunks") as session:
        chunks = [chunk.select(["id", "distinct_ids"]).to_pylist() for chunk in extract.iter_chunks(session, query, chunk_bytes=1)]
        count_sql, params = query.count_sql()
        assert int(session.client.command(count_sql, parameters=params, settings=extract.QUERY_SETTINGS)) == 4
    assert [len(chunk) for chunk in chunks] == [1, 1, 1, 1]
    rows = {row["id"]: json.loads(row["distinct_ids"]) for chunk in chunks for row in chunk}
    assert [row["id"] for chunk in chunks for row in chunk] == sorted(rows, key=_ch_uuid_order)
    assert rows == OWNED_IDS


def test_launchpad_config_exports_persons_with_property_filters(store):
    import dagster as dg

    from export_pipeline.definitions import defs
    from export_pipeline.defs.exports import EXPORT_PARTITIONS

    config = {"project_id": PROJECT, "requested_by": "maria", "resource": "persons", "format": "parquet",
              "properties": [{"key": "name", "operator": "icontains", "value": "CARL"}]}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(EXPORT_PARTITIONS.name, ["launchpad-persons-1"])
        result = defs.resolve_job_def("export_job").execute_in_process(
            instance=instance, partition_key="launchpad-persons-1",
            run_config={"ops": {"event_export": {"config": config}}})
        metadata = result.asset_materializations_for_node("event_export")[0].metadata
    assert metadata["rows"].value == 1
    request = store.require("launchpad-persons-1")
    assert (request.spec.resource, request.spec.properties[0].value) == ("persons", "CARL")


def test_cli_exports_groups_by_type_name(store):
    import subprocess
    import sys
    from pathlib import Path

    set_group_type(store.engine, PROJECT, 0, "organization")
    cli = str(Path(sys.executable).parent / "export-pipeline")
    done = subprocess.run([cli, "export", "--project-id", str(PROJECT), "--requested-by", "maria", "--resource", "groups",
                           "--group-type", "organization", "--format", "json", "--compression", "none",
                           "--property", '{"key": "seats", "operator": "gt", "value": 10}', "--wait"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["row_count"]) == ("succeeded", 1)


def test_filtered_persons_in_one_person_chunks(deps, monkeypatch):
    # With a filter the source cannot be cut to the chunk's limit first: every chunk still gets its rows.
    from export_pipeline.models.persons import persons_model

    # Every chunk ends its query (as when another process waits for the engine): each next chunk is a fresh
    # query after the last key, as when an export is handed over or resumed.
    monkeypatch.setattr(Session, "is_wanted", lambda self: True)
    spec = parse_spec(project_id=PROJECT, requested_by="maria", resource="persons",
                      properties=[{"key": "name", "operator": "is_set"}])
    query = extract.ExportQuery(persons_model(deps.table), spec, T0, carry=("id",))
    with deps.clickhouse.session("test chunks") as session:
        ids = [row for chunk in extract.iter_chunks(session, query, chunk_bytes=1) for row in chunk.column("id").to_pylist()]
    assert ids == sorted([ANN, CARL, ODD], key=_ch_uuid_order)


def _windowed_persons_query(deps, monkeypatch, window_rows: int, project_id: int = PROJECT) -> extract.ExportQuery:
    """A project's persons export, read in windows of `window_rows` persons, carrying ids and distinct ids."""
    monkeypatch.setattr(persons, "PERSONS_PER_WINDOW", window_rows)
    spec = parse_spec(project_id=project_id, requested_by="maria", resource="persons")
    return extract.ExportQuery(persons.persons_model(deps.table), spec, T0, carry=("id", "distinct_ids"))


@pytest.mark.parametrize("window_rows", [1, 2, 3])
def test_persons_read_in_windows_of_rows_lose_and_repeat_nothing(deps, monkeypatch, window_rows):
    """The plan cuts the persons at every `window_rows`-th id (each window's query then groups only its
    persons' distinct ids); read window by window, and handed over after every chunk, the rows and their
    distinct ids are those of one whole read, in id order."""
    monkeypatch.setattr(Session, "is_wanted", lambda self: True)
    query = _windowed_persons_query(deps, monkeypatch, window_rows)
    ordered = sorted(OWNED_IDS, key=_ch_uuid_order)
    with deps.clickhouse.session("test windows") as session:
        planned = extract.plan(session, query)
        chunks = list(extract.iter_chunks(session, query, chunk_bytes=1, windows=planned.windows))
    assert planned.total == 4
    starts = ordered[window_rows - 1::window_rows]
    assert [str(window.start) for window in planned.windows[1:]] == starts
    assert [str(window.end) for window in planned.windows[:-1]] == starts
    assert planned.windows[0].start is None and planned.windows[-1].end is None
    rows = [row for chunk in chunks for row in chunk.select(["id", "distinct_ids"]).to_pylist()]
    assert [row["id"] for row in rows] == ordered
    assert {row["id"]: json.loads(row["distinct_ids"]) for row in rows} == OWNED_IDS


def test_a_windowed_persons_export_resumed_after_a_window_exports_the_rest(deps, monkeypatch):
    """Resumed after a key in the second of two-person windows (a run that died there): the first window reads
    nothing and the export goes on exactly after that person, with every distinct id."""
    query = _windowed_persons_query(deps, monkeypatch, 2)
    ordered = sorted(OWNED_IDS, key=_ch_uuid_order)
    with deps.clickhouse.session("test windows resumed") as session:
        planned = extract.plan(session, query)
        chunks = list(extract.iter_chunks(session, query, chunk_bytes=1, after=(ordered[2],), windows=planned.windows))
    assert len(planned.windows) == 3
    rows = [row for chunk in chunks for row in chunk.select(["id", "distinct_ids"]).to_pylist()]
    assert [row["id"] for row in rows] == ordered[3:]
    assert json.loads(rows[0]["distinct_ids"]) == OWNED_IDS[ordered[3]]


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_a_persons_export_in_windows_has_the_rows_of_one_window(deps, monkeypatch, fmt):
    monkeypatch.setattr(persons, "PERSONS_PER_WINDOW", 1)
    rows = export_rows(deps, parse_spec(project_id=PROJECT, requested_by="maria", resource="persons", format=fmt))
    assert [row["id"] for row in rows] == sorted(OWNED_IDS, key=_ch_uuid_order)
    assert {row["id"]: row["distinct_ids"] for row in rows} == OWNED_IDS


ORDER_PROJECT = 7110


def test_a_windowed_persons_stream_is_in_id_order_without_sorting_its_window(deps, monkeypatch):
    """Thousands of persons in several parts, several versions each, read in windows: ClickHouse reads the
    persons in key order through the join (no sort of the window: what keeps memory flat), and every person
    arrives exactly once, in id order, with the distinct ids it owns now."""
    rng = random.Random(7)
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(12_000)]
    deleted = set(ids[::50])
    for part in range(4):  # one insert per part; every person's last version is in the last part
        insert_persons(deps.clickhouse, deps.table, [
            (ORDER_PROJECT, pid, T0, json.dumps({"v": part}), 0, int(part == 3 and pid in deleted), part + 1, T0)
            for pid in ids[part::4] + (ids if part == 3 else [])])
    moved = {ids[n]: ids[n + 1] for n in range(0, 12_000, 30)}  # each such person's id moved to the next one
    # Four distinct ids a person: more rows than persons, so ClickHouse, left to choose, would build the join
    # from the persons and lose their order.
    insert_distinct_ids(deps.clickhouse, deps.table, [(ORDER_PROJECT, f"d{n}-{pid}", pid, 0, 1, T0)
                                                      for pid in ids for n in range(4)])
    insert_distinct_ids(deps.clickhouse, deps.table, [(ORDER_PROJECT, f"d0-{old}", new, 0, 2, T0) for old, new in moved.items()])
    owned: dict[str, list[str]] = {pid: [] for pid in ids if pid not in deleted}
    for pid in ids:
        for n in range(4):
            if (owner := moved.get(pid, pid) if n == 0 else pid) in owned:
                owned[owner].append(f"d{n}-{pid}")

    query = _windowed_persons_query(deps, monkeypatch, 5_000, project_id=ORDER_PROJECT)
    with deps.clickhouse.session("test persons order") as session:
        planned = extract.plan(session, query)
        sql, params = query.stream_sql(after=None, window=planned.windows[1])
        pipeline = "\n".join(row[0] for row in session.client.query(
            f"EXPLAIN PIPELINE {sql}", parameters=params, settings=extract.stream_settings(query, 64_000)).result_rows)
        rows = [row for chunk in extract.iter_chunks(session, query, chunk_bytes=64_000, windows=planned.windows)
                for row in chunk.select(["id", "distinct_ids"]).to_pylist()]
    assert len(planned.windows) == 3
    assert "algorithm: InOrder" in pipeline
    assert "MergeSortingTransform" not in pipeline
    assert [row["id"] for row in rows] == sorted(owned, key=_ch_uuid_order)
    assert {row["id"]: json.loads(row["distinct_ids"]) for row in rows} == {k: sorted(v) for k, v in owned.items()}
