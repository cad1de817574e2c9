"""Subscriptions on Dagster: a sensor plans the deliveries due and requests one run per delivery.

Each delivery is a dynamic partition of `subscription_delivery` (key = subscription id + scheduled slot) and
its run key, so a retried tick, a restarted daemon or a second sensor evaluation can never start the same
scheduled report twice; the delivery itself skips destinations already reached. Operators re-run a
partition (or backfill skipped ones) from the UI; `resend: true` in the Launchpad sends again to everyone.
"""

from datetime import timedelta

import dagster as dg
from pydantic import Field

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clock import now_utc
from export_pipeline.defs import names
from export_pipeline.defs.resources import (
    AppDatabaseResource,
    AppSettingsResource,
    ChromiumResource,
    ClickHouseResource,
    SendGridResource,
    SlackResource,
    run_settings,
)
from export_pipeline.defs.runs import clickhouse_tags, failure, run_is_active
from export_pipeline.errors import ExportPipelineError
from export_pipeline.subscriptions.deliver import DeliveryResult, build_subscription_deps, run_delivery
from export_pipeline.subscriptions.records import Delivery, DeliveryState
from export_pipeline.subscriptions.store import SubscriptionStore

DELIVERY_PARTITIONS = dg.DynamicPartitionsDefinition(name="subscription_deliveries")
DELIVERY_TAG = "export-pipeline/delivery-id"
SUBSCRIPTION_TAG = "export-pipeline/subscription-id"


class DeliveryConfig(dg.Config):
    resend: bool = Field(False, description="Send again to every destination, even if this slot was delivered")


@dg.asset(
    partitions_def=DELIVERY_PARTITIONS,
    group_name="subscriptions",
    kinds={"chromium", "slack", "sendgrid"},
    description="One scheduled report of a subscription: every tile rendered, sent to each destination.",
)
def subscription_delivery(
    context: dg.AssetExecutionContext,
    config: DeliveryConfig,
    clickhouse: ClickHouseResource,
    app_db: AppDatabaseResource,
    sendgrid: SendGridResource,
    slack: SlackResource,
    chromium: ChromiumResource,
    app_settings: AppSettingsResource,
) -> dg.MaterializeResult:
    settings = run_settings(clickhouse, app_db, sendgrid, slack, app_settings)
    deps = build_subscription_deps(settings, app_db.engine(), ClickHouse.from_settings(settings),
                                   renderer=chromium.renderer)
    try:
        result = run_delivery(context.partition_key, deps, run_id=context.run_id, resend=config.resend,
                              run_is_active=lambda run_id: run_is_active(context.instance, run_id),
                              log=context.log)
    except ExportPipelineError as error:
        raise failure(context, error) from None
    if result.delivery.state is DeliveryState.FAILED:
        raise dg.Failure(description=f"Delivery {result.delivery.id} failed: {result.delivery.error}",
                         metadata=_metadata(result), allow_retries=False)
    return dg.MaterializeResult(metadata=_metadata(result))


def _metadata(result: DeliveryResult) -> dict[str, object]:
    return {
        "delivery_id": result.delivery.id,
        "state": result.delivery.state.value,
        "scheduled_for": result.delivery.scheduled_for.isoformat(),
        "images": dg.MetadataValue.int(result.images),
        "destinations": dg.MetadataValue.md("\n".join(
            f"- {r.destination.label}: {'reached' if r.ok else 'FAILED'}"
            f"{' (earlier run)' if r.already else ''} — {r.detail if r.ok else r.error}"
            for r in result.results) or "none"),
        "already_done": result.already_done,
    }


def build_delivery_job(cluster_name: str):
    return dg.define_asset_job(
        names.DELIVERY_JOB,
        selection=[subscription_delivery],
        partitions_def=DELIVERY_PARTITIONS,
        tags=clickhouse_tags(cluster_name),  # its insights are computed on the (maybe embedded) engine
        description="Deliver one scheduled report (partition = subscription id + slot).",
    )


def skipped_observation(delivery: Delivery) -> dg.AssetObservation:
    return dg.AssetObservation(
        asset_key=subscription_delivery.key, partition=delivery.id,
        description=f"Skipped: {delivery.error}",
        metadata={"state": DeliveryState.SKIPPED.value, "reason": dg.MetadataValue.text(delivery.error or ""),
                  "scheduled_for": dg.MetadataValue.timestamp(delivery.scheduled_for)},
        tags={DELIVERY_TAG: delivery.id, SUBSCRIPTION_TAG: delivery.subscription_id},
    )


@dg.sensor(
    job_name=names.DELIVERY_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 30 s: fails deliveries whose run died, plans the slots that came due (the latest per "
    "subscription; older missed ones are skipped) and requests a run per queued delivery (run_key = delivery).",
)
def subscription_scheduler(
    context: dg.SensorEvaluationContext, app_db: AppDatabaseResource, app_settings: AppSettingsResource
) -> dg.SensorResult:
    store = SubscriptionStore(app_db.engine())
    now = now_utc()
    stale = store.fail_stale(now, stale_after=timedelta(minutes=app_settings.delivery_stale_minutes),
                             run_finished=lambda run_id: not run_is_active(context.instance, run_id))
    for delivery_id in stale:
        context.log.warning("Delivery %s failed: its run died.", delivery_id)
    queued, skipped = store.plan(now)
    for delivery in skipped:
        context.log.info("Delivery %s skipped: missed while the scheduler was down.", delivery.id)
    waiting = []
    for delivery in store.queued():
        # A run that ended without ever starting the delivery (failed to launch, canceled in the queue).
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags={DELIVERY_TAG: delivery.id}), limit=1)
        if runs and runs[0].is_finished:
            store.set_state(delivery.id, DeliveryState.FAILED, run_id=runs[0].run_id,
                            error=f"Its run {runs[0].run_id} ended ({runs[0].status.value}) before the delivery "
                            "started. Re-run the partition to deliver it.")
            context.log.warning("Delivery %s failed: its run %s ended before it started.", delivery.id, runs[0].run_id)
        else:
            waiting.append(delivery)
    keys = [d.id for d in [*skipped, *waiting]
            if not context.instance.has_dynamic_partition(DELIVERY_PARTITIONS.name, d.id)]  # type: ignore[arg-type]
    if not waiting and not keys:
        return dg.SensorResult(skip_reason="No delivery is due.")
    return dg.SensorResult(
        # A skipped slot is a partition with no materialization: the observation says why, in its events.
        asset_events=[skipped_observation(d) for d in skipped],
        # Requested on every tick until the delivery starts: Dagster runs a run_key once.
        run_requests=[dg.RunRequest(partition_key=d.id, run_key=d.id,
                                    tags={DELIVERY_TAG: d.id, SUBSCRIPTION_TAG: d.subscription_id})
                      for d in waiting],
        dynamic_partitions_requests=[DELIVERY_PARTITIONS.build_add_request(keys)] if keys else [],
    )
