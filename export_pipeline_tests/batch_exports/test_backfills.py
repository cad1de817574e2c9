"""Backfills as an operator runs them, through a real daemon and Dagster's GraphQL API (`launchPartitionBackfill`,
what the UI's "Launch backfill" calls): failed export partitions re-run their stored requests, one run at a
time on the embedded engine (the run queue tags every run that uses ClickHouse); a partition with no stored
request and no config is refused at launch; a job backfill from failure re-executes a failed export; a skipped
delivery slot is delivered by a backfill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.defs.exports import EXPORT_PARTITIONS
from export_pipeline.defs.runs import CLICKHOUSE_TAG
from export_pipeline.engine.spec import parse_spec
from export_pipeline.exports.requests import ExportState
from export_pipeline_tests.api.test_export_page import needs_chromium
from export_pipeline_tests.fakes.exportdata import T0, insert_events

PROJECT = 9643

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
BACKFILL_STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }
"""
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@pytest.fixture(scope="module")
def services(dagster_stack, clickhouse, events_table) -> dict:
    import uuid

    insert_events(clickhouse, events_table, [
        [PROJECT, uuid.UUID(int=PROJECT * 100 + i), "signed_up", T0 + timedelta(seconds=i), f"u{i}",
         uuid.UUID(int=7), "{}"] for i in range(5)])
    add_member(dagster_stack["store"].engine, PROJECT, "bea", Role.REPORTER)
    return dagster_stack


def backfill(services: dict, asset: str, partitions: list[str]) -> tuple[str, str]:
    return launch_backfill(services, {"assetSelection": [{"path": [asset]}], "partitionNames": partitions,
                                      "fromFailure": False})


def launch_backfill(services: dict, params: dict) -> tuple[str, str]:
    """Launch a backfill as the UI does and wait until the daemon finished it: (backfill id, its status)."""
    deployment = services["deployment"]
    launched = deployment.graphql(LAUNCH_BACKFILL, {"params": params})
    outcome = (launched or {}).get("launchPartitionBackfill", {})
    assert outcome.get("__typename") == "LaunchBackfillSuccess", launched
    backfill_id = outcome["backfillId"]
    status = deployment.wait_until(
        lambda: ((deployment.graphql(BACKFILL_STATUS, {"id": backfill_id}) or {})
                 .get("partitionBackfillOrError", {}).get("status") in FINISHED
                 and deployment.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]),
        timeout=300, what=f"backfill {backfill_id}", interval=2)
    return backfill_id, status


async def screenshots(port: int, folder, pages: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Each Dagster UI page (path, a text it must show) as a PNG in `folder`; returns each page's text."""
    import asyncio
    import contextlib

    import pyppeteer.errors

    from export_pipeline_tests.api.test_export_page import browser_page

    texts = {}
    async with browser_page(f"http://127.0.0.1:{port}/") as page:
        await page.setViewport({"width": 1440, "height": 900})
        for name, (path, expected) in pages.items():
            await page.goto(f"http://127.0.0.1:{port}{path}")
            with contextlib.suppress(pyppeteer.errors.TimeoutError):  # the assertion below says what showed
                await page.waitForFunction(f"document.body.innerText.includes({expected!r})", timeout=60_000)
            # The UI's one-time "Join the Dagster community" dialog hides the page: skip it.
            await page.evaluate("[...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Skip')"
                                "?.click()", force_expr=True)
            await asyncio.sleep(1.5)  # its fade-out
            await page.screenshot(path=str(folder / f"{name}.png"))
            texts[name] = await page.evaluate("document.body.innerText")
            assert expected in texts[name], (name, page.url, texts[name][:1500])
    return texts


@needs_chromium
def test_a_backfill_reruns_failed_exports_one_at_a_time_and_refuses_a_partition_without_request(services, tmp_path):
    store, deployment = services["store"], services["deployment"]
    instance = dg.DagsterInstance.from_config(str(services["dagster_home"]))
    # Two exports by a Reporter: the sensor runs them and both fail (the role check), as stored requests.
    failed = [store.create(parse_spec(project_id=PROJECT, requested_by="bea", format=fmt), source="test")
              for fmt in ("csv", "ndjson")]
    for request in failed:
        done = deployment.wait_until(lambda r=request: (s := store.require(r.id)).is_terminal and s, timeout=240,
                                     what=f"the sensor's run of {request.id}")
        assert (done.state, done.error_code) == (ExportState.FAILED, "access_denied"), deployment.log_tail()
    add_member(store.engine, PROJECT, "bea", Role.MAINTAINER)  # the fix; now the operator backfills
    orphan = "exp_20260101000000_launchpad0"  # a partition added by hand: no request, no config
    instance.add_dynamic_partitions(EXPORT_PARTITIONS.name, [orphan])

    backfill_id, status = backfill(services, "event_export", [r.id for r in failed] + [orphan])

    assert status in ("COMPLETED_FAILED", "FAILED"), deployment.log_tail()  # the orphan failed
    records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    by_partition = {r.dagster_run.tags["dagster/partition"]: r for r in records}
    assert set(by_partition) == {*(r.id for r in failed), orphan}
    for request in failed:
        record = by_partition[request.id]
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, deployment.log_tail()
        assert record.dagster_run.tags[CLICKHOUSE_TAG] == "embedded"
        again = store.require(request.id)
        assert (again.state, again.row_count, again.spec.format.value) == (
            ExportState.SUCCEEDED, 5, request.spec.format.value)
    first, second = sorted((by_partition[r.id] for r in failed), key=lambda r: r.start_time)
    assert first.end_time <= second.start_time  # never side by side on the embedded engine

    refused = by_partition[orphan].dagster_run
    assert refused.status == dg.DagsterRunStatus.FAILURE
    assert (refused.tags["dagster/max_retries"], refused.tags["dagster/will_retry"]) == ("0", "false")
    assert len([r for r in records if r.dagster_run.tags["dagster/partition"] == orphan]) == 1  # no retry
    assert by_partition[orphan].start_time is None  # refused at launch: no run worker ever started
    [failure] = instance.all_logs(refused.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert failure.message.startswith(
        f"Refused at launch: partition {orphan} has no stored export request, and the run config does not "
        "describe one. Invalid export request: project_id: must be a positive integer, got None")
    assert store.get(orphan) is None

    # What an operator sees in Dagster's UI (Chromium): the asset's partitions, the backfill, the refused run.
    import asyncio

    texts = asyncio.run(screenshots(services["port"], tmp_path, {
        "asset-partitions": (f"/assets/event_export?view=partitions&partition={failed[0].id}", "Materialized (2)"),
        "backfill": (f"/runs/b/{backfill_id}?tab=partitions", "Partition selection"),
        "refused-run": (f"/runs/{refused.run_id}", "Refused at launch"),
    }))
    assert all((tmp_path / f"{name}.png").stat().st_size > 10_000 for name in texts)
    assert "Refused at launch" in texts["refused-run"]


def test_a_backfill_delivers_a_skipped_slot(services):
    from export_pipeline.defs.subscriptions import DELIVERY_PARTITIONS
    from export_pipeline.insights.store import InsightStore
    from export_pipeline.subscriptions.records import DeliveryState
    from export_pipeline.subscriptions.store import SubscriptionStore

    engine, deployment = services["store"].engine, services["deployment"]
    add_member(engine, PROJECT, "bea", Role.MAINTAINER)
    insight = InsightStore(engine).create_insight(PROJECT, name="Sign-ups", created_by="bea", query={
        "kind": "number", "date_from": "2026-01-01", "date_to": "2026-12-31"})
    subscriptions = SubscriptionStore(engine)
    subscription = subscriptions.create(PROJECT, {
        "resource": "insight", "target_id": insight.id, "title": "Sign-ups",
        "schedule": {"frequency": "daily", "hour": 0, "timezone": "UTC"},
        "destinations": [{"kind": "email", "email": "team@example.com"}]}, created_by="bea")
    slot = datetime(2026, 11, 1, tzinfo=UTC)
    with engine.begin() as conn:  # as the scheduler records a slot it missed (never queued, so never run)
        SubscriptionStore._insert_delivery(conn, subscription.id, slot, DeliveryState.SKIPPED, datetime.now(UTC),
                                           error="Not sent: the scheduler was not running at this time.")
    key = f"{subscription.id}-20261101T0000Z"
    dg.DagsterInstance.from_config(str(services["dagster_home"])).add_dynamic_partitions(
        DELIVERY_PARTITIONS.name, [key])

    backfill_id, status = backfill(services, "subscription_delivery", [key])

    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), deployment.log_tail()
    delivered = subscriptions.delivery(key)
    assert delivered is not None and delivered.state is DeliveryState.SUCCEEDED, deployment.log_tail()
    assert [o.ok for o in subscriptions.outcomes(key).values()] == [True]
    instance = dg.DagsterInstance.from_config(str(services["dagster_home"]))
    [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert run.tags[CLICKHOUSE_TAG] == "embedded" and run.tags["dagster/partition"] == key



def test_a_job_backfill_from_failure_reexecutes_a_refused_graphql_export(services):
    """`export_job`'s partition set backfill with `fromFailure: true` (the job page's "Re-execute from failure"):
    Dagster re-executes a partition only if its latest run tagged with the job's partition set failed. A run
    submitted through GraphQL (`submit_export`) gets that tag from the run queue; without it this backfill
    launched nothing and still completed successfully."""
    from export_pipeline.defs.graphql import DagsterGraphQL

    store, deployment = services["store"], services["deployment"]
    instance = dg.DagsterInstance.from_config(str(services["dagster_home"]))
    add_member(store.engine, PROJECT, "cal", Role.REPORTER)
    client = DagsterGraphQL(f"http://127.0.0.1:{services['port']}")
    export_id, first_run = client.submit_export(project_id=PROJECT, requested_by="cal", format="csv")

    def runs() -> list[dg.DagsterRun]:  # newest first
        return instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": export_id}))
    # The run fails the role check; the daemon's run retries (dagster.yaml) leave it alone, since another
    # attempt would be refused the same way.
    deployment.wait_until(lambda: [r.status for r in runs()] == [dg.DagsterRunStatus.FAILURE], timeout=300,
                          what=f"the run of {export_id} to fail")
    deployment.wait_until(lambda: runs()[0].tags.get("dagster/will_retry") == "false", timeout=120,
                          what="the no-retry decision")
    failed = runs()
    assert [(r.run_id, r.tags["dagster/max_retries"], r.tags["dagster/retry_on_asset_or_op_failure"])
            for r in failed] == [(first_run, "0", "false")]
    assert {r.tags["dagster/partition_set"] for r in failed} == {"export_job_partition_set"}
    assert (store.require(export_id).state, store.require(export_id).error_code) == (
        ExportState.FAILED, "access_denied")
    add_member(store.engine, PROJECT, "cal", Role.MAINTAINER)

    backfill_id, status = launch_backfill(services, {
        "selector": {"partitionSetName": "export_job_partition_set", "repositorySelector": {
            "repositoryName": "__repository__", "repositoryLocationName": "export_pipeline"}},
        "partitionNames": [export_id], "fromFailure": True})

    assert status == "COMPLETED_SUCCESS", deployment.log_tail()
    [rerun] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert (rerun.job_name, rerun.status) == ("export_job", dg.DagsterRunStatus.SUCCESS), deployment.log_tail()
    assert (rerun.parent_run_id, rerun.root_run_id) == (failed[0].run_id, first_run)
    assert rerun.tags[CLICKHOUSE_TAG] == "embedded" and rerun.tags["dagster/partition"] == export_id
    again = store.require(export_id)
    assert (again.state, again.row_count, again.spec.format.value, again.spec.requested_by) == (
        ExportState.SUCCEEDED, 5, "csv", "cal")
    assert [r.status for r in runs()] == [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]
