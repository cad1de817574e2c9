"""The export path end to end on real chDB and a real folder: exact rows in every format, filters, the
ingestion snapshot, access, an unreachable cluster, checksums, parts, and retry after a failure."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.db import access_refusals
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import AccessDenied, ClickHouseUnavailable
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.run import run_export
from export_pipeline.storage import storage_from_url
from export_pipeline_tests.fakes.exportdata import (
    T0,
    expected_rows,
    insert_events,
    known_events,
    parse_file,
    read_export_rows,
)

LOG = logging.getLogger("test")
PROJECT = 9001
MAINTAINER = "maria"


@pytest.fixture(scope="module", autouse=True)
def known_data(clickhouse, events_table, store):
    insert_events(clickhouse, events_table, known_events(PROJECT))
    insert_events(clickhouse, events_table, known_events(PROJECT + 1))  # a neighbour that must never leak in
    add_member(store.engine, PROJECT, MAINTAINER, Role.MAINTAINER)
    add_member(store.engine, PROJECT, "dev", Role.DEVELOPER)


def small_chunks(deps: ExportDeps, **overrides) -> ExportDeps:
    """64 KiB chunks: ~1,000 rows each, so every export crosses many chunk boundaries."""
    return replace(deps, settings=deps.settings.model_copy(update={"chunk_bytes": 64 * 1024, **overrides}))


def export(deps: ExportDeps, *, run_id: str | None = None, **fields):
    spec = parse_spec(project_id=PROJECT, requested_by=MAINTAINER, **fields)
    request = deps.store.create(spec, source="test")
    result = run_export(request.id, deps, run_id=run_id or str(uuid.uuid4()), run_is_active=lambda _: False, log=LOG)
    return request, result


@pytest.mark.parametrize(
    ("fmt", "compression"),
    [("ndjson", "gzip"), ("ndjson", "none"), ("json", "zstd"), ("json", "none"), ("csv", "gzip"),
     ("parquet", "zstd"), ("parquet", "none")],
)
def test_every_format_exports_exactly_the_project_rows(deps, clickhouse, events_table, fmt, compression):
    deps = small_chunks(deps)
    request, result = export(deps, format=fmt, compression=compression)

    manifest = read_manifest(deps.storage, result.manifest_key)
    exported = read_export_rows(deps.storage, request.storage_prefix, manifest)
    expected = expected_rows(clickhouse, events_table, PROJECT, json_properties=fmt in ("ndjson", "json"))
    assert sum(expected.values()) == 3_002
    assert exported == expected
    stored = deps.store.require(request.id)
    assert (stored.state, stored.row_count, manifest["row_count"]) == (ExportState.SUCCEEDED, 3_002, 3_002)


def test_parquet_declares_uuid_types_and_required_columns(deps):
    import io

    import pandas as pd
    import pyarrow.parquet as pq

    request, result = export(deps, format="parquet")
    data = deps.storage.read_bytes(result.files[0].key)
    parquet = pq.ParquetFile(io.BytesIO(data))
    physical = {column.name: (column.physical_type, str(column.logical_type), column.max_definition_level)
                for column in parquet.schema}
    assert physical == {  # max_definition_level 0: a required (non-null) column
        "project_id": ("INT64", "Int(bitWidth=64, isSigned=false)", 0),
        "uuid": ("FIXED_LEN_BYTE_ARRAY", "UUID", 0),
        "event": ("BYTE_ARRAY", "String", 0),
        "timestamp": ("INT64", "Timestamp(isAdjustedToUTC=true, timeUnit=microseconds, is_from_converted_type=false, "
                      "force_set_converted_type=false)", 0),
        "distinct_id": ("BYTE_ARRAY", "String", 0),
        "person_id": ("FIXED_LEN_BYTE_ARRAY", "UUID", 0),
        "created_at": ("INT64", "Timestamp(isAdjustedToUTC=true, timeUnit=microseconds, "
                       "is_from_converted_type=false, force_set_converted_type=false)", 0),
        "properties": ("BYTE_ARRAY", "String", 0),
    }
    # pandas (through pyarrow) gives uuid.UUID values, equal to the text the other formats write.
    frame = pd.read_parquet(io.BytesIO(data))
    ndjson_request, ndjson = export(deps, format="ndjson", compression="none")
    first = json.loads(deps.storage.read_bytes(ndjson.files[0].key).split(b"\n")[0])
    row = frame.iloc[0]
    assert (str(row["uuid"]), str(row["person_id"])) == (first["uuid"], first["person_id"])
    assert isinstance(row["uuid"], uuid.UUID)


def test_parquet_stores_columns_of_distinct_values_plain_and_the_others_with_a_dictionary(deps):
    import io

    import pyarrow.parquet as pq

    request, result = export(deps, format="parquet")
    metadata = pq.ParquetFile(io.BytesIO(deps.storage.read_bytes(result.files[0].key))).metadata
    for group in range(metadata.num_row_groups):
        chunks = [metadata.row_group(group).column(index) for index in range(metadata.num_columns)]
        with_dictionary = {chunk.path_in_schema for chunk in chunks if chunk.has_dictionary_page}
        assert with_dictionary == {"project_id", "event", "distinct_id", "person_id"}


def test_json_outputs_embed_properties_as_objects_one_event_per_line(deps):
    request, result = export(deps, format="ndjson", compression="none")
    raw = deps.storage.read_bytes(result.files[0].key).decode()
    lines = raw.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 3_002
    by_uuid = {json.loads(line)["uuid"]: json.loads(line) for line in lines if line}
    pretty = next(e for e in by_uuid.values() if e["properties"].get("pretty"))
    assert pretty["properties"] == {"pretty": True, "s": "line1\nline2\ttab"}
    assert next(e for e in by_uuid.values() if "$unparsed" in e["properties"])["properties"] in (
        {"$unparsed": "not json at all"}, {"$unparsed": "[1, 2, 3]"}, {"$unparsed": "null"}
    )
    assert any(e["properties"] == {} and e["distinct_id"] == "dup" for e in by_uuid.values())
    first = json.loads(lines[0])
    assert first["timestamp"] == "2025-12-26T12:00:00.125976Z"  # earliest row (index 2520), ISO 8601 UTC, µs
    assert list(first) == ["project_id", "uuid", "event", "timestamp", "distinct_id", "person_id", "created_at", "properties"]


def test_filters_select_exactly_the_matching_rows(deps, clickhouse, events_table):
    deps = small_chunks(deps)
    request, result = export(
        deps, format="ndjson", date_from="2026-01-15T12:00:00.123456Z", date_to="2026-02-01", events=["signed_up", "ünïcödé 🎉"]
    )
    exported = read_export_rows(deps.storage, request.storage_prefix, read_manifest(deps.storage, result.manifest_key))
    expected = expected_rows(
        clickhouse, events_table, PROJECT, json_properties=True,
        where="AND timestamp >= {f:DateTime64(6,'UTC')} AND timestamp < {t:DateTime64(6,'UTC')} AND event IN {e:Array(String)}",
        # a bare date_to includes that whole day
        parameters={"f": "2026-01-15 12:00:00.123456", "t": "2026-02-02 00:00:00", "e": ["signed_up", "ünïcödé 🎉"]},
    )
    assert 1_000 < sum(expected.values()) < 3_000
    assert exported == expected


def test_rows_ingested_after_the_request_are_not_exported(deps, clickhouse, events_table, store):
    project = PROJECT + 2  # its own project: the late row must not leak into other tests' expectations
    insert_events(clickhouse, events_table, known_events(project))
    add_member(store.engine, project, MAINTAINER, Role.MAINTAINER)
    spec = parse_spec(project_id=project, requested_by=MAINTAINER, format="ndjson", date_from="2026-01-15", date_to="2026-01-15")
    request = deps.store.create(spec, source="test")
    before = expected_rows(clickhouse, events_table, project, json_properties=True,
                           where="AND toDate(timestamp) = '2026-01-15'")
    time.sleep(0.01)
    late = [project, uuid.uuid4(), "late", T0, "late-user", uuid.uuid4(), "{}"]
    insert_events(clickhouse, events_table, [late])

    result = run_export(request.id, deps, run_id="r1", run_is_active=lambda _: False, log=LOG)

    exported = read_export_rows(deps.storage, request.storage_prefix, read_manifest(deps.storage, result.manifest_key))
    assert sum(before.values()) == 2_510
    assert exported == before


def test_below_maintainer_is_refused_before_clickhouse_and_recorded(deps, tmp_path):
    # A ClickHouse URL that cannot be reached: touching it would fail differently.
    unreachable = ClickHouse("http://127.0.0.1:9/analytics", lock_dir=tmp_path, connect_timeout=1)
    deps = replace(deps, clickhouse=unreachable)
    spec = parse_spec(project_id=PROJECT, requested_by="dev", format="csv")
    request = deps.store.create(spec, source="test")

    with pytest.raises(AccessDenied) as refused:
        run_export(request.id, deps, run_id="r1", run_is_active=lambda _: False, log=LOG)

    assert "'dev' is Developer (30) on project 9001; exporting events needs Maintainer (40) or higher" in str(refused.value)
    stored = deps.store.require(request.id)
    assert (stored.state, stored.error_code) == (ExportState.FAILED, "access_denied")
    with deps.store.engine.connect() as conn:
        refusal = conn.execute(
            sa.select(access_refusals.c.user_name, access_refusals.c.access_level, access_refusals.c.required_level)
            .where(access_refusals.c.export_id == request.id)
        ).one()
    assert tuple(refusal) == ("dev", 30, 40)
    assert deps.storage.list_keys(request.storage_prefix) == []


def test_non_member_is_refused(deps):
    spec = parse_spec(project_id=PROJECT, requested_by="stranger", format="csv")
    request = deps.store.create(spec, source="test")
    with pytest.raises(AccessDenied, match="'stranger' is not a member of project 9001"):
        run_export(request.id, deps, run_id="r1", run_is_active=lambda _: False, log=LOG)


def test_unreachable_clickhouse_fails_fast_naming_the_cluster_without_password(deps, tmp_path):
    from export_pipeline_tests.fakes.net import free_port

    port = free_port()  # nothing listens here
    deps = replace(deps, clickhouse=ClickHouse(f"http://exporter:s3cr3t-pw@127.0.0.1:{port}/analytics", lock_dir=tmp_path))
    started = time.monotonic()
    with pytest.raises(ClickHouseUnavailable) as failure:
        request, _ = export(deps, format="ndjson")
    elapsed = time.monotonic() - started

    assert elapsed < 10
    message = str(failure.value)
    assert f"http://exporter:***@127.0.0.1:{port}/analytics" in message
    assert "s3cr3t-pw" not in message
    assert failure.value.retryable is True
    failed = deps.store.in_state(ExportState.FAILED)[-1]
    assert failed.error_code == "analytics_cluster_unavailable" and "s3cr3t-pw" not in (failed.error or "")
    assert deps.storage.list_keys("") == []


def test_manifest_lists_every_file_with_exact_size_rows_and_checksum(deps):
    deps = small_chunks(deps, part_size_bytes=200_000)
    request, result = export(deps, format="json", compression="none")
    manifest = read_manifest(deps.storage, result.manifest_key)

    assert len(manifest["files"]) > 3
    assert [f["name"] for f in manifest["files"]] == [f"part-{i:05d}.json" for i in range(len(manifest["files"]))]
    for entry in manifest["files"]:
        data = deps.storage.read_bytes(f"{request.storage_prefix}/{entry['name']}")
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
        assert len(json.loads(data)) == entry["rows"]  # each part is a complete JSON array on its own
    assert sum(f["rows"] for f in manifest["files"]) == manifest["row_count"] == 3_002
    assert manifest["export_id"] == request.id and manifest["project_id"] == PROJECT
    assert manifest["filters"] == {"date_from": None, "date_to": None, "events": []}
    assert (manifest["format"], manifest["compression"]) == ("json", "none")
    expires = datetime.fromisoformat(manifest["expires_at"])
    completed = datetime.fromisoformat(manifest["completed_at"])
    assert expires - completed == timedelta(hours=deps.settings.ttl_hours)
    assert sorted(deps.storage.list_keys(request.storage_prefix)) == sorted(
        [f"{request.storage_prefix}/{f['name']}" for f in manifest["files"]] + [result.manifest_key]
    )


def test_csv_parts_each_start_with_the_header(deps):
    deps = small_chunks(deps, part_size_bytes=40_000)
    request, result = export(deps, format="csv", compression="gzip")
    assert len(result.files) > 1
    for written in result.files:
        rows = parse_file(written.name, deps.storage.read_bytes(written.key))
        assert len(rows) == written.rows


def test_parquet_parts_end_at_the_first_chunk_past_the_part_size(deps):
    # The Parquet writer writes through a buffer (serialize.py): each row group must still reach storage with
    # its chunk, or a part would only be cut once the buffer had filled.
    deps = small_chunks(deps, part_size_bytes=40_000)
    request, result = export(deps, format="parquet", compression="none")
    assert len(result.files) > 3
    for written in result.files:
        data = deps.storage.read_bytes(written.key)
        metadata = pq.ParquetFile(io.BytesIO(data)).metadata
        assert (len(data), metadata.num_rows) == (written.bytes, written.rows)
        last_group = metadata.row_group(metadata.num_row_groups - 1)
        group_bytes = sum(last_group.column(i).total_compressed_size for i in range(last_group.num_columns))
        footer_bytes = int.from_bytes(data[-8:-4], "little") + 8  # metadata, its length, "PAR1"
        if written is not result.files[-1]:  # under the part size before its last chunk, at or over it after
            assert len(data) - footer_bytes - group_bytes < 40_000 <= len(data) - footer_bytes
    assert sum(written.rows for written in result.files) == 3_002


def test_failure_mid_export_leaves_nothing_and_a_retry_exports_everything(deps, clickhouse, events_table):
    deps = small_chunks(deps, part_size_bytes=100_000)
    spec = parse_spec(project_id=PROJECT, requested_by=MAINTAINER, format="ndjson", compression="gzip")
    request = deps.store.create(spec, source="test")

    def crash_after_two_chunks(progress):
        if progress.files >= 1 and progress.rows > 1_500:
            raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        run_export(request.id, deps, run_id="attempt-1", run_is_active=lambda _: False, log=LOG,
                   on_progress=crash_after_two_chunks)
    failed = deps.store.require(request.id)
    assert (failed.state, failed.error) == (ExportState.FAILED, "RuntimeError: worker lost")
    assert deps.storage.list_keys(request.storage_prefix) == []

    result = run_export(request.id, deps, run_id="attempt-2", run_is_active=lambda _: False, log=LOG)
    exported = read_export_rows(deps.storage, request.storage_prefix, read_manifest(deps.storage, result.manifest_key))
    assert exported == expected_rows(clickhouse, events_table, PROJECT, json_properties=True)
    assert deps.store.require(request.id).run_id == "attempt-2"


def test_a_second_run_does_not_redo_a_succeeded_export(deps):
    request, first = export(deps, format="ndjson")
    again = run_export(request.id, deps, run_id="other", run_is_active=lambda _: False, log=LOG)
    assert again.already_done and again.files == first.files
    assert deps.store.require(request.id).run_id != "other"


def test_a_run_cannot_take_an_export_another_live_run_is_writing(deps):
    from export_pipeline.errors import ExportConflict

    spec = parse_spec(project_id=PROJECT, requested_by=MAINTAINER, format="ndjson")
    request = deps.store.create(spec, source="test")
    deps.store.claim(request.id, "live-run", lambda _: False)
    with pytest.raises(ExportConflict, match="already being written by run live-run"):
        run_export(request.id, deps, run_id="second", run_is_active=lambda run_id: run_id == "live-run", log=LOG)
    # ...but it can once that run is known dead
    result = run_export(request.id, deps, run_id="second", run_is_active=lambda _: False, log=LOG)
    assert result.rows == 3_002


def test_empty_export_writes_one_valid_empty_file(deps):
    _, result = export(deps, format="json", compression="none", events=["no such event"])
    assert [(f.name, f.rows) for f in result.files] == [("part-00000.json", 0)]
    assert json.loads(deps.storage.read_bytes(result.files[0].key)) == []


def test_export_to_s3_with_presigned_download(deps, moto_endpoint, monkeypatch):
    import urllib.request

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="exports-e2e")
    deps = replace(small_chunks(deps), storage=storage_from_url("s3://exports-e2e/analytics"))
    request, result = export(deps, format="ndjson", compression="zstd")

    manifest = read_manifest(deps.storage, result.manifest_key)
    url = deps.storage.download_url(result.files[0].key, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert url.startswith(f"{moto_endpoint}/exports-e2e/analytics/{request.storage_prefix}/part-00000.ndjson.zst?")
    downloaded = urllib.request.urlopen(url).read()
    assert hashlib.sha256(downloaded).hexdigest() == manifest["files"][0]["sha256"]
    assert len(parse_file("part-00000.ndjson.zst", downloaded)) == 3_002
    rules = boto3.client("s3", endpoint_url=moto_endpoint).get_bucket_lifecycle_configuration(Bucket="exports-e2e")["Rules"]
    assert [r["Expiration"]["Days"] for r in rules] == [7]


def test_objects_with_leading_whitespace_are_embedded_not_unparsed(deps):
    _, result = export(deps, format="ndjson", compression="none")
    events = [json.loads(line) for line in deps.storage.read_bytes(result.files[0].key).decode().splitlines()]
    assert sum(e["properties"] == {"leading": "whitespace before the object"} for e in events) > 100


def test_an_older_app_database_gains_new_nullable_columns(tmp_path):
    import sqlalchemy as sa

    from export_pipeline.db import get_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.execute(sa.text("CREATE TABLE access_tokens (id VARCHAR(32) PRIMARY KEY, user_name VARCHAR(255) NOT NULL, "
                             "name VARCHAR(255) NOT NULL, token_sha256 VARCHAR(64) NOT NULL, created_at DATETIME NOT NULL)"))
    engine = get_engine(url)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("access_tokens")}
    assert {"expires_at", "revoked_at", "last_used_at"} <= columns


def test_export_processes_allocate_arrow_memory_with_jemalloc_unless_told_otherwise():
    show = "import export_pipeline, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    default = subprocess.run([sys.executable, "-c", show], env=env, capture_output=True, text=True, check=True)
    chosen = subprocess.run([sys.executable, "-c", show], env={**env, "ARROW_DEFAULT_MEMORY_POOL": "system"},
                            capture_output=True, text=True, check=True)
    assert (default.stdout.strip(), chosen.stdout.strip()) == ("jemalloc", "system")


def test_pyarrow_does_not_import_pandas_on_its_own_and_pandas_still_works():
    """pyarrow's first conversion imports pandas only to recognise pandas objects: 30 MB more in every export
    process (export_pipeline/__init__.py). Checked in a fresh process: this one may hold pandas already."""
    code = """
import sys
from datetime import UTC, datetime

import export_pipeline  # noqa: F401  (first, as in every process of ours)
import pyarrow as pa

moment = datetime(2026, 1, 1, tzinfo=UTC)
table = pa.table({"n": [1, 2], "at": [moment, moment]})
assert table.column("at")[0].as_py() == moment and pa.scalar(7).as_py() == 7
assert "pandas" not in sys.modules, "pyarrow imported pandas"
assert table.to_pandas()["n"].tolist() == [1, 2]
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
