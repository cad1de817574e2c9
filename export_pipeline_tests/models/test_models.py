"""The exportable-model seam: a model is a declaration, and the generic extract and serialize path serves any
model declared so, not only events."""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.extract import ExportQuery, iter_chunks
from export_pipeline.engine.formats import ROW_FORMATS, Format
from export_pipeline.engine.model import Column, ExportModel, KeyColumn
from export_pipeline.engine.resources import Resource, register_models
from export_pipeline.engine.serialize import PartWriter, file_name
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.run import run_export
from export_pipeline.models import MODELS
from export_pipeline.models.events import events_model
from export_pipeline.models.groups import groups_model
from export_pipeline_tests.fakes.exportdata import (
    expected_json_properties,
    expected_rows,
    insert_events,
    known_events,
    read_export_rows,
)

PROJECT = 9811
AS_OF = datetime(2030, 1, 1, tzinfo=UTC)


def sessions_model(table: EventsTable) -> ExportModel:
    """A model the export path has never seen: other columns, another key (non-unique: one uuid is twice)."""
    c = table.col
    return ExportModel(
        name="test_sessions",
        source=table.qualified_name,
        columns=(
            Column("uuid", f"toString({c('uuid')})", pa.string()),
            Column("distinct_id", c("distinct_id"), pa.string()),
            Column("properties", c("properties"), pa.string(), json_object=True),
        ),
        key=(KeyColumn("uuid", c("uuid"), "UUID"),),
        filters=lambda spec, as_of: ([f"{c('project_id')} = {{project_id:UInt64}}"], {"project_id": spec.project_id}),
    )


@pytest.fixture(scope="module", autouse=True)
def known_data(clickhouse, events_table, store):
    insert_events(clickhouse, events_table, known_events(PROJECT))
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)


def test_events_are_a_registered_model_whose_values_are_all_bound_parameters():
    assert MODELS["events"] is events_model
    spec = parse_spec(project_id=PROJECT, requested_by="maria", date_from="2026-01-01", events=["signed_up"])
    after = (datetime(2026, 1, 15, 12, 0, 0, 123456, tzinfo=UTC), "3f0c5e0a-0000-4000-8000-000000000000")
    sql, params = ExportQuery(events_model(EventsTable()), spec, AS_OF).chunk_sql(after=after, limit=500)
    assert params == {
        "project_id": PROJECT, "as_of": "2030-01-01 00:00:00.000000", "date_from": "2026-01-01 00:00:00.000000",
        "events": ["signed_up"], "after_timestamp": "2026-01-15 12:00:00.123456",
        "after_uuid": "3f0c5e0a-0000-4000-8000-000000000000", "limit": 500,
    }
    for value in ("9811", "signed_up", "2026-01", "3f0c5e0a", "500"):
        assert value not in sql
    assert sql.count("toString(`uuid`) AS uuid") == 1
    assert sql.endswith("ORDER BY `timestamp`, `uuid` LIMIT {limit:UInt64} WITH TIES")


def test_each_resource_has_its_model_or_its_file_writer_registered_once():
    import export_pipeline.exports.run  # noqa: F401  (registers the file writers)
    from export_pipeline.exports.insight_files import write_insight_files
    from export_pipeline.exports.recordings import write_recordings

    assert {r: r.model(EventsTable()).name for r in Resource if r in MODELS} == {
        Resource.EVENTS: "events", Resource.PERSONS: "persons", Resource.GROUPS: "groups", Resource.COHORT: "cohort",
        Resource.RECORDINGS: "recordings"}
    assert {r: r.file_writer for r in Resource if r.file_writer} == {
        Resource.RECORDINGS: write_recordings, Resource.INSIGHT: write_insight_files,
        Resource.DASHBOARD: write_insight_files}
    with pytest.raises(ValueError, match="events exports already have a model"):
        register_models({Resource.EVENTS: groups_model})
    with pytest.raises(LookupError, match="No model is registered for insight exports"):
        Resource.INSIGHT.model(EventsTable())
    assert [r.value for r in Resource if Format.PARQUET in r.formats] == [
        "events", "persons", "groups", "cohort", "recordings"]


def test_formats_name_their_files_and_keep_their_earlier_name():
    assert Format("csv") is Format.CSV is Format["CSV"]
    assert [(f.value, f.extension, f.content_type, f.default_compression.value, f.is_row) for f in Format] == [
        ("ndjson", "ndjson", "application/x-ndjson", "gzip", True),
        ("json", "json", "application/json", "gzip", True),
        ("csv", "csv", "text/csv; charset=utf-8", "gzip", True),
        ("parquet", "parquet", "application/vnd.apache.parquet", "zstd", True),
        ("xlsx", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "none", False),
        ("png", "png", "image/png", "none", False)]
    assert [file_name(3, fmt, Compression.ZSTD) for fmt in ROW_FORMATS] == [
        "part-00003.ndjson.zst", "part-00003.json.zst", "part-00003.csv.zst", "part-00003.parquet"]


@pytest.mark.parametrize("fmt", [Format.NDJSON, Format.CSV, Format.PARQUET])
def test_a_new_model_is_exported_by_the_generic_path_without_losing_or_repeating_rows(deps, fmt):
    model = sessions_model(deps.table)
    query = ExportQuery(model, parse_spec(project_id=PROJECT, requested_by="maria", format=fmt.value), AS_OF)
    writer = PartWriter(deps.storage, "sessions", model, fmt, Compression.NONE, part_size=1 << 30)
    chunks = 0
    with deps.clickhouse.session("test model") as session:
        for chunk in iter_chunks(session, query, chunk_bytes=64 * 1024):  # ~1,000 rows a chunk
            chunks += 1
            writer.write(chunk)
    (written,) = writer.finish()

    assert chunks >= 3 and written.rows == 3_002
    rows = _read_rows(fmt, deps.storage.read_bytes(written.key))
    assert [list(row) for row in rows[:1]] == [["uuid", "distinct_id", "properties"]]
    json_output = fmt is Format.NDJSON
    expected = Counter(
        json.dumps([str(uuid), distinct_id, expected_json_properties(text) if json_output else text])
        for _, uuid, _, _, distinct_id, _, text in known_events(PROJECT)
    )
    assert Counter(json.dumps([row["uuid"], row["distinct_id"], row["properties"]]) for row in rows) == expected


def _read_rows(fmt: Format, data: bytes) -> list[dict]:
    if fmt is Format.NDJSON:
        return [json.loads(line) for line in data.decode().splitlines()]
    if fmt is Format.CSV:
        return list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    return pl.read_parquet(io.BytesIO(data)).to_dicts()


@pytest.mark.parametrize(("fmt", "compression"), [("ndjson", "gzip"), ("json", "none"), ("csv", "zstd"), ("parquet", "zstd")])
def test_events_cross_chunk_boundaries_exactly_in_every_format(deps, clickhouse, events_table, fmt, compression):
    deps = replace(deps, settings=deps.settings.model_copy(update={"chunk_bytes": 64 * 1024}))  # ~1,000 rows a chunk
    request = deps.store.create(
        parse_spec(project_id=PROJECT, requested_by="maria", format=fmt, compression=compression), source="test"
    )
    result = run_export(request.id, deps, run_id=str(uuid.uuid4()), run_is_active=lambda _: False,
                        log=logging.getLogger("test"))

    exported = read_export_rows(deps.storage, request.storage_prefix, read_manifest(deps.storage, result.manifest_key))
    assert exported == expected_rows(clickhouse, events_table, PROJECT, json_properties=fmt in ("ndjson", "json"))
    assert result.rows == 3_002
