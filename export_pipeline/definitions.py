"""The Dagster code location: `dagster dev -m export_pipeline.definitions` (see workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.defs.batch_exports import batch_export, batch_export_sensor, build_batch_export_job
from export_pipeline.defs.exports import (
    build_export_job,
    event_export,
    export_reconcile_sensor,
    export_request_sensor,
    sweep_expired_exports_job,
    sweep_schedule,
    with_storage_kind,
)
from export_pipeline.defs.resources import build_resources
from export_pipeline.defs.subscriptions import (
    build_delivery_job,
    subscription_delivery,
    subscription_scheduler,
)
from export_pipeline.defs.usage import service_ping, service_ping_schedule
from export_pipeline.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings()
    cluster = ClickHouse.from_settings(settings).cluster_name
    return dg.Definitions(
        assets=[with_storage_kind(event_export, settings.storage_url), service_ping, subscription_delivery, batch_export],
        jobs=[build_export_job(cluster), sweep_expired_exports_job, build_delivery_job(cluster),
              build_batch_export_job(cluster)],
        sensors=[export_request_sensor, export_reconcile_sensor, subscription_scheduler, batch_export_sensor],
        schedules=[sweep_schedule, service_ping_schedule],
        resources=build_resources(settings),
    )


defs = build_definitions()
