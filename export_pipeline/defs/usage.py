"""Service Ping in Dagster: a weekly asset that computes the usage payload, stores it and sends it."""

import dagster as dg

from export_pipeline.clock import now_utc
from export_pipeline.defs.resources import AppDatabaseResource, ServicePingCollectorResource
from export_pipeline.usage.service_ping import build_payload, save_payload, send_payload


@dg.asset(group_name="usage", kinds={"sqlite"}, description="Weekly usage payload (GitLab Service Ping format).")
def service_ping(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource, service_ping_collector: ServicePingCollectorResource
) -> dg.MaterializeResult:
    engine = app_db.engine()
    now = now_utc()
    payload = build_payload(engine, now)
    ping_id = save_payload(engine, payload, now)
    url = service_ping_collector.url
    if url:
        send_payload(engine, ping_id, payload, url)
        context.log.info("Service Ping %s sent to %s", ping_id, url)
    return dg.MaterializeResult(
        metadata={"payload": dg.MetadataValue.json(payload), "sent_to": url or "(not configured)"}
    )


service_ping_schedule = dg.ScheduleDefinition(
    name="weekly_service_ping",
    target=service_ping,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
