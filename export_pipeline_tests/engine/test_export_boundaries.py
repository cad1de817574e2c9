"""Exact row sets where a streamed export is cut: at chunk boundaries, at ClickHouse block boundaries, where
the stream ends to hand the engine over and restarts after a key, and where an export resumes after a key.
The data puts the hard cases on those edges: many rows on one timestamp (longer than a block and than a
chunk), exact duplicates of the full key, and rows that differ from a neighbour only in the uuid or by one
microsecond."""

from __future__ import annotations

import csv
import io
import json
import logging
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.clickhouse.connection import Session
from export_pipeline.engine import csv_blocks, extract
from export_pipeline.engine.encode_sql import ENCODE_SETTINGS, LINE
from export_pipeline.engine.extract import ExportPlan, ExportQuery, Window, iter_chunks, plan
from export_pipeline.engine.serialize import ROWS
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.run import run_export
from export_pipeline.models.events import events_model
from export_pipeline_tests.fakes.exportdata import expected_rows, insert_events, iso, parse_file

PROJECT = 9_877
AS_OF = datetime(2030, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 8, 0, 0, 500_000, tzinfo=UTC)
EDGE = datetime(2026, 3, 31, 23, 59, 59, 999_999, tzinfo=UTC)  # the last microsecond of a monthly partition
APRIL = datetime(2026, 4, 1, tzinfo=UTC)


def boundary_events() -> list[list]:
    """1,207 rows: 600 on one timestamp, a key present 4 times, neighbours 1 µs apart around a month's edge."""
    base = uuid.UUID(int=PROJECT)

    def row(moment: datetime, index: int, properties: str = '{"i": 1}') -> list:
        return [PROJECT, uuid.uuid5(base, str(index)), "e", moment, f"d{index}", uuid.uuid5(base, "p"), properties]

    rows = [row(T1, index, json.dumps({"i": index, "pad": "x" * (index % 50)})) for index in range(600)]
    duplicate = row(T1 + timedelta(seconds=1), 10_000, "not json")
    rows += [list(duplicate) for _ in range(4)]
    for index in range(600, 1_200):  # pairs: the same microsecond, then the next one
        rows.append(row(T1 + timedelta(seconds=2, microseconds=index // 2), index))
    for step in (-1, 0, 1):  # around a partition (and the parts') edge
        rows.append(row(EDGE + timedelta(microseconds=step), 20_000 + step))
    return rows


@pytest.fixture(scope="module", autouse=True)
def data(clickhouse, events_table, store):
    # Three inserts, three parts per month: a stream merges them, and cuts fall inside each.
    rows = boundary_events()
    for start in range(3):
        insert_events(clickhouse, events_table, rows[start::3])
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)


@pytest.fixture()
def small_blocks(monkeypatch):
    """ClickHouse blocks of 64 rows: the 600-row group and the duplicates span several blocks."""
    monkeypatch.setattr(extract, "MIN_BLOCK_ROWS", 64)


def ordered_keys(clickhouse, events_table, after: tuple | None = None) -> list[tuple]:
    where, params = "", {"p": PROJECT}
    if after is not None:
        where, params = " AND (timestamp, uuid) > ({t:DateTime64(6, 'UTC')}, {u:UUID})", {
            **params, "t": after[0].strftime("%Y-%m-%d %H:%M:%S.%f"), "u": after[1]}
    sql = (f"SELECT timestamp, toString(uuid) FROM {events_table.qualified_name} WHERE project_id = {{p:UInt64}}"
           f"{where} ORDER BY timestamp, uuid")
    with clickhouse.session("test keys") as session:
        return [(iso(t), u) for t, u in session.client.query(sql, parameters=params).result_rows]


def stream(deps, fmt: str, *, chunk_bytes: int, after: tuple | None = None) -> list[pa.Table]:
    """The chunks an export reads: a monthly window at a time, as planned."""
    query = ExportQuery(events_model(deps.table), parse_spec(project_id=PROJECT, requested_by="maria", format=fmt), AS_OF)
    with deps.clickhouse.session("test stream") as session:
        return list(iter_chunks(session, query, chunk_bytes=chunk_bytes, after=after, windows=plan(session, query).windows))


def test_the_plan_counts_the_rows_and_cuts_windows_at_the_partitions_edge(deps):
    query = ExportQuery(events_model(deps.table), parse_spec(project_id=PROJECT, requested_by="maria"), AS_OF)
    with deps.clickhouse.session("test plan") as session:
        planned = plan(session, query)

    # March's 1,206 rows, then the one at April's first microsecond; the outer windows are open-ended.
    assert planned == ExportPlan(1_207, (Window(None, APRIL), Window(APRIL, None)))


def chunk_keys(chunk: pa.Table, fmt: str) -> list[tuple]:
    """(timestamp, uuid) of every row of a chunk, in order."""
    if ROWS in chunk.column_names:  # ClickHouse's own CSV, whole blocks at a time: read the rows themselves
        rows = list(csv.reader(io.StringIO(b"".join(chunk.column(LINE).to_pylist()).decode())))
        assert len(rows) == sum(chunk.column(ROWS).to_pylist())
        return [(row[3], row[1]) for row in rows]
    if fmt == "parquet":  # the output columns themselves, the uuid as Parquet stores it
        timestamps, uuids = chunk.column("timestamp").to_pylist(), chunk.column("uuid").to_pylist()
        return [(iso(t), str(uuid.UUID(bytes=u))) for t, u in zip(timestamps, uuids, strict=True)]
    names = ["_key_timestamp", "_key_uuid"]
    return [(iso(t), u) for t, u in zip(*(chunk.column(n).to_pylist() for n in names), strict=True)]


def test_csv_comes_as_clickhouse_writes_it_in_whole_blocks_and_other_formats_as_lines(deps, small_blocks):
    """The embedded engine streams whole blocks, so CSV is ClickHouse's own writer's (csv_blocks.py); the
    lines are the same bytes formatRow builds, which the other path (a server) streams."""
    by_format = {fmt: stream(deps, fmt, chunk_bytes=8 * 1024) for fmt in ("csv", "ndjson")}
    assert ROWS in by_format["csv"][0].column_names and ROWS not in by_format["ndjson"][0].column_names

    query = ExportQuery(events_model(deps.table), parse_spec(project_id=PROJECT, requested_by="maria", format="csv"),
                        AS_OF)
    sql, params = query.stream_sql(after=None)  # formatRow lines, as streamed from a server
    with deps.clickhouse.session("test lines") as session:
        with session.arrow_stream(sql, params, {**extract.QUERY_SETTINGS, **ENCODE_SETTINGS}) as blocks:
            lines = b"".join(line.encode() for block in blocks for line in block.column(LINE).to_pylist())
    assert b"".join(b"".join(chunk.column(LINE).to_pylist()) for chunk in by_format["csv"]) == lines


@pytest.mark.parametrize("fmt", ["ndjson", "json", "csv", "parquet"])
@pytest.mark.parametrize("chunk_bytes", [4 * 1024, 23 * 1024, 200 * 1024])
def test_chunks_are_the_rows_in_key_order_and_never_split_a_key(deps, clickhouse, events_table, small_blocks, fmt,
                                                                 chunk_bytes):
    chunks = stream(deps, fmt, chunk_bytes=chunk_bytes)

    assert [key for chunk in chunks for key in chunk_keys(chunk, fmt)] == ordered_keys(clickhouse, events_table)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert chunk_keys(before, fmt)[-1] != chunk_keys(after, fmt)[0]  # in key order: a key's rows in one chunk
    if chunk_bytes < 200 * 1024:
        assert len(chunks) > 3


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
@pytest.mark.parametrize("position", ["on the 600-row timestamp", "on the 4-times key", "at the month's edge",
                                      "on the next month's first row"])
def test_a_stream_started_after_a_key_has_exactly_the_rows_after_it(deps, clickhouse, events_table, small_blocks,
                                                                    fmt, position):
    keys = ordered_keys(clickhouse, events_table)
    index = {"on the 600-row timestamp": 300, "on the 4-times key": 601, "at the month's edge": len(keys) - 2,
             "on the next month's first row": len(keys) - 1}[position]
    moment, key_uuid = keys[index]
    after = (datetime.strptime(moment, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC), key_uuid)

    chunks = stream(deps, fmt, chunk_bytes=8 * 1024, after=after)

    expected = ordered_keys(clickhouse, events_table, after=after)
    assert [key for chunk in chunks for key in chunk_keys(chunk, fmt)] == expected
    last_equal = max(i for i, key in enumerate(keys) if key == keys[index])  # ClickHouse's UUID order, not text's
    assert expected == keys[last_equal + 1:] and len(expected) < len(keys) - index


@pytest.mark.parametrize(("fmt", "compression"), [("ndjson", "none"), ("json", "gzip"), ("csv", "none"),
                                                  ("parquet", "zstd")])
def test_handing_the_engine_over_after_every_chunk_exports_every_row_once(deps, clickhouse, events_table, small_blocks,
                                                                         monkeypatch, fmt, compression):
    """Another process waits at every chunk: the stream ends, the engine is handed over, a new query starts after
    the last key; parts are small, so part boundaries fall between and inside chunks too."""
    handovers = []
    monkeypatch.setattr(Session, "is_wanted", lambda self: True)
    monkeypatch.setattr(Session, "checkpoint", lambda self: handovers.append(1))
    deps = replace(deps, settings=deps.settings.model_copy(update={"chunk_bytes": 8 * 1024, "part_size_bytes": 8_000}))
    request = deps.store.create(
        parse_spec(project_id=PROJECT, requested_by="maria", format=fmt, compression=compression), source="test")

    result = run_export(request.id, deps, run_id=str(uuid.uuid4()), run_is_active=lambda _: False,
                        log=logging.getLogger("test"))

    manifest = read_manifest(deps.storage, result.manifest_key)
    parts = [parse_file(entry["name"], deps.storage.read_bytes(f"{request.storage_prefix}/{entry['name']}"))
             for entry in manifest["files"]]
    rows = [row for part in parts for row in part]
    assert Counter(json.dumps(row, sort_keys=True) for row in rows) == Counter(
        json.dumps(json.loads(key), sort_keys=True)
        for key in expected_rows(clickhouse, events_table, PROJECT, json_properties=fmt in ("ndjson", "json")).elements()
    )
    assert [(row["timestamp"], row["uuid"]) for row in rows] == ordered_keys(clickhouse, events_table)
    assert len(handovers) >= 10 and len(manifest["files"]) >= 2
    assert [entry["rows"] for entry in manifest["files"]] == [len(part) for part in parts]
    for before, after in zip(parts, parts[1:], strict=False):  # a part ends where a key does: resumable after it
        assert (before[-1]["timestamp"], before[-1]["uuid"]) != (after[0]["timestamp"], after[0]["uuid"])


def test_key_aligned_cuts_only_where_the_key_changes():
    """Blocks cut anywhere, including inside runs of one key; a chunk takes about 2 rows, then the rest of the
    last one's key."""
    keys = [1] * 7 + [2, 3, 3, 3] + [4] * 20 + [5]
    table = pa.table({"k": keys, "n": list(range(len(keys)))})
    blocks = [table.slice(start, 3) for start in range(0, len(keys), 3)]
    per_row = table.nbytes // len(keys)

    chunks = list(extract._key_aligned(iter(blocks), ["k"], chunk_bytes=2 * per_row))

    assert [chunk.column("n").to_pylist() for chunk in chunks] == [
        list(range(0, 7)), [7, 8, 9, 10], list(range(11, 31)), [31]]


def test_a_process_waiting_for_the_engine_gets_it_mid_stream_and_the_stream_resumes_exactly(deps, clickhouse,
                                                                                            events_table, small_blocks):
    query = ExportQuery(events_model(deps.table), parse_spec(project_id=PROJECT, requested_by="maria"), AS_OF)
    waiter_code = textwrap.dedent("""
        from export_pipeline.clickhouse.connection import ClickHouse
        from export_pipeline.settings import Settings
        with ClickHouse.from_settings(Settings()).session("waiter test") as session:
            print("got", session.client.command("SELECT 42"), flush=True)
    """)
    keys: list[tuple] = []
    with deps.clickhouse.session("test stream") as session:
        chunks = iter_chunks(session, query, chunk_bytes=8 * 1024, windows=plan(session, query).windows)
        keys += chunk_keys(next(chunks), "ndjson")
        waiter = subprocess.Popen([sys.executable, "-c", waiter_code], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not session.is_wanted():
            assert time.monotonic() < deadline and waiter.poll() is None
            time.sleep(0.02)
        keys += chunk_keys(next(chunks), "ndjson")  # the stream ends here: the waiter goes first
        assert waiter.wait(timeout=30) == 0 and waiter.stdout.read().strip() == "got 42"
        for chunk in chunks:
            keys += chunk_keys(chunk, "ndjson")
    assert keys == ordered_keys(clickhouse, events_table)


def test_a_server_streams_the_same_tables_through_query_arrow_stream(deps, clickhouse, events_table, monkeypatch):
    """Over HTTP the stream is clickhouse-connect's `query_arrow_stream` (record batches); chDB's client serves
    the same call (buffered), so the server branch runs here with the lease taken as usual."""
    query = ExportQuery(events_model(deps.table), parse_spec(project_id=PROJECT, requested_by="maria"), AS_OF)
    sql, params = query.stream_sql(after=None)
    with deps.clickhouse.session("test server branch") as session:
        client = session.client
        monkeypatch.setattr(session, "_lease", None)  # the server branch: no embedded engine
        with session.arrow_stream(sql, params, {**extract.QUERY_SETTINGS, "max_block_size": 100}) as tables:
            chunks = list(tables)
        monkeypatch.undo()
        assert client is session.client
    assert len(chunks) > 10 and all(isinstance(chunk, pa.Table) for chunk in chunks)
    assert [key for chunk in chunks for key in chunk_keys(chunk, "ndjson")] == ordered_keys(clickhouse, events_table)


@pytest.mark.parametrize("scan_bytes", [4, 16 * 1024])
def test_a_blocks_first_and_last_keys_are_read_past_quoted_newlines_and_quotes(monkeypatch, scan_bytes):
    """Records are found by quote parity, reading only as much of the block as a record (from 4 bytes on)."""
    monkeypatch.setattr(csv_blocks, "_SCAN_BYTES", scan_bytes)

    def read(fields):
        return (fields[0], fields[1])

    block = b'"a","x\n""y""\n",1\n"b","\n",2\n"c","q""\n""",3\n'
    assert csv_blocks._first_key(block, read) == ("a", 'x\n"y"\n')
    assert csv_blocks._last_key(block, read) == ("c", 'q"\n"')
    single = b'"only","multi\nline ""quoted"""\n'
    assert csv_blocks._first_key(single, read) == csv_blocks._last_key(single, read) == ("only", 'multi\nline "quoted"')
