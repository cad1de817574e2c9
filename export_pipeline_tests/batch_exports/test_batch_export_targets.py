"""Kinds of batch export destination (`Target`): how the folder and S3 kinds describe themselves, their
connection test, a kind added by one module and one registry line, and retries decided by each error's own
`retryable` flag, never by its text. chDB, SQLite, a temp folder and the moto S3 server."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import SplitResult, urlsplit

import boto3
import pytest

from export_pipeline.batch_exports.destinations import Destination, RunState
from export_pipeline.batch_exports.run import BatchDeps, build_batch_deps, export_interval
from export_pipeline.batch_exports.target import StorageTarget
from export_pipeline.batch_exports.targets import TARGETS, open_target
from export_pipeline.db import get_engine
from export_pipeline.errors import IntervalFailed, InvalidRequest, StorageError
from export_pipeline.storage import LocalStorage
from export_pipeline_tests.fakes.exportdata import INGESTED_COLUMNS

PROJECT = 9989
DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
ROWS = 30  # ingested in the first hour of DAY0


@pytest.fixture(scope="module", autouse=True)
def first_hour(clickhouse, events_table) -> None:
    rows = [[PROJECT, uuid.uuid5(uuid.UUID(int=PROJECT), str(i)), "signed_up", DAY0 + timedelta(minutes=i),
             f"user-{i}", uuid.UUID(int=1), json.dumps({"i": i}), DAY0 + timedelta(minutes=i)] for i in range(ROWS)]
    with clickhouse.session("test insert") as session:
        session.client.insert(events_table.table, rows, column_names=INGESTED_COLUMNS, database=events_table.database)


@pytest.fixture()
def sleeps() -> list[float]:
    return []


@pytest.fixture()
def batch(settings, clickhouse, sleeps) -> BatchDeps:
    return build_batch_deps(settings, get_engine(settings.database_url), clickhouse, sleep=sleeps.append,
                            backoff_seconds=0.5)


def _create(batch: BatchDeps, url: str, **fields) -> Destination:
    return batch.destinations.create(PROJECT, "sam@example.com", {
        "url": url, "interval": "hour", "start_at": DAY0.isoformat(), "settle_seconds": 0, **fields})


def _bucket(moto_endpoint: str) -> str:
    name = f"targets-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def _objects(moto_endpoint: str, bucket: str) -> list[str]:
    listed = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_each_kind_describes_itself_in_one_line_without_secrets(batch, tmp_path, moto_endpoint, monkeypatch):
    folder = _create(batch, str(tmp_path / "archive"))
    assert open_target(folder).describe() == f"file://{tmp_path}/archive"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("ACME_KEYS", json.dumps({"aws_access_key_id": "AKIADESCRIBE", "aws_secret_access_key": "s"}))
    bucket = _create(batch, "s3://acme-archive/analytics/", endpoint_url=moto_endpoint, credentials_ref="ACME_KEYS")
    assert open_target(bucket).describe() == f"s3://acme-archive/analytics (eu-west-1, {moto_endpoint})"
    on_aws = _create(batch, "s3://acme-archive")
    assert open_target(on_aws).describe() == "s3://acme-archive/exports (eu-west-1)"


def test_the_connection_test_writes_and_deletes_one_object_or_stores_nothing(batch, tmp_path, moto_endpoint):
    bucket = _bucket(moto_endpoint)
    tested = batch.destinations.create(PROJECT, "sam", {
        "url": f"s3://{bucket}/x", "endpoint_url": moto_endpoint, "start_at": DAY0.isoformat()}, probe=True)
    assert batch.destinations.require(tested.id) == tested
    assert _objects(moto_endpoint, bucket) == []

    before = batch.destinations.list(PROJECT)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(StorageError) as refused:
        batch.destinations.create(PROJECT, "sam", {
            "url": f"s3://{missing}/x", "endpoint_url": moto_endpoint, "start_at": DAY0.isoformat()}, probe=True)
    assert re.fullmatch(
        rf"The connection test of s3://{missing}/x \(us-east-1, {re.escape(moto_endpoint)}\) failed: Could not write "
        rf"'\.export-pipeline-probe-[0-9a-f]{{8}}': bucket '{missing}' does not exist at {re.escape(moto_endpoint)}\.",
        refused.value.message)
    assert refused.value.retryable is False

    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(StorageError, match=rf"^The connection test of file://{tmp_path}/a-file/archive failed: "
                                           r"Cannot write '\.export-pipeline-probe-[0-9a-f]{8}' in file://"):
        batch.destinations.create(PROJECT, "sam", {"url": str(tmp_path / "a-file" / "archive"),
                                                   "start_at": DAY0.isoformat()}, probe=True)
    assert batch.destinations.list(PROJECT) == before


class MirrorTarget(StorageTarget):
    """`mirror:///folder`: a kind added by this module and one registry line (a folder under another name)."""

    name = "mirror"
    example = "mirror:///folder"

    @classmethod
    def check_url(cls, parts: SplitResult) -> str | None:
        return None if parts.path.startswith("/") else "a mirror must be absolute: mirror:///path"

    @classmethod
    def open(cls, destination: Destination) -> MirrorTarget:
        return cls(LocalStorage(urlsplit(destination.url).path))

    def describe(self) -> str:
        return f"mirror {self.storage.url}"


def test_a_new_kind_is_one_module_and_one_registry_line(batch, tmp_path, monkeypatch):
    with pytest.raises(InvalidRequest) as unknown:
        _create(batch, f"mirror://{tmp_path}", endpoint_url="https://minio.example.com")
    assert unknown.value.details == {"url": f"must be file:///folder or s3://bucket/prefix, got 'mirror://{tmp_path}'",
                                     "endpoint_url": "only S3 destinations take an endpoint"}

    monkeypatch.setitem(TARGETS, "mirror", MirrorTarget)
    with pytest.raises(InvalidRequest) as relative:
        _create(batch, "mirror:relative")
    assert relative.value.details == {"url": "a mirror must be absolute: mirror:///path"}
    destination = _create(batch, f"mirror://{tmp_path}", key_template="{model}")
    result = export_interval(destination.id, DAY0, batch, run_id="mirror")
    assert (result.record.state, result.record.rows, result.record.files) == (RunState.SUCCEEDED, ROWS, 1)
    folder = tmp_path / "events" / "20261101T000000Z-20261101T010000Z"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "part-00000.ndjson.gz"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["row_count"], [f["name"] for f in manifest["files"]]) == (ROWS, ["part-00000.ndjson.gz"])


def _failing_first(batch: BatchDeps, errors: list[Exception]) -> BatchDeps:
    """Deps whose destination cannot be opened while `errors` last, one per attempt."""
    def open_or_fail(destination: Destination):
        if errors:
            raise errors.pop(0)
        return open_target(destination)

    return BatchDeps(**{**batch.__dict__, "open_target": open_or_fail})


def test_retries_follow_the_errors_retryable_flag_not_its_text(batch, sleeps, tmp_path):
    worded_transient = StorageError("S3 endpoint http://s3.test is unreachable.", hint="Try again later.",
                                    retryable=False)
    final = _create(batch, str(tmp_path / "final"))
    with pytest.raises(IntervalFailed) as failed:
        export_interval(final.id, DAY0, _failing_first(batch, [worded_transient]), run_id="final")
    assert sleeps == []
    assert batch.runs.get(final.id, DAY0).error == (
        "S3 endpoint http://s3.test is unreachable. Try again later. (after 1 attempt)")
    assert "(after 1 attempt)" in failed.value.message

    outage = [StorageError("Could not write: SlowDown.", retryable=True) for _ in range(2)]
    retried = _create(batch, str(tmp_path / "retried"))
    result = export_interval(retried.id, DAY0, _failing_first(batch, outage), run_id="retried")
    assert sleeps == [0.5, 1.0]
    assert (result.record.state, result.record.rows) == (RunState.SUCCEEDED, ROWS)
