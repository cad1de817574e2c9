"""The Dagster glue: sensor, Launchpad-style config runs, and (with a real webserver + daemon) a run launched
through GraphQL and queued requests launched exactly once by the sensor."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

import dagster as dg
import pytest

from export_pipeline.accounts.roles import MemberTable, Role, add_member
from export_pipeline.definitions import defs
from export_pipeline.defs.export_config import PRESETS, moment_config, new_request
from export_pipeline.defs.exports import (
    EXPORT_PARTITIONS,
    event_export,
    export_request_sensor,
    with_storage_kind,
)
from export_pipeline.defs.names import CODE_LOCATION, EXPORT_JOB, REPOSITORY
from export_pipeline.defs.resources import AppDatabaseResource
from export_pipeline.engine.resources import Resource
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import InvalidRequest
from export_pipeline.exports.finished_email import size_text
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.store import ExportStore
from export_pipeline_tests.fakes.exportdata import expected_rows, insert_events, known_events

PROJECT = 9101


@pytest.fixture(scope="module", autouse=True)
def known_data(clickhouse, events_table, store):
    insert_events(clickhouse, events_table, known_events(PROJECT))
    add_member(store.engine, PROJECT, "maria", Role.MAINTAINER)
    add_member(store.engine, PROJECT, "rita", Role.REPORTER)


def test_export_runs_are_tagged_for_the_embedded_engine_queue():
    assert defs.resolve_job_def("export_job").tags["export-pipeline/clickhouse"] == "embedded"


def test_the_export_asset_shows_the_kind_of_the_configured_storage():
    key = dg.AssetKey("event_export")
    assert defs.resolve_assets_def(key).specs_by_key[key].kinds == {"clickhouse", "polars", "local"}
    on_s3 = with_storage_kind(event_export, "s3://bucket/exports")
    assert on_s3.specs_by_key[key].kinds == {"clickhouse", "polars", "s3"}


def test_sensor_registers_new_partitions_and_keys_runs_by_export_id(store, settings):
    spec = parse_spec(project_id=PROJECT, requested_by="maria", format="csv")
    first, second = store.create(spec, source="test"), store.create(spec, source="test")
    resources = {"app_db": AppDatabaseResource(url=settings.database_url)}
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(EXPORT_PARTITIONS.name, [first.id])  # already registered

            result = export_request_sensor(dg.build_sensor_context(instance=instance, resources=resources))

            ours = {r.partition_key: r for r in result.run_requests if r.partition_key in (first.id, second.id)}
            assert {key: r.run_key for key, r in ours.items()} == {first.id: first.id, second.id: second.id}
            added = [key for req in result.dynamic_partitions_requests for key in req.partition_keys]
            assert second.id in added and first.id not in added
    finally:
        for request in (first, second):
            store.fail(request.id, None, code="test", message="test cleanup", expires_at=request.created_at)


def test_sensor_skips_when_nothing_is_queued(tmp_path):
    resources = {"app_db": AppDatabaseResource(url=f"sqlite:///{tmp_path / 'empty.db'}")}
    with dg.instance_for_test() as instance:
        result = export_request_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert result.run_requests == [] and "No queued export requests" in str(result.skip_reason)


def _launch(instance: dg.DagsterInstance, key: str, config: dict | None) -> dg.ExecuteInProcessResult:
    """A run of a new partition, with `config` as its request (None: no config, as a partition added by hand)."""
    instance.add_dynamic_partitions(EXPORT_PARTITIONS.name, [key])
    return defs.resolve_job_def("export_job").execute_in_process(
        instance=instance, partition_key=key, raise_on_error=False,
        run_config={"ops": {"event_export": {"config": config}}} if config is not None else {},
    )


def test_launchpad_config_creates_the_request_and_reports_metadata(store, clickhouse, events_table):
    with dg.instance_for_test() as instance:
        result = _launch(instance, "launchpad-export-1", {"project_id": PROJECT, "requested_by": "maria", "format": "csv"})
        assert result.success
        metadata = result.asset_materializations_for_node("event_export")[0].metadata
    expected = sum(expected_rows(clickhouse, events_table, PROJECT, json_properties=False).values())
    assert metadata["rows"].value == expected == 3_002
    assert metadata["files"].value == 1 and metadata["bytes"].value > 0
    request = store.require("launchpad-export-1")
    # Typed for the UI: a readable size next to the exact bytes, the manifest as a path, times as times.
    assert metadata["size"] == dg.MetadataValue.text(size_text(request.byte_count))
    assert metadata["bytes"] == dg.MetadataValue.int(request.byte_count)
    assert isinstance(metadata["manifest"], dg.PathMetadataValue)
    assert metadata["manifest"].value.endswith(f"/{PROJECT}/launchpad-export-1/manifest.json")
    assert metadata["expires_at"] == dg.MetadataValue.timestamp(request.expires_at)
    assert metadata["project_id"] == dg.MetadataValue.int(PROJECT)
    assert metadata["already_done"] == dg.MetadataValue.bool(False)
    assert (request.state, request.source, request.spec.format.value) == (ExportState.SUCCEEDED, "dagster", "csv")


def test_a_run_without_config_or_stored_request_fails_with_field_messages():
    with dg.instance_for_test() as instance:
        result = _launch(instance, "launchpad-export-2", None)
        assert not result.success
        failure = result.failure_data_for_node("event_export")
    message = failure.user_failure_data.description  # type: ignore[union-attr]
    assert "project_id: must be a positive integer, got None" in message
    assert "requested_by: must be a user name" in message


def test_a_config_is_a_whole_request_checked_before_the_run():
    with dg.instance_for_test() as instance, pytest.raises(dg.DagsterInvalidConfigError) as refused:
        _launch(instance, "launchpad-export-4", {"format": "csv"})
    assert sorted(e.reason.value for e in refused.value.errors) == ["MISSING_REQUIRED_FIELDS"]
    assert "['project_id', 'requested_by']" in refused.value.errors[0].message


def test_config_dates_are_utc_parts_meaning_what_iso_dates_mean():
    spec, notify = new_request({"project_id": PROJECT, "requested_by": "maria", "notify_email": " ops@example.com ",
                                "date_from": {"year": 2026, "month": 1, "day": 31},
                                "date_to": {"year": 2026, "month": 2, "day": 2}})
    # A bare date_to is through that whole day, as `--date-to 2026-02-02` is.
    assert (spec.date_from, spec.date_to, notify) == (datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC),
                                                      "ops@example.com")
    spec, _ = new_request({"project_id": PROJECT, "requested_by": "maria",
                           "date_to": moment_config(datetime(2026, 2, 2, 12, 30, 5, tzinfo=UTC))})
    assert spec.date_to == datetime(2026, 2, 2, 12, 30, 5, tzinfo=UTC)
    assert moment_config(date(2026, 2, 2)) == {"year": 2026, "month": 2, "day": 2}
    with pytest.raises(InvalidRequest) as invalid:
        new_request({"project_id": PROJECT, "requested_by": "maria", "date_from": {"year": 2026, "month": 2, "day": 31}})
    assert invalid.value.details == {"date_from": "must be an ISO 8601 date or datetime (e.g. 2026-01-31 or "
                                                  "2026-01-31T12:00:00Z), got '2026-02-31'"}


def test_run_for_a_reporter_fails_with_the_role_needed(store):
    with dg.instance_for_test() as instance:
        result = _launch(instance, "launchpad-export-3", {"project_id": PROJECT, "requested_by": "rita"})
        assert not result.success
        failure = result.failure_data_for_node("event_export")
    assert "'rita' is Reporter (20) on project 9101; exporting events needs Maintainer (40)" in (
        failure.user_failure_data.description  # type: ignore[union-attr]
    )
    assert store.require("launchpad-export-3").error_code == "access_denied"


# --- A real Dagster deployment (conftest `dagster_stack`): webserver + daemon as subprocesses on loopback ----


@pytest.fixture(scope="module")
def dagster_deployment(dagster_stack) -> dict:
    add_member(dagster_stack["store"].engine, PROJECT, "maria", Role.MAINTAINER)
    return dagster_stack


def test_graphql_launched_run_exports(dagster_deployment, clickhouse, events_table):
    from export_pipeline.defs.graphql import DagsterGraphQL

    client = DagsterGraphQL(f"http://127.0.0.1:{dagster_deployment['port']}")
    export_id, run_id = client.submit_export(project_id=PROJECT, requested_by="maria", format="ndjson", compression="zstd")

    deployment = dagster_deployment["deployment"]
    instance = dg.DagsterInstance.from_config(str(dagster_deployment["dagster_home"]))
    status = deployment.wait_until(
        lambda: (s := dg.DagsterRunStatus(client.run_status(run_id))) in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) and s,
        timeout=180, what=f"run {run_id}",
    )
    assert status == dg.DagsterRunStatus.SUCCESS, deployment.log_tail()
    request = dagster_deployment["store"].require(export_id)
    expected = sum(expected_rows(clickhouse, events_table, PROJECT, json_properties=True).values())
    assert (request.state, request.row_count, request.source) == (ExportState.SUCCEEDED, expected, "dagster")
    run = instance.get_run_by_id(run_id)
    assert (run.tags["export-pipeline/clickhouse"], run.tags["dagster/partition_set"]) == (
        "embedded", "export_job_partition_set")  # the queue's slot; a job backfill from failure finds it


_CONFIG_CHECK = """
query Check($selector: PipelineSelector!, $config: RunConfigData!) {
  isPipelineConfigValid(pipeline: $selector, mode: "default", runConfigData: $config) {
    __typename
    ... on RunConfigValidationInvalid {
      errors { reason stack { entries { ... on EvaluationStackPathEntry { fieldName } } } }
    }
  }
}
"""
_CONFIG_DESCRIPTION = """
query Schema($selector: PipelineSelector!) {
  runConfigSchemaOrError(selector: $selector) {
    ... on RunConfigSchema { rootConfigType { ... on CompositeConfigType { fields { name configType {
      ... on CompositeConfigType { fields { name configType {
        ... on CompositeConfigType { fields { name description } } } } } } } } } }
  }
}
"""
SELECTOR = {"repositoryLocationName": CODE_LOCATION, "repositoryName": REPOSITORY, "pipelineName": EXPORT_JOB}


def _launchpad_check(deployment, config: dict) -> tuple[str, list[tuple[str, list[str]]]]:
    """What the Launchpad's validation (Dagster's GraphQL API) says of `config` as the export's request: its
    verdict, and each error's reason and path under ops.event_export.config."""
    answer = deployment.graphql(_CONFIG_CHECK, {"selector": SELECTOR,
                                                "config": {"ops": {"event_export": {"config": config}}}})
    verdict = answer["isPipelineConfigValid"]
    errors = [(e["reason"], [entry["fieldName"] for entry in e["stack"]["entries"]][3:])
              for e in verdict.get("errors", [])]
    return verdict["__typename"], errors


def test_the_launchpad_refuses_a_missing_project_id_and_a_bad_date_before_launch(dagster_deployment):
    deployment = dagster_deployment["deployment"]
    assert _launchpad_check(deployment, {"requested_by": "maria", "format": "csv"}) == (
        "RunConfigValidationInvalid", [("MISSING_REQUIRED_FIELD", [])])
    assert _launchpad_check(deployment, {"project_id": PROJECT, "requested_by": "maria", "date_from": "yesterday"}) == (
        "RunConfigValidationInvalid", [("RUNTIME_TYPE_MISMATCH", ["date_from"])])
    assert _launchpad_check(deployment, {"project_id": PROJECT, "requested_by": "maria", "format": "CSV"}) == (
        "RunConfigValidationInvalid", [("RUNTIME_TYPE_MISMATCH", ["format"])])  # one spelling: the lowercase one
    assert _launchpad_check(deployment, {"project_id": PROJECT, "requested_by": "maria", "format": "csv",
                                         "resource": "persons", "date_from": {"year": 2026, "month": 1, "day": 1}}) == (
        "PipelineConfigValidationValid", [])


def test_the_launchpad_has_a_starting_config_per_resource_and_each_is_valid(dagster_deployment):
    deployment = dagster_deployment["deployment"]
    assert set(PRESETS) == set(Resource)
    for config in PRESETS.values():
        assert _launchpad_check(deployment, config) == ("PipelineConfigValidationValid", [])
    root = deployment.graphql(_CONFIG_DESCRIPTION, {"selector": SELECTOR})["runConfigSchemaOrError"]["rootConfigType"]
    ops = next(f for f in root["fields"] if f["name"] == "ops")["configType"]["fields"]
    export = next(f for f in ops if f["name"] == "event_export")["configType"]["fields"]
    description = next(f for f in export if f["name"] == "config")["description"]
    for resource, config in PRESETS.items():
        assert f"- {resource.value}: {json.dumps(config)}" in description.splitlines()
    assert PRESETS[Resource.GROUPS] == {"project_id": 1, "requested_by": "your-user-name", "resource": "groups",
                                        "format": "ndjson", "group_type": "organization"}


def test_a_run_refused_at_launch_names_only_the_real_problem(dagster_deployment):
    from export_pipeline.defs.graphql import DagsterGraphQL

    client = DagsterGraphQL(f"http://127.0.0.1:{dagster_deployment['port']}")
    key = "exp_20260101000000_febthirty1"
    client.add_partition(EXPORT_PARTITIONS.name, key)  # type: ignore[arg-type]
    config = {"project_id": PROJECT, "requested_by": "maria", "date_from": {"year": 2026, "month": 2, "day": 31}}
    run_id = client.launch_run(EXPORT_JOB, run_config={"ops": {"event_export": {"config": config}}},
                               tags={"dagster/partition": key})

    instance = dg.DagsterInstance.from_config(str(dagster_deployment["dagster_home"]))
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
    [failure] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert failure.message == (
        f"Refused at launch: partition {key} has no stored export request, and the run config does not describe "
        "one. Invalid export request: date_from: must be an ISO 8601 date or datetime (e.g. 2026-01-31 or "
        "2026-01-31T12:00:00Z), got '2026-02-31'. Describe it under ops.event_export.config, or request the export "
        "with the CLI or the API.")


def test_daemon_sensor_launches_a_queued_export_exactly_once(dagster_deployment):
    store: ExportStore = dagster_deployment["store"]
    request = store.create(parse_spec(project_id=PROJECT, requested_by="maria", format="parquet"), source="test")

    deployment = dagster_deployment["deployment"]
    done = deployment.wait_until(lambda: (r := store.require(request.id)).is_terminal and r, timeout=180,
                                 what="the sensor's run")
    assert done.state is ExportState.SUCCEEDED, deployment.log_tail()
    time.sleep(12)  # two more sensor ticks see nothing new to launch

    instance = dg.DagsterInstance.from_config(str(dagster_deployment["dagster_home"]))
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": request.id}))
    assert [(run.tags.get("dagster/run_key"), run.tags.get("export-pipeline/clickhouse"), run.status)
            for run in runs] == [(request.id, "embedded", dg.DagsterRunStatus.SUCCESS)]
    assert instance.has_dynamic_partition(EXPORT_PARTITIONS.name, request.id)


def test_daemon_delivers_a_due_subscription_exactly_once(dagster_deployment):
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from export_pipeline.db import subscriptions as subscriptions_table
    from export_pipeline.defs.subscriptions import DELIVERY_PARTITIONS
    from export_pipeline.insights.store import InsightStore
    from export_pipeline.subscriptions.records import DeliveryState
    from export_pipeline.subscriptions.store import SubscriptionStore

    engine = dagster_deployment["store"].engine
    insight = InsightStore(engine).create_insight(PROJECT, name="Events", created_by="maria", query={
        "kind": "number", "date_from": "2026-01-01", "date_to": "2026-12-31"})
    subscriptions = SubscriptionStore(engine)
    subscription = subscriptions.create(PROJECT, {
        "resource": "insight", "target_id": insight.id, "title": "Daily events",
        "schedule": {"frequency": "daily", "hour": 0, "timezone": "UTC", "start": "2026-01-01T00:00"},
        "destinations": [{"kind": "email", "email": "team@example.com"}]}, created_by="maria")
    with engine.begin() as conn:  # existed since the day before yesterday: today's midnight is due
        conn.execute(sa.update(subscriptions_table).where(subscriptions_table.c.id == subscription.id)
                     .values(created_at=datetime.now(UTC) - timedelta(days=1, hours=12)))
    key = f"{subscription.id}-{datetime.now(UTC):%Y%m%d}T0000Z"

    deployment = dagster_deployment["deployment"]
    done = deployment.wait_until(lambda: (d := subscriptions.delivery(key)) is not None and d.finished_at and d,
                                 timeout=240, what="the scheduler's delivery")
    assert done.state is DeliveryState.SUCCEEDED, deployment.log_tail()
    time.sleep(32)  # the sensor ticks again (every 30 s): nothing is sent twice

    instance = dg.DagsterInstance.from_config(str(dagster_deployment["dagster_home"]))
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}))
    assert [run.tags.get("dagster/run_key") for run in runs] == [key]
    assert instance.has_dynamic_partition(DELIVERY_PARTITIONS.name, key)
    assert [d.id for d in subscriptions.deliveries(subscription.id)][0] == key
    assert len(subscriptions.outcomes(key)) == 1


def test_sweeper_deletes_expired_files_marks_them_and_drops_partitions(store, settings, clickhouse, events_table):
    import logging

    import sqlalchemy as sa

    from export_pipeline.db import export_requests
    from export_pipeline.exports.deps import ExportDeps
    from export_pipeline.exports.run import run_export
    from export_pipeline.storage import storage_from_url

    deps = ExportDeps(settings, clickhouse, storage_from_url(settings.storage_url), store, events_table,
                      MemberTable(store.engine))
    spec = parse_spec(project_id=PROJECT, requested_by="maria", format="ndjson", events=["signed_up"])
    expired, fresh = store.create(spec, source="test"), store.create(spec, source="test")
    for request in (expired, fresh):
        run_export(request.id, deps, run_id=f"run-{request.id}", run_is_active=lambda _: False, log=logging.getLogger())
    with store.engine.begin() as conn:
        conn.execute(sa.update(export_requests).where(export_requests.c.id == expired.id)
                     .values(expires_at=expired.created_at))
    assert deps.storage.list_keys(expired.storage_prefix)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(EXPORT_PARTITIONS.name, [expired.id, fresh.id])
        result = defs.resolve_job_def("sweep_expired_exports_job").execute_in_process(instance=instance)
        assert result.success
        assert instance.get_dynamic_partitions(EXPORT_PARTITIONS.name) == [fresh.id]

    assert deps.storage.list_keys(expired.storage_prefix) == []
    assert store.require(expired.id).state is ExportState.EXPIRED
    assert len(deps.storage.list_keys(fresh.storage_prefix)) == 2  # part + manifest untouched
    assert store.require(fresh.id).state is ExportState.SUCCEEDED
