"""Persons as a batch export: every version of the persons table, cut into intervals by `_timestamp`. Reading
back every file of every interval gives exactly the table's rows, each once, whatever was exported late or
re-run; the latest state is rebuilt from the files as ReplacingMergeTree does."""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from export_pipeline.batch_exports.plan import backfill_intervals, due_intervals
from export_pipeline.batch_exports.query import interval_query
from export_pipeline.batch_exports.run import BatchDeps, build_batch_deps, export_interval
from export_pipeline.batch_exports.targets import open_target
from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.db import get_engine
from export_pipeline.engine.extract import QUERY_SETTINGS
from export_pipeline.errors import InvalidRequest
from export_pipeline.models import BATCH_MODELS
from export_pipeline.storage import ExportStorage
from export_pipeline_tests.fakes.exportdata import iso, parse_file
from export_pipeline_tests.fakes.peopledata import insert_persons, person_uuid

PROJECT = 9988
DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
COLUMNS = ["project_id", "id", "version", "created_at", "is_identified", "is_deleted", "properties", "_timestamp"]


def _version(n: int, version: int, ingested: datetime, *, deleted: bool = False) -> tuple:
    return (PROJECT, person_uuid(PROJECT, n), DAY0 - timedelta(days=n), json.dumps({"n": n, "v": version, "s": "é\n"}),
            int(n % 2 == 0), int(deleted), version, ingested)


@pytest.fixture(scope="module")
def engine(settings, events_table) -> Iterator[ClickHouse]:
    """One embedded session for the whole module, with merges stopped: merges would collapse older versions
    while the test runs (the table's rows would move under it), and SYSTEM STOP MERGES lasts only as long as
    the engine stays open."""
    clickhouse = ClickHouse.from_settings(settings)
    clickhouse.keep_open("persons batch export test")
    with clickhouse.session() as session:
        session.client.command(f"SYSTEM STOP MERGES {events_table.other('persons')}")
    try:
        yield clickhouse
    finally:
        with clickhouse.session() as session:
            session.client.command(f"SYSTEM START MERGES {events_table.other('persons')}")
        clickhouse.close()


@pytest.fixture()
def batch(settings, engine) -> BatchDeps:
    return build_batch_deps(settings, get_engine(settings.database_url), engine, sleep=lambda _: None)


def _table_rows(clickhouse, table: str) -> Counter:
    sql = (f"SELECT project_id, toString(id), version, created_at, toBool(is_identified), toBool(is_deleted), "
           f"properties, _timestamp FROM {table} WHERE project_id = {{project:UInt64}}")
    with clickhouse.session("test read persons") as session:
        rows = session.client.query(sql, parameters={"project": PROJECT}).result_rows
    return Counter(json.dumps(dict(zip(COLUMNS, (
        project, id_, version, iso(created), identified, deleted, json.loads(properties),
        iso(ingested)), strict=True))) for project, id_, version, created, identified, deleted, properties, ingested
        in rows)


def _files_rows(storage: ExportStorage) -> Counter:
    rows: Counter = Counter()
    for key in storage.list_keys(""):
        if not key.endswith("manifest.json"):
            rows.update(json.dumps({name: row[name] for name in COLUMNS}) for row in parse_file(key, storage.read_bytes(key)))
    return rows


def _export_due(batch: BatchDeps, destination, now: datetime, run: str) -> list[datetime]:
    done = []
    while due := due_intervals(batch.destinations.require(destination.id), batch.destinations, batch.runs, now):
        for item in due:
            export_interval(destination.id, item.interval.start, batch, run_id=f"{run}-{item.interval.label}")
            done.append(item.interval.start)
    return done


def test_hourly_person_versions_with_late_versions_give_every_row_exactly_once(
        batch, engine, events_table, tmp_path):
    hour = timedelta(hours=1)
    # One insert per version: ClickHouse collapses same-id rows within one insert (optimize_on_insert).
    for row in [_version(1, 0, DAY0 + timedelta(minutes=5)), _version(2, 0, DAY0 + timedelta(minutes=59)),
                _version(3, 0, DAY0 + hour), _version(1, 1, DAY0 + hour + timedelta(minutes=30)),
                _version(4, 0, DAY0 + 2 * hour - timedelta(microseconds=1))]:
        insert_persons(engine, events_table, [row])
    destination = batch.destinations.create(PROJECT, "sam@example.com", {
        "model": "persons", "url": f"file://{tmp_path}", "interval": "hour", "start_at": DAY0.isoformat(),
        "settle_seconds": 0, "key_template": "{project_id}/{model}/{day}"})
    storage = open_target(destination).storage
    assert _export_due(batch, destination, DAY0 + 3 * hour, "live") == [DAY0, DAY0 + hour, DAY0 + 2 * hour]
    assert [(r.state.value, r.rows) for r in batch.runs.list(destination.id)] == [
        ("succeeded", 2), ("succeeded", 3), ("skipped", 0)]
    assert _files_rows(storage) == _table_rows(engine, events_table.other("persons"))

    # Late versions, ingested after those hours were exported: person 1 again, person 3 deleted, a new person.
    for row in [_version(1, 2, DAY0 + 3 * hour), _version(3, 1, DAY0 + 4 * hour + timedelta(minutes=1), deleted=True),
                _version(5, 0, DAY0 + 4 * hour + timedelta(minutes=2))]:
        insert_persons(engine, events_table, [row])
    assert _export_due(batch, destination, DAY0 + 6 * hour, "live") == [DAY0 + h * hour for h in (3, 4, 5)]
    # A backfill over the exported range, then single re-runs: each replaces its interval's files.
    to_run, skipped = backfill_intervals(batch.destinations.require(destination.id), DAY0, DAY0 + 6 * hour, batch,
                                         DAY0 + 6 * hour)
    assert ([i.start for i in to_run], skipped) == ([DAY0 + h * hour for h in (0, 1, 3, 4)], 2)
    for interval in to_run:
        export_interval(destination.id, interval.start, batch, run_id=f"backfill-{interval.label}")
    for start in (DAY0, DAY0 + 4 * hour):
        export_interval(destination.id, start, batch, run_id=f"rerun-{start:%H}")
    table = _table_rows(engine, events_table.other("persons"))
    files = _files_rows(storage)
    assert files == table and sum(table.values()) == 8 and set(files.values()) == {1}

    first = batch.runs.get(destination.id, DAY0)
    assert first.manifest_key == f"{PROJECT}/persons/01/20261101T000000Z-20261101T010000Z/manifest.json"
    manifest = json.loads(storage.read_bytes(first.manifest_key))
    assert (manifest["model"], manifest["ingestion_column"], manifest["row_count"]) == ("persons", "_timestamp", 2)
    assert [f["name"] for f in manifest["files"]] == ["part-00000.ndjson.gz"]

    # The latest state, as a consumer rebuilds it: per person the highest version, unless that one is deleted.
    latest: dict[str, dict] = {}
    for text in files:
        row = json.loads(text)
        if row["id"] not in latest or row["version"] > latest[row["id"]]["version"]:
            latest[row["id"]] = row
    assert sorted((row["id"], row["version"]) for row in latest.values() if not row["is_deleted"]) == sorted(
        [(person_uuid(PROJECT, 1), 2), (person_uuid(PROJECT, 2), 0), (person_uuid(PROJECT, 4), 0),
         (person_uuid(PROJECT, 5), 0)])


def test_a_model_without_an_ingestion_time_column_is_refused(batch, tmp_path):
    for model in ("groups", "cohort"):
        with pytest.raises(InvalidRequest) as refused:
            batch.destinations.create(PROJECT, "sam", {"model": model, "url": str(tmp_path),
                                                       "start_at": DAY0.isoformat()})
        assert refused.value.details == {"model": f"{model} has no ingestion-time column, so it cannot be cut into "
                                                  "intervals that never overlap; batch exports take events, persons"}
    with pytest.raises(InvalidRequest) as unknown:
        batch.destinations.create(PROJECT, "sam", {"model": "sessions", "url": str(tmp_path),
                                                   "start_at": DAY0.isoformat()})
    assert unknown.value.details == {"model": "must be one of events, persons, got 'sessions'"}


def test_person_versions_in_parquet_keep_their_types(batch, engine, events_table, tmp_path):
    project = PROJECT + 1
    versions = [(project, person_uuid(project, n), DAY0, "{}", 1, int(v == 1), v, DAY0 + timedelta(hours=n + v))
                for n in range(3) for v in range(2)]
    for row in versions:
        insert_persons(engine, events_table, [row])
    destination = batch.destinations.create(project, "sam@example.com", {
        "model": "persons", "url": f"file://{tmp_path}", "interval": "day", "start_at": DAY0.isoformat(),
        "settle_seconds": 0, "format": "parquet"})
    export_interval(destination.id, DAY0, batch, run_id="parquet-day")
    storage = open_target(destination).storage
    [part] = [key for key in storage.list_keys("") if key.endswith(".parquet")]
    frame = pl.read_parquet(io.BytesIO(storage.read_bytes(part)))
    assert frame.schema == pl.Schema({
        "project_id": pl.UInt64, "id": pl.Binary, "version": pl.UInt64, "created_at": pl.Datetime("us", "UTC"),
        "is_identified": pl.Boolean, "is_deleted": pl.Boolean, "properties": pl.String,
        "_timestamp": pl.Datetime("us", "UTC")})
    exported = [(str(uuid.UUID(bytes=row["id"])), row["version"], row["is_deleted"], row["_timestamp"])
                for row in frame.to_dicts()]
    assert exported == [(id_, version, bool(deleted), ingested)
                        for _p, id_, _c, _props, _i, deleted, version, ingested in versions]


def test_a_chunk_resumes_strictly_after_the_last_id_and_version(batch, engine, events_table, tmp_path):
    # What a run does when it hands the engine over mid-interval and starts a new query after its last key.
    project = PROJECT + 2
    for n, version in [(1, 0), (1, 1), (2, 0), (2, 5), (3, 0)]:
        insert_persons(engine, events_table, [(project, person_uuid(project, n), DAY0, "{}", 0, 0, version,
                                               DAY0 + timedelta(minutes=n * 10 + version))])
    destination = batch.destinations.create(project, "sam", {"model": "persons", "url": str(tmp_path),
                                                             "start_at": DAY0.isoformat(), "settle_seconds": 0})
    query = interval_query(BATCH_MODELS["persons"](events_table), destination, destination.interval_at(DAY0))
    where, params = query.where(after=(person_uuid(project, 2), 0))
    sql = f"SELECT toString(id), version FROM {query.model.source} WHERE {where} ORDER BY {query.model.order_by()}"
    with engine.session() as session:
        rows = session.client.query(sql, parameters=params, settings=QUERY_SETTINGS).result_rows
    assert rows == [(person_uuid(project, 2), 5), (person_uuid(project, 3), 0)]
