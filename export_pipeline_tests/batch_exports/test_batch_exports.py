"""Batch exports end to end in plain Python: chDB, SQLite, a local folder and the moto S3 server, the fake
Slack and SendGrid on loopback. The invariant every test checks: the files of all intervals, read back, are
exactly the project's rows, each once."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from pydantic import SecretStr

from export_pipeline.batch_exports.destinations import Destination, RunState
from export_pipeline.batch_exports.folder_target import FolderTarget
from export_pipeline.batch_exports.intervals import Interval, IntervalUnit, intervals_between
from export_pipeline.batch_exports.plan import backfill_intervals, due_intervals
from export_pipeline.batch_exports.run import BatchDeps, build_batch_deps, export_interval
from export_pipeline.batch_exports.targets import open_target
from export_pipeline.db import get_engine
from export_pipeline.errors import IntervalBusy, IntervalFailed, InvalidRequest
from export_pipeline.storage import ExportStorage
from export_pipeline_tests.fakes.exportdata import INGESTED_COLUMNS, expected_rows, parse_file
from export_pipeline_tests.fakes.sendgridapi import FakeSendGrid, fake_sendgrid
from export_pipeline_tests.fakes.slackapi import FakeSlack

PROJECT = 9981  # three days of events, exported hourly
SPLIT_PROJECT = 9982  # one file per event name
EMPTY_PROJECT = 9983  # never has an event
DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
AFTER = DAY0 + timedelta(days=4)  # "now" for the tests: every interval of the three days has closed
NAMES = ["$pageview", "signed_up", "a/b ../ünï", "."]
KEY = "SG.batch-test"
WORKSPACE, TOKEN = "acme", "xoxb-acme"


def _events(project: int, count: int, *, first: datetime, spread: timedelta, seed: int, late: bool = False) -> list[list]:
    """`count` events ingested across `spread` from `first`; late ones happened two days before ingestion."""
    rows = []
    for index in range(count):
        ingested = first + spread * index / count
        happened = ingested - (timedelta(days=2) if late else timedelta(seconds=index % 7))
        rows.append([project, uuid.uuid5(uuid.UUID(int=project), f"{seed}-{index}"), NAMES[index % len(NAMES)],
                     happened, f"user-{index % 13}", uuid.UUID(int=index % 5), json.dumps({"i": index, "s": "é\n"}),
                     ingested])
    return rows


def _insert(clickhouse, table, rows: list[list]) -> None:
    with clickhouse.session("test insert") as session:
        session.client.insert(table.table, rows, column_names=INGESTED_COLUMNS, database=table.database)


@pytest.fixture(scope="module", autouse=True)
def three_days(clickhouse, events_table) -> None:
    # Hours 10-13 of day 1 stay empty; rows sharing one ingestion instant sit on an hour boundary.
    _insert(clickhouse, events_table, _events(PROJECT, 400, first=DAY0, spread=timedelta(hours=10), seed=1))
    _insert(clickhouse, events_table, _events(PROJECT, 800, first=DAY0 + timedelta(hours=14),
                                              spread=timedelta(hours=34), seed=2))
    boundary = DAY0 + timedelta(hours=20)
    _insert(clickhouse, events_table, [[PROJECT, uuid.uuid4(), "edge", boundary, "u", uuid.UUID(int=1), "{}", boundary]
                                       for _ in range(3)])
    _insert(clickhouse, events_table, _events(SPLIT_PROJECT, 120, first=DAY0, spread=timedelta(hours=3), seed=3))


@pytest.fixture()
def sendgrid() -> Iterator[FakeSendGrid]:
    with fake_sendgrid(KEY) as fake:
        yield fake


@pytest.fixture()
def slack() -> Iterator[FakeSlack]:
    with FakeSlack({TOKEN: {"alerts": "C0ALERTS"}}) as fake:
        yield fake


@pytest.fixture()
def sleeps() -> list[float]:
    return []


@pytest.fixture()
def batch(settings, clickhouse, sendgrid, slack, sleeps) -> BatchDeps:
    configured = settings.model_copy(update={
        "slack_bot_tokens": {WORKSPACE: SecretStr(TOKEN)}, "slack_api_url": slack.api_url,
        "sendgrid_api_key": SecretStr(KEY), "sendgrid_api_host": sendgrid.url, "email_retry_base_seconds": 0.0,
        "api_base_url": "https://exports.example.com",
    })
    return build_batch_deps(configured, get_engine(settings.database_url), clickhouse, sleep=sleeps.append,
                            backoff_seconds=0.5)


def _create(batch: BatchDeps, project: int, url: str, **fields) -> Destination:
    return batch.destinations.create(project, "sam@example.com", {
        "url": url, "interval": "hour", "start_at": DAY0.isoformat(), "settle_seconds": 0, **fields})


def _run_all(batch: BatchDeps, destination: Destination, intervals, run: str) -> None:
    for interval in intervals:
        export_interval(destination.id, interval.start, batch, run_id=f"{run}-{interval.label}")


def _read_everything(storage: ExportStorage, prefix: str = "") -> Counter:
    """Every row of every data file under the destination, manifests aside, as comparable JSON keys."""
    rows: Counter = Counter()
    for key in storage.list_keys(prefix):
        if not key.endswith("manifest.json"):
            rows.update(json.dumps(row, sort_keys=True, ensure_ascii=False)
                        for row in parse_file(key, storage.read_bytes(key)))
    return rows


def _table(clickhouse, events_table, project: int) -> Counter:
    return expected_rows(clickhouse, events_table, project, json_properties=True)


@pytest.fixture()
def bucket_url(moto_endpoint) -> str:
    bucket = f"archive-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/customer"


def test_hourly_intervals_over_three_days_with_late_events_give_every_row_exactly_once(
        batch, clickhouse, events_table, bucket_url, moto_endpoint):
    destination = _create(batch, PROJECT, bucket_url, endpoint_url=moto_endpoint,
                          key_template="{project_id}/{year}/{month}/{day}")
    storage = open_target(destination).storage
    # The sensor's view after two days: every closed hour since the start, oldest first, 50 per tick.
    now = DAY0 + timedelta(days=2)
    requested = []
    while due := due_intervals(destination, batch.destinations, batch.runs, now):
        requested += [d.interval for d in due]
        _run_all(batch, destination, [d.interval for d in due], "live")
    assert [i.start for i in requested] == [DAY0 + timedelta(hours=h) for h in range(48)]
    records = batch.runs.list(destination.id)
    assert [r.state for r in records[10:14]] == [RunState.SKIPPED] * 4  # nothing ingested in those hours
    assert all(r.state is RunState.SUCCEEDED and r.files == 1 for r in records[:10] + records[14:48])
    assert storage.list_keys(f"{PROJECT}/2026/11/01/20261101T100000Z-20261101T110000Z") == []

    # Late events: they happened on day 0 but were ingested on day 2, after day 0 was exported.
    late = _events(PROJECT, 50, first=DAY0 + timedelta(days=2, hours=1), spread=timedelta(hours=5), seed=9, late=True)
    _insert(clickhouse, events_table, late)
    while due := due_intervals(destination, batch.destinations, batch.runs, AFTER):
        _run_all(batch, destination, [d.interval for d in due], "live")
    assert len(batch.runs.list(destination.id)) == 96
    assert _read_everything(storage) == _table(clickhouse, events_table, PROJECT)
    first = batch.runs.get(destination.id, DAY0)
    manifest = json.loads(storage.read_bytes(first.manifest_key))
    assert first.manifest_key == f"{PROJECT}/2026/11/01/20261101T000000Z-20261101T010000Z/manifest.json"
    assert manifest["row_count"] == first.rows == 40 and manifest["ingestion_column"] == "created_at"
    assert [f["name"] for f in manifest["files"]] == ["part-00000.ndjson.gz"]

    # A backfill over day 2 (which live runs exported), then single intervals again: still each row once.
    to_run, skipped = backfill_intervals(destination, DAY0 + timedelta(days=2), AFTER, batch, AFTER)
    assert [i.start for i in to_run] == [DAY0 + timedelta(days=2, hours=h) for h in range(1, 6)]
    assert skipped == 19 + 24  # day 2 but the late events' five hours, and day 3
    _run_all(batch, destination, to_run, "backfill")
    _run_all(batch, destination, [to_run[0], destination.interval_at(DAY0)], "rerun")
    assert _read_everything(storage) == _table(clickhouse, events_table, PROJECT)


def test_a_backfill_over_live_intervals_and_single_reruns_in_a_local_folder(batch, clickhouse, events_table, tmp_path):
    destination = _create(batch, PROJECT, f"file://{tmp_path}", key_template="{model}/{data_interval_start}")
    storage = open_target(destination).storage
    day_end = DAY0 + timedelta(hours=10)
    while due := due_intervals(destination, batch.destinations, batch.runs, day_end):
        _run_all(batch, destination, [d.interval for d in due], "live")
    to_run, skipped = backfill_intervals(destination, DAY0, day_end, batch, AFTER)
    assert len(to_run) == 10 and skipped == 0
    _run_all(batch, destination, to_run, "backfill")
    # An earlier run's extra part (as if it had split differently) is removed by the re-run.
    folder = destination.prefix_for(to_run[3])
    stale = f"{folder}/part-00001.ndjson.gz"
    storage.put_bytes(stale, storage.read_bytes(f"{folder}/part-00000.ndjson.gz"), content_type="application/gzip")
    table = expected_rows(clickhouse, events_table, PROJECT, json_properties=True,
                          where="AND created_at < {end:DateTime64(6, 'UTC')}", parameters={"end": day_end})
    assert _read_everything(storage) != table
    _run_all(batch, destination, [to_run[3], to_run[-1]], "rerun")
    assert not storage.exists(stale)
    assert _read_everything(storage) == table
    assert sum(table.values()) == 400


def test_one_file_per_event_name(batch, clickhouse, events_table, tmp_path):
    destination = _create(batch, SPLIT_PROJECT, f"file://{tmp_path}", split_by_event=True, format="csv",
                          key_template="{model}/{data_interval_start}")
    storage = open_target(destination).storage
    intervals = list(intervals_between(IntervalUnit.HOUR, destination.zone, DAY0, DAY0 + timedelta(hours=3)))
    _run_all(batch, destination, intervals, "split")
    folder = "events/20261101T000000Z/20261101T000000Z-20261101T010000Z"
    assert storage.list_keys(folder) == [
        f"{folder}/event=%24pageview/part-00000.csv.gz", f"{folder}/event=./part-00000.csv.gz",
        f"{folder}/event=a%2Fb%20..%2F%C3%BCn%C3%AF/part-00000.csv.gz",
        f"{folder}/event=signed_up/part-00000.csv.gz", f"{folder}/manifest.json"]
    for key in storage.list_keys(folder):
        if "event=" in key:
            names = {row["event"] for row in parse_file(key, storage.read_bytes(key))}
            assert len(names) == 1
    assert _read_everything(storage) == expected_rows(clickhouse, events_table, SPLIT_PROJECT, json_properties=False)

def test_key_templates_are_validated_and_rendered_in_the_destination_time_zone(batch, tmp_path):
    with pytest.raises(InvalidRequest) as refused:
        batch.destinations.create(PROJECT, "sam", {"url": "s3://b/p?secret=1", "key_template": "{project}/{year:>4}",
                                                   "interval": "minute", "start_at": "2026-11-01T00:30:00Z",
                                                   "timezone": "Asia/Kolkata", "credentials_ref": "not a name"})
    assert refused.value.details == {
        "url": "must not hold credentials or parameters: give credentials_ref instead",
        "credentials_ref": "must be the NAME of an environment variable holding the credentials (A-Z, 0-9, _)",
        "key_template": "unknown placeholder {project}; use {project_id} {model} {year} {month} {day} {hour} "
                        "{data_interval_start} {data_interval_end}",
        "interval": "must be one of hour, day, week, got 'minute'",
        "timezone": "Asia/Kolkata is offset from UTC by a fraction of an hour; use a whole-hour zone",
    }
    with pytest.raises(InvalidRequest) as escaping:
        batch.destinations.create(PROJECT, "sam", {"url": str(tmp_path), "key_template": "a/../{day}",
                                                   "interval": "day", "timezone": "Europe/Paris",
                                                   "start_at": "2026-11-01T12:00:00"})
    assert escaping.value.details == {
        "key_template": "must be a relative path without empty, '.' or '..' segments",
        "start_at": "must be the start of a day in Europe/Paris",
    }
    daily = batch.destinations.create(PROJECT, "sam", {
        "url": str(tmp_path), "interval": "day", "timezone": "Europe/Paris", "start_at": "2026-03-28",
        "key_template": "p{project_id}/{model}/{year}-{month}-{day}T{hour}/{data_interval_start}_{data_interval_end}"})
    assert daily.url == f"file://{tmp_path}" and daily.start_at == datetime(2026, 3, 27, 23, tzinfo=UTC)
    summer_change = daily.interval_at(datetime(2026, 3, 28, 23, tzinfo=UTC))  # 29 March is 23 hours long
    assert summer_change.end == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert daily.prefix_for(summer_change) == (
        f"p{PROJECT}/events/2026-03-29T00/20260328T230000Z_20260329T220000Z/20260328T230000Z-20260329T220000Z")
    with pytest.raises(InvalidRequest):
        daily.interval_at(datetime(2026, 3, 29, 0, tzinfo=UTC))


def test_a_bucket_that_rejects_writes_pauses_after_three_failures_and_tells_email_and_slack(
        batch, moto_endpoint, sendgrid, slack, sleeps, clickhouse, events_table):
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    destination = _create(batch, PROJECT, f"s3://{bucket}/x", endpoint_url=moto_endpoint,
                          slack_workspace=WORKSPACE, slack_channel="#alerts", name="Nightly archive")
    due = due_intervals(destination, batch.destinations, batch.runs, DAY0 + timedelta(hours=4))
    for number, item in enumerate(due[:3], start=1):
        with pytest.raises(IntervalFailed, match="does not exist"):
            export_interval(destination.id, item.interval.start, batch, run_id=f"fail-{number}")
        assert batch.destinations.require(destination.id).paused is (number == 3)
    assert sleeps == []  # a missing bucket is not transient: no retries
    paused = batch.destinations.require(destination.id)
    assert paused.consecutive_failures == 3 and f"bucket '{bucket}' does not exist" in paused.paused_reason
    [mail] = sendgrid.to("sam@example.com")
    assert mail["subject"] == "Batch export 'Nightly archive' was paused"
    text = mail["content"][0]["value"]
    assert f"bucket '{bucket}' does not exist" in text
    assert f"export-pipeline batch-exports resume --project-id {PROJECT} {destination.id}" in text
    [message] = slack.messages
    assert message.channel_id == "C0ALERTS" and ":warning:" in message.text and "does not exist" in message.text
    assert "batch-exports resume" in message.text
    assert due_intervals(paused, batch.destinations, batch.runs, AFTER) == []

    # Fixed and resumed: the three failed intervals run first, then the fourth.
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    resumed = batch.destinations.set_paused(destination.id, False)
    after = due_intervals(resumed, batch.destinations, batch.runs, DAY0 + timedelta(hours=4))
    assert [(d.interval.start, d.attempts) for d in after] == [
        (DAY0, 1), (DAY0 + timedelta(hours=1), 1), (DAY0 + timedelta(hours=2), 1), (DAY0 + timedelta(hours=3), 0)]
    assert after[0].run_key(destination.id) == f"{destination.id}|2026-11-01-00:00|1"
    _run_all(batch, resumed, [d.interval for d in after], "resume")
    assert [r.state for r in batch.runs.list(destination.id)] == [RunState.SUCCEEDED] * 4
    assert len(sendgrid.received) == 1 and len(slack.messages) == 1


def test_transient_failures_are_retried_with_backoff(batch, sleeps, tmp_path):
    destination = _create(batch, PROJECT, f"file://{tmp_path}")
    real = batch.open_target
    calls = []

    def flaky(target):
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("connection reset")
        return real(target)

    flaky_batch = BatchDeps(**{**batch.__dict__, "open_target": flaky})
    result = export_interval(destination.id, DAY0, flaky_batch, run_id="flaky")
    assert sleeps == [0.5, 1.0] and result.record.state is RunState.SUCCEEDED and result.record.rows == 40


def test_an_empty_year_is_skipped_in_under_a_second(batch, tmp_path):
    destination = batch.destinations.create(EMPTY_PROJECT, "sam", {
        "url": str(tmp_path), "interval": "hour", "start_at": "2025-01-01T00:00:00Z", "settle_seconds": 0})
    started = time.monotonic()
    to_run, skipped = backfill_intervals(destination, datetime(2025, 1, 1, tzinfo=UTC),
                                         datetime(2026, 1, 1, tzinfo=UTC), batch, AFTER)
    elapsed = time.monotonic() - started
    assert to_run == [] and skipped == 365 * 24 and elapsed < 1.0, elapsed
    assert {r.state for r in batch.runs.list(destination.id, limit=10_000)} == {RunState.SKIPPED}
    assert list(tmp_path.iterdir()) == []


def test_an_interval_that_has_not_closed_is_refused(batch, tmp_path):
    destination = _create(batch, PROJECT, f"file://{tmp_path}", settle_seconds=3600)
    now = datetime.now(UTC)
    current = Interval.containing(IntervalUnit.HOUR, now - timedelta(hours=1), destination.zone)
    with pytest.raises(InvalidRequest, match="has not closed yet"):
        export_interval(destination.id, current.start, batch, run_id="early")


def test_one_run_at_a_time_claims_an_interval(batch, tmp_path):
    destination = _create(batch, PROJECT, f"file://{tmp_path}")
    interval = destination.interval_at(DAY0)
    first = batch.runs.claim(destination.id, interval, "run-a", lambda _: False)
    assert (first.state, first.run_id, first.attempts) == (RunState.RUNNING, "run-a", 1)
    with pytest.raises(IntervalBusy, match="is being exported by run run-a"):
        batch.runs.claim(destination.id, interval, "run-b", lambda run: run == "run-a")
    # run-a's Dagster run has ended without finishing the interval: run-b takes it over.
    taken = batch.runs.claim(destination.id, interval, "run-b", lambda _: False)
    assert (taken.state, taken.run_id, taken.attempts) == (RunState.RUNNING, "run-b", 2)


def test_credentials_come_from_the_variable_the_reference_names(batch, moto_endpoint, bucket_url, monkeypatch):
    destination = _create(batch, PROJECT, bucket_url, endpoint_url=moto_endpoint, credentials_ref="ACME_S3_KEYS")
    monkeypatch.delenv("ACME_S3_KEYS", raising=False)
    with pytest.raises(IntervalFailed, match=r"The credentials of batch export .* \(ACME_S3_KEYS\) are not set"):
        export_interval(destination.id, DAY0, batch, run_id="no-keys")
    monkeypatch.setenv("ACME_S3_KEYS", json.dumps({"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "x"}))
    result = export_interval(destination.id, DAY0, batch, run_id="keys")
    assert (result.record.state, result.record.rows) == (RunState.SUCCEEDED, 40)
    stored = batch.destinations.require(destination.id)
    assert stored.credentials_ref == "ACME_S3_KEYS" and "AKIAEXAMPLE" not in repr(stored)


def test_while_failures_run_in_a_row_a_failed_interval_waits_before_its_next_try(batch, tmp_path):
    destination = _create(batch, PROJECT, f"file://{tmp_path}")
    batch.destinations.advance_cursor(destination.id, datetime(2100, 1, 1, tzinfo=UTC))  # no new intervals
    interval = destination.interval_at(DAY0)
    for attempt in (1, 2):
        batch.runs.claim(destination.id, interval, f"run-{attempt}", lambda _: False)
        batch.runs.finish(destination.id, interval, f"run-{attempt}", RunState.FAILED, error="boom")
        batch.destinations.record_failure(destination.id, "boom")
        failing = batch.destinations.require(destination.id)
        finished = batch.runs.get(destination.id, DAY0).finished_at
        wait = timedelta(minutes=5 * 2 ** (attempt - 1))
        assert due_intervals(failing, batch.destinations, batch.runs, finished + wait - timedelta(seconds=1)) == []
        [due] = due_intervals(failing, batch.destinations, batch.runs, finished + wait)
        assert (due.interval.start, due.attempts) == (DAY0, attempt)
    resumed = batch.destinations.set_paused(destination.id, False)  # a resume clears the failures in a row
    assert [d.attempts for d in due_intervals(resumed, batch.destinations, batch.runs, finished)] == [2]


def test_intervals_left_by_runs_that_ended_are_recorded_failed_and_requested_again(batch, tmp_path):
    destination = _create(batch, PROJECT, f"file://{tmp_path}")
    now = DAY0 + timedelta(hours=3)
    first = due_intervals(destination, batch.destinations, batch.runs, now)
    keys = [d.run_key(destination.id) for d in first]
    assert keys == [f"{destination.id}|2026-11-01-0{h}:00|0" for h in range(3)]
    # Hour 0's run was killed while exporting, hour 1's canceled in the queue; hour 2's run is exporting it.
    batch.runs.claim(destination.id, first[0].interval, "killed", lambda _: False)
    batch.runs.claim(destination.id, first[2].interval, "alive", lambda _: False)
    again = due_intervals(destination, batch.destinations, batch.runs, now,
                          run_ended=lambda run_id: run_id == "killed", request_ended=lambda key: key == keys[1])
    assert [d.run_key(destination.id) for d in again] == [
        f"{destination.id}|2026-11-01-00:00|1", f"{destination.id}|2026-11-01-01:00|1"]
    assert [(r.state, r.attempts, r.error) for r in batch.runs.list(destination.id)] == [
        (RunState.FAILED, 1, "Its run killed ended before it finished the interval."),
        (RunState.FAILED, 1, f"The run requested as {keys[1]} ended before it started (canceled in the queue, "
                             "or refused at launch)."),
        (RunState.RUNNING, 1, None)]
    assert batch.destinations.require(destination.id).consecutive_failures == 0  # no export failed


def test_a_run_stopped_mid_interval_records_it_failed_and_leaves_no_files(batch, tmp_path):
    destination = _create(batch, PROJECT, f"file://{tmp_path}")
    export_interval(destination.id, DAY0, batch, run_id="first")
    real = batch.open_target

    class Terminated:
        """Parts are written, then the run is terminated (Dagster raises its interrupt inside the step)."""

        def __init__(self, destination):
            self._storage = real(destination).storage

        def __getattr__(self, name):
            return getattr(self._storage, name)

        def put_bytes(self, *args, **kwargs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_interval(destination.id, DAY0,
                        BatchDeps(**{**batch.__dict__, "open_target": lambda d: FolderTarget(Terminated(d))}),
                        run_id="canceled")
    record = batch.runs.get(destination.id, DAY0)
    assert (record.state, record.run_id, record.attempts, record.error) == (
        RunState.FAILED, "canceled", 2, "The run stopped before it finished.")
    assert open_target(destination).storage.list_keys("") == []
    stopped = batch.destinations.require(destination.id)
    assert stopped.consecutive_failures == 0 and not stopped.paused
    [due] = [d for d in due_intervals(stopped, batch.destinations, batch.runs, DAY0 + timedelta(hours=1))
             if d.interval.start == DAY0]
    assert due.run_key(destination.id) == f"{destination.id}|2026-11-01-00:00|2"
