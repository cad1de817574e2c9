"""Known events for export tests, and readers that turn exported files back into comparable rows."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import polars as pl
import zstandard

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.storage import ExportStorage

COLUMNS = ["project_id", "uuid", "event", "timestamp", "distinct_id", "person_id", "properties"]
INGESTED_COLUMNS = [*COLUMNS, "created_at"]  # rows that set their own ingestion time
T0 = datetime(2026, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)

TRICKY_PROPERTIES = [
    '{"a": "ünï 🎉 \\"q\\" \\\\ back", "n": null, "nested": {"x": [1, null, "y"]}, "ok": true}',
    '{\n  "pretty": true,\r\n  "s": "line1\\nline2\\ttab"\n}',  # raw newlines as JSON whitespace
    "",
    "not json at all",
    "[1, 2, 3]",
    "null",
    '{"big": "' + "x" * 20_000 + '"}',
    '{"日本語": "テスト", "emoji": "👩‍💻", "quote": "say \\"hi\\""}',
    ' \t\n {"leading": "whitespace before the object"}',
]
EVENT_NAMES = ["$pageview", "signed_up", "ünïcödé 🎉", 'quote"event']
DISTINCT_IDS = ['user"1', "tab\tuser", "new\nline", "ユーザー"]


def known_events(project_id: int) -> list[list]:
    """~3,000 events: 2,500 sharing one timestamp, a duplicated (timestamp, uuid) key, tricky text, two months."""
    rows: list[list] = []
    rng = uuid.UUID(int=project_id)  # deterministic UUIDs derived from the project and index

    def make_uuid(index: int) -> uuid.UUID:
        return uuid.uuid5(rng, str(index))

    for index in range(2_500):
        rows.append(
            [project_id, make_uuid(index), EVENT_NAMES[index % 4], T0, DISTINCT_IDS[index % 4],
             make_uuid(10_000 + index % 7), TRICKY_PROPERTIES[index % len(TRICKY_PROPERTIES)]]
        )
    for index in range(2_500, 3_000):
        moment = T0 + timedelta(days=(index % 60) - 20, microseconds=index)
        rows.append(
            [project_id, make_uuid(index), EVENT_NAMES[index % 4], moment, DISTINCT_IDS[index % 4],
             make_uuid(10_000 + index % 7), TRICKY_PROPERTIES[index % len(TRICKY_PROPERTIES)]]
        )
    duplicate = [project_id, make_uuid(99_999), "$pageview", T0 + timedelta(seconds=1), "dup", make_uuid(1), "{}"]
    rows.extend([duplicate, list(duplicate)])  # the same key twice: both must be exported
    return rows


def insert_events(clickhouse: ClickHouse, table: EventsTable, rows: list[list]) -> None:
    with clickhouse.session("test insert") as session:
        session.client.insert(table.table, rows, column_names=COLUMNS, database=table.database)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expected_json_properties(text: str) -> object:
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    return {} if text == "" else {"$unparsed": text}


def expected_rows(
    clickhouse: ClickHouse,
    table: EventsTable,
    project_id: int,
    *,
    json_properties: bool,
    where: str = "",
    parameters: dict | None = None,
) -> Counter:
    """The multiset of rows ClickHouse holds for the project (optionally filtered), as exported values."""
    sql = (
        "SELECT project_id, toString(uuid), toString(event), timestamp, distinct_id, toString(person_id), "
        f"created_at, properties FROM {table.qualified_name} WHERE project_id = {{p:UInt64}} {where}"
    )
    with clickhouse.session("test expected") as session:
        result = session.client.query(sql, parameters={"p": project_id, **(parameters or {})}).result_rows
    return Counter(
        _key(
            {
                "project_id": row[0],
                "uuid": row[1],
                "event": row[2],
                "timestamp": iso(row[3]),
                "distinct_id": row[4],
                "person_id": row[5],
                "created_at": iso(row[6]),
                "properties": expected_json_properties(row[7]) if json_properties else row[7],
            }
        )
        for row in result
    )


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def _decompressed(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def read_export_rows(storage: ExportStorage, prefix: str, manifest: dict) -> Counter:
    """Every row of every file listed in the manifest, as the same comparable keys as `expected_rows`."""
    rows: Counter = Counter()
    for entry in manifest["files"]:
        raw = storage.read_bytes(f"{prefix}/{entry['name']}")
        rows.update(_key(row) for row in parse_file(entry["name"], raw))
    return rows


def parse_file(name: str, raw: bytes) -> list[dict]:
    data = _decompressed(name, raw)
    if ".ndjson" in name:
        text = data.decode()
        assert text == "" or text.endswith("\n")
        return [json.loads(line) for line in text.split("\n") if line]
    if ".json" in name:
        return json.loads(data)
    if ".csv" in name:
        reader = csv.DictReader(io.StringIO(data.decode(), newline=""))
        return [{**row, "project_id": int(row["project_id"])} for row in reader]
    frame = pl.read_parquet(io.BytesIO(data))  # UUIDs as their 16 bytes (Parquet's UUID logical type)
    return [
        {**row, "timestamp": iso(row["timestamp"]), "created_at": iso(row["created_at"]),
         "uuid": str(uuid.UUID(bytes=row["uuid"])), "person_id": str(uuid.UUID(bytes=row["person_id"]))}
        for row in frame.to_dicts()
    ]
