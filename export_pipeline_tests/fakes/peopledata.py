"""Hand-built persons, distinct ids and groups for the people tests, and reading exported files back as
plain rows (JSON text decoded, timestamps as ISO text) in every format."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import uuid
from datetime import UTC, datetime

import polars as pl
import zstandard

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.run import run_export

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def person_uuid(project_id: int, n: int) -> str:
    return str(uuid.UUID(int=(project_id << 64) + n))


def insert_persons(clickhouse: ClickHouse, table: EventsTable, rows: list[tuple]) -> None:
    """rows: (project_id, id, created_at, properties_text, is_identified, is_deleted, version, _timestamp)."""
    with clickhouse.session("test persons") as session:
        session.client.insert(table.tables.get("persons", "persons"), [list(r) for r in rows], column_names=[
            "project_id", "id", "created_at", "properties", "is_identified", "is_deleted", "version", "_timestamp"], database=table.database)


def insert_distinct_ids(clickhouse: ClickHouse, table: EventsTable, rows: list[tuple]) -> None:
    """rows: (project_id, distinct_id, person_id, is_deleted, version, _timestamp)."""
    with clickhouse.session("test distinct ids") as session:
        session.client.insert(table.tables.get("person_distinct_ids", "person_distinct_ids"), [list(r) for r in rows],
                              column_names=["project_id", "distinct_id", "person_id", "is_deleted", "version", "_timestamp"], database=table.database)


def insert_groups(clickhouse: ClickHouse, table: EventsTable, rows: list[tuple]) -> None:
    """rows: (project_id, group_type_index, group_key, created_at, properties_text, _timestamp)."""
    with clickhouse.session("test groups") as session:
        session.client.insert(table.tables.get("groups", "groups"), [list(r) for r in rows], column_names=[
            "project_id", "group_type_index", "group_key", "created_at", "properties", "_timestamp"], database=table.database)


def export_rows(deps, spec) -> list[dict]:
    """Store and run an export of `spec`; every row of every file, in file order."""
    request = deps.store.create(spec, source="test")
    result = run_export(request.id, deps, run_id=str(uuid.uuid4()), run_is_active=lambda _: False,
                        log=logging.getLogger("test"))
    manifest = read_manifest(deps.storage, result.manifest_key)
    rows: list[dict] = []
    for entry in manifest["files"]:
        raw = deps.storage.read_bytes(f"{request.storage_prefix}/{entry['name']}")
        rows += plain_rows(entry["name"], raw)
    assert result.rows == len(rows) == sum(f["rows"] for f in manifest["files"])
    return rows


def plain_rows(name: str, raw: bytes) -> list[dict]:
    """JSON-text columns (properties, distinct_ids) decoded, timestamps as ISO text, in every format."""
    data = raw
    if name.endswith(".gz"):
        data = gzip.decompress(raw)
    elif name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    if ".ndjson" in name:
        return [json.loads(line) for line in data.decode().splitlines()]
    if ".json" in name:
        return json.loads(data)
    if ".csv" in name:
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    else:
        rows = [{k: (v.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(v, datetime) else v) for k, v in row.items()}
                for row in pl.read_parquet(io.BytesIO(data)).to_dicts()]
    for row in rows:
        for column in ("properties", "distinct_ids"):
            if column in row:
                row[column] = json.loads(row[column])
        for column in ("version", "group_type_index"):
            if column in row:
                row[column] = int(row[column])
        if isinstance(row.get("is_identified"), str):
            row["is_identified"] = row["is_identified"] == "true"
    return rows
