"""Batch exports in Dagster: the asset's runs (tags, metadata), the sensor's requests, and a backfill launched
through GraphQL `launchPartitionBackfill` and run by a real dagster-daemon."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import yaml

from export_pipeline.batch_exports.backfill import launch_backfill
from export_pipeline.batch_exports.destinations import RunState
from export_pipeline.batch_exports.records import RunStore
from export_pipeline.batch_exports.run import build_batch_deps, export_interval
from export_pipeline.batch_exports.store import DestinationStore
from export_pipeline.batch_exports.targets import open_target
from export_pipeline.db import get_engine
from export_pipeline.definitions import defs
from export_pipeline.defs.batch_exports import (
    BATCH_JOB,
    DESTINATION_NAME_TAG,
    DESTINATIONS,
    OUTCOME_TAG,
    batch_export_sensor,
)
from export_pipeline.defs.graphql import DagsterGraphQL
from export_pipeline.defs.resources import AppDatabaseResource
from export_pipeline.defs.runs import CLICKHOUSE_TAG
from export_pipeline_tests.fakes.dagster_services import ROOT
from export_pipeline_tests.fakes.exportdata import INGESTED_COLUMNS, expected_rows, parse_file

PROJECT = 9985
DAY0 = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def two_hours_of_events(clickhouse, events_table) -> None:
    # 30 events in hour 0, none in hour 1, 20 in hour 2.
    rows = []
    for index, minute in enumerate([m * 2 for m in range(30)] + [120 + m * 3 for m in range(20)]):
        moment = DAY0 + timedelta(minutes=minute)
        rows.append([PROJECT, uuid.uuid5(uuid.UUID(int=PROJECT), str(index)), "$pageview", moment, f"u{index % 3}",
                     uuid.UUID(int=1), json.dumps({"i": index}), moment])
    with clickhouse.session("test insert") as session:
        session.client.insert(events_table.table, rows, column_names=INGESTED_COLUMNS, database=events_table.database)


def _create(engine, tmp_path, paused_reason=None, **fields):
    return DestinationStore(engine).create(PROJECT, "sam", {
        "url": f"file://{tmp_path}", "interval": "hour", "start_at": DAY0.isoformat(), "settle_seconds": 0, **fields},
        paused_reason=paused_reason)


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.yaml"])
def test_each_destination_runs_one_interval_at_a_time(config):
    limits = yaml.safe_load((ROOT / config).read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "dagster/partition/destination", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


def test_a_run_exports_one_interval_with_the_engine_tag_and_metadata(settings, tmp_path):
    destination = _create(get_engine(settings.database_url), tmp_path / "out")
    job = defs.resolve_job_def(BATCH_JOB)
    assert job.tags[CLICKHOUSE_TAG] == "embedded"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DESTINATIONS.name, [destination.id])
        key = dg.MultiPartitionKey({"destination": destination.id, "interval": "2026-11-02-00:00"})
        result = job.execute_in_process(instance=instance, partition_key=key)
        metadata = result.asset_materializations_for_node("batch_export")[0].metadata
        run = instance.get_run_by_id(result.run_id)
    assert {k: metadata[k].value for k in ("rows", "files", "state", "attempts")} == {
        "rows": 30, "files": 1, "state": "succeeded", "attempts": 1}
    assert metadata["bytes"].value > 0
    assert metadata["manifest"].value == "9985/events/2026/11/02/20261102T000000Z-20261102T010000Z/manifest.json"
    assert run.tags["dagster/partition/destination"] == destination.id
    assert (metadata["skipped"].value, metadata["destination_name"].value) == (False, destination.name)
    assert (run.tags[OUTCOME_TAG], run.tags[DESTINATION_NAME_TAG]) == ("exported", destination.name[:63])


def test_an_empty_interval_is_marked_skipped_in_dagster(settings, tmp_path):
    destination = _create(get_engine(settings.database_url), tmp_path / "empty", name="Nightly archive")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DESTINATIONS.name, [destination.id])
        key = dg.MultiPartitionKey({"destination": destination.id, "interval": "2026-11-02-07:00"})  # no events
        result = defs.resolve_job_def(BATCH_JOB).execute_in_process(instance=instance, partition_key=key)
        metadata = result.asset_materializations_for_node("batch_export")[0].metadata
        run = instance.get_run_by_id(result.run_id)
    assert (metadata["skipped"].value, metadata["state"].value, metadata["rows"].value) == (True, "skipped", 0)
    assert (run.tags[OUTCOME_TAG], run.tags[DESTINATION_NAME_TAG]) == ("skipped-empty", "Nightly archive")
    assert not (tmp_path / "empty").exists()


def test_an_hour_that_is_not_a_daily_destinations_interval_start_does_nothing(settings, tmp_path):
    destination = _create(get_engine(settings.database_url), tmp_path / "daily", interval="day",
                          timezone="Europe/Paris", start_at="2026-11-02")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DESTINATIONS.name, [destination.id])
        key = dg.MultiPartitionKey({"destination": destination.id, "interval": "2026-11-02-05:00"})
        result = defs.resolve_job_def(BATCH_JOB).execute_in_process(instance=instance, partition_key=key)
        metadata = result.asset_materializations_for_node("batch_export")[0].metadata
    assert metadata["not_an_interval"].value is True
    assert not (tmp_path / "daily").exists()


def test_the_sensor_registers_destinations_and_requests_closed_intervals_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    store = DestinationStore(get_engine(url))
    live = _create(store.engine, tmp_path / "a", start_at=(datetime.now(UTC) - timedelta(hours=3)).replace(
        minute=0, second=0, microsecond=0).isoformat())
    paused = store.set_paused(_create(store.engine, tmp_path / "b").id, True, "test")
    resources = {"app_db": AppDatabaseResource(url=url)}
    with dg.instance_for_test() as instance:
        first = batch_export_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        hours = [(live.start_at + timedelta(hours=h)).strftime("%Y-%m-%d-%H:%M") for h in range(3)]
        assert [r.run_key for r in first.run_requests] == [f"{live.id}|{h}|0" for h in hours]
        assert [r.partition_key for r in first.run_requests] == [f"{live.id}|{h}" for h in hours]
        assert [sorted(r.partition_keys) for r in first.dynamic_partitions_requests] == [sorted([live.id, paused.id])]
        instance.add_dynamic_partitions(DESTINATIONS.name, [live.id, paused.id])
        # Not yet run: asked again with the same run_keys (Dagster drops those it launched), nothing new.
        again = batch_export_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.run_key for r in again.run_requests] == [f"{live.id}|{h}|0" for h in hours]
        assert again.dynamic_partitions_requests == []
        # Hour 0's run was canceled in the queue; hour 1's run was killed while exporting (record `running`).
        instance.add_run(dg.DagsterRun(job_name=BATCH_JOB, run_id=str(uuid.uuid4()),
                                       status=dg.DagsterRunStatus.CANCELED, tags={"dagster/run_key": f"{live.id}|{hours[0]}|0"}))
        killed = instance.add_run(dg.DagsterRun(job_name=BATCH_JOB, run_id=str(uuid.uuid4()),
                                                status=dg.DagsterRunStatus.FAILURE))
        RunStore(store.engine).claim(live.id, live.interval_at(live.start_at + timedelta(hours=1)), killed.run_id,
                                     lambda _: False)
        third = batch_export_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.run_key for r in third.run_requests] == [
            f"{live.id}|{hours[0]}|1", f"{live.id}|{hours[1]}|1", f"{live.id}|{hours[2]}|0"]


@pytest.fixture(scope="module")
def deployment(dagster_stack) -> tuple:
    return dagster_stack["deployment"], dagster_stack["dagster_home"], dagster_stack["database_url"]


def test_a_graphql_backfill_is_run_by_the_daemon_at_low_priority(deployment, settings, clickhouse, tmp_path):
    services, dagster_home, database_url = deployment
    engine = get_engine(database_url)
    # Paused, so that only the backfill (an operator's explicit request) exports it, not the live sensor.
    destination = _create(engine, tmp_path / "out", paused_reason="backfill only")
    deps = build_batch_deps(settings, engine, clickhouse)
    client = DagsterGraphQL(f"http://127.0.0.1:{services.port}")

    backfill = launch_backfill(client, deps, destination.id, DAY0, DAY0 + timedelta(hours=3), requested_by="sam")
    assert backfill.intervals == [f"{destination.id}|2026-11-02-00:00", f"{destination.id}|2026-11-02-02:00"]
    assert backfill.skipped == 1 and backfill.backfill_id

    def finished():
        states = [r.state for r in deps.runs.list(destination.id)]
        return states if RunState.RUNNING not in states and states.count(RunState.SUCCEEDED) == 2 else None

    states = services.wait_until(finished, timeout=240, what="the backfill's two runs")
    assert states == [RunState.SUCCEEDED, RunState.SKIPPED, RunState.SUCCEEDED]
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
    assert sorted(r.tags["dagster/partition"] for r in runs) == backfill.intervals
    assert {r.tags["dagster/priority"] for r in runs} == {"-1"}
    storage = open_target(destination).storage
    exported = Counter(json.dumps(row, sort_keys=True, ensure_ascii=False)
                       for key in storage.list_keys("") if not key.endswith("manifest.json")
                       for row in parse_file(key, storage.read_bytes(key)))
    assert exported == expected_rows(clickhouse, deps.table, PROJECT, json_properties=True)


_CANCEL = """
mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) {
  __typename ... on CancelBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
_BACKFILL_STATUS = "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"


def test_canceling_a_graphql_backfill_cancels_its_queued_runs_and_leaves_the_intervals_as_they_were(
        deployment, settings, clickhouse, tmp_path):
    services, dagster_home, database_url = deployment
    engine = get_engine(database_url)
    destination = _create(engine, tmp_path / "out", paused_reason="backfill only")
    deps = build_batch_deps(settings, engine, clickhouse)
    # Hour 0 was exported by a live run before the backfill re-runs it.
    exported = export_interval(destination.id, DAY0, deps, run_id="live-0")
    storage = open_target(destination).storage
    files_before = {key: storage.read_bytes(key) for key in storage.list_keys("")}
    # The destination's one run slot is taken (an earlier interval still running), so the backfill's runs queue.
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    blocker = instance.add_run(dg.DagsterRun(job_name=BATCH_JOB, run_id=str(uuid.uuid4()),
                                             status=dg.DagsterRunStatus.STARTED,
                                             tags={"dagster/partition/destination": destination.id}))
    try:
        backfill = launch_backfill(DagsterGraphQL(f"http://127.0.0.1:{services.port}"), deps,
                                   destination.id, DAY0, DAY0 + timedelta(hours=3), requested_by="sam")
        backfill_runs = dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id})
        queued = services.wait_until(
            lambda: (runs := instance.get_runs(filters=backfill_runs)) and len(runs) == 2
            and all(r.status is dg.DagsterRunStatus.QUEUED for r in runs) and runs,
            timeout=120, what="the backfill's two runs in the queue", interval=1)
        assert sorted(r.tags["dagster/partition"] for r in queued) == backfill.intervals
        assert {r.tags[CLICKHOUSE_TAG] for r in queued} == {"embedded"}  # asset backfills too (run_queue.py)
        canceled = services.graphql(_CANCEL, {"id": backfill.backfill_id})["cancelPartitionBackfill"]
        assert canceled == {"__typename": "CancelBackfillSuccess", "backfillId": backfill.backfill_id}
        status = services.wait_until(
            lambda: (services.graphql(_BACKFILL_STATUS, {"id": backfill.backfill_id}) or {}).get(
                "partitionBackfillOrError", {}).get("status") in ("CANCELED", "COMPLETED_FAILED") and "done",
            timeout=120, what="the backfill's cancellation", interval=1)
        assert status == "done"
        assert services.graphql(_BACKFILL_STATUS, {"id": backfill.backfill_id}) == {
            "partitionBackfillOrError": {"status": "CANCELED"}}
        runs = instance.get_runs(filters=backfill_runs)
        assert sorted((r.tags["dagster/partition"], r.status) for r in runs) == [
            (key, dg.DagsterRunStatus.CANCELED) for key in backfill.intervals]
        assert [instance.get_run_record_by_id(r.run_id).start_time for r in runs] == [None, None]  # never launched
    finally:
        instance.delete_run(blocker.run_id)
    # Nothing ran: hour 0 keeps its export, hour 1 was found empty, hour 2 was never exported.
    assert [(r.interval_start, r.state, r.run_id) for r in deps.runs.list(destination.id)] == [
        (DAY0, RunState.SUCCEEDED, "live-0"), (DAY0 + timedelta(hours=1), RunState.SKIPPED, None)]
    assert exported.record.rows == 30
    assert {key: storage.read_bytes(key) for key in storage.list_keys("")} == files_before
