"""Exports in Dagster: one dynamic partition per export request, a sensor that turns queued requests into
runs, and a schedule that sweeps expired exports (files, state and partitions)."""


import dagster as dg
from pydantic import Field

from export_pipeline.clock import now_utc
from export_pipeline.defs.resources import (
    AppDatabaseResource,
    AppSettingsResource,
    ChromiumResource,
    ClickHouseResource,
    ExportStorageResource,
    SendGridResource,
    run_settings,
)
from export_pipeline.defs.runs import clickhouse_tags, failure, run_is_active
from export_pipeline.deps import AppDeps
from export_pipeline.errors import ExportPipelineError
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.finished_email import size_text
from export_pipeline.exports.lifecycle import sweep_expired
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.run import ExportResult, describe, run_export
from export_pipeline.exports.spec import Compression, ExportFormat, parse_spec

EXPORT_PARTITIONS = dg.DynamicPartitionsDefinition(name="export_requests")
EXPORT_ID_TAG = "export-pipeline/export-id"


class EventExportConfig(dg.Config):
    """Parameters for a new export. Used when the run's partition has no stored request yet (Launchpad,
    GraphQL); a request made through the CLI or API is already stored and this config is ignored."""

    project_id: int | None = None
    requested_by: str | None = None
    resource: str = Field("events", description="events, insight or dashboard")
    target_id: str | None = Field(None, description="The insight or dashboard id (for those resources)")
    width: int | None = Field(None, description="PNG width in pixels, 400-3000 (default 800 insight, 1920 dashboard)")
    format: ExportFormat = ExportFormat.NDJSON
    compression: Compression | None = None
    date_from: str | None = Field(None, description="ISO 8601 date or datetime, inclusive (UTC if naive)")
    date_to: str | None = Field(None, description="ISO 8601; exclusive, a bare date means through that day")
    events: list[str] = []
    notify_email: str | None = Field(None, description="Email the result here (default: the requester's address)")


@dg.asset(
    partitions_def=EXPORT_PARTITIONS,
    group_name="exports",
    kinds={"clickhouse", "polars"},  # plus the storage's, by with_storage_kind
    description="One export request as files with a manifest: raw events, or an insight's or dashboard's tables.",
)
def event_export(
    context: dg.AssetExecutionContext,
    config: EventExportConfig,
    clickhouse: ClickHouseResource,
    export_storage: ExportStorageResource,
    app_db: AppDatabaseResource,
    sendgrid: SendGridResource,
    chromium: ChromiumResource,
    app_settings: AppSettingsResource,
) -> dg.MaterializeResult:
    export_id = context.partition_key
    # The finished-export email and a PNG export's Chromium are configured through the settings.
    settings = run_settings(clickhouse, export_storage, app_db, sendgrid, chromium, app_settings)
    deps = ExportDeps.of(AppDeps.from_settings(settings))
    try:
        if deps.store.get(export_id) is None:
            spec = parse_spec(**config.model_dump(exclude={"notify_email"}))
            deps.store.create(spec, source="dagster", export_id=export_id, notify_email=config.notify_email)
            context.log.info("Created export request %s from the run config.", export_id)
        result = run_export(
            export_id,
            deps,
            run_id=context.run_id,
            run_is_active=lambda run_id: run_is_active(context.instance, run_id),
            log=context.log,
        )
    except ExportPipelineError as error:
        raise failure(error) from None
    return dg.MaterializeResult(metadata=_metadata(result, describe(result.request, deps)))


def with_storage_kind(asset: dg.AssetsDefinition, storage_url: str) -> dg.AssetsDefinition:
    """The asset with the kind badge of the storage it writes to: `s3`, or `local` for a folder."""
    kind = "s3" if storage_url.startswith("s3://") else "local"
    return dg.map_asset_specs(lambda spec: spec.merge_attributes(kinds={kind}), [asset])[0]  # type: ignore[return-value]


def _metadata(result: ExportResult, described: dict) -> dict[str, object]:
    request = result.request
    seconds = result.seconds
    manifest = described["manifest"] or ""
    return {
        "export_id": dg.MetadataValue.text(request.id),
        "project_id": dg.MetadataValue.int(request.spec.project_id),
        "requested_by": dg.MetadataValue.text(request.spec.requested_by),
        "format": dg.MetadataValue.text(request.spec.format.value),
        "compression": dg.MetadataValue.text(request.spec.compression.value),
        "rows": dg.MetadataValue.int(result.rows),
        "bytes": dg.MetadataValue.int(result.bytes_written),
        "size": dg.MetadataValue.text(size_text(result.bytes_written)),
        "files": dg.MetadataValue.int(len(result.files)),
        "duration_seconds": dg.MetadataValue.float(round(seconds, 3)),
        "rows_per_second": dg.MetadataValue.float(round(result.rows / seconds, 1) if seconds else 0.0),
        # A presigned link opens from the UI; a local file is a path on the machine that ran the export.
        "manifest": (dg.MetadataValue.path(manifest.removeprefix("file://")) if manifest.startswith("file://")
                     else dg.MetadataValue.url(manifest)),
        "expires_at": (dg.MetadataValue.timestamp(request.expires_at) if request.expires_at
                       else dg.MetadataValue.null()),
        "already_done": dg.MetadataValue.bool(result.already_done),
    }


def build_export_job(cluster_name: str):
    return dg.define_asset_job(
        "export_job",
        selection=[event_export],
        partitions_def=EXPORT_PARTITIONS,
        tags=clickhouse_tags(cluster_name),
        description="Export one request's events (partition = export id).",
    )


@dg.sensor(
    job_name="export_job",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers a partition and requests a run (run_key = export id) for each queued export.",
)
def export_request_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabaseResource) -> dg.SensorResult:
    queued = app_db.export_store().in_state(ExportState.QUEUED, limit=200)
    if not queued:
        return dg.SensorResult(skip_reason="No queued export requests.")
    new_keys = [
        request.id
        for request in queued
        if not context.instance.has_dynamic_partition(EXPORT_PARTITIONS.name, request.id)  # type: ignore[arg-type]
    ]
    # Re-requesting a key that already ran is harmless: Dagster skips run requests whose run_key it has seen.
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=request.id,
                run_key=request.id,
                tags={EXPORT_ID_TAG: request.id, "export-pipeline/project-id": str(request.spec.project_id),
                      "export-pipeline/requested-by": request.spec.requested_by,
                      "export-pipeline/format": request.spec.format.value},
            )
            for request in queued
        ],
        dynamic_partitions_requests=[EXPORT_PARTITIONS.build_add_request(new_keys)] if new_keys else [],
    )


@dg.op(description="Delete expired exports' files, mark them expired, and drop their partitions.")
def sweep_expired_exports(
    context: dg.OpExecutionContext, export_storage: ExportStorageResource, app_db: AppDatabaseResource
) -> dg.Output[int]:
    swept = sweep_expired(app_db.export_store(), export_storage.get(), now=now_utc())
    for request, deleted in swept:
        drop_partition(context.instance, request.id)
        context.log.info("Expired export %s: deleted %s file(s).", request.id, deleted)
    return dg.Output(len(swept), metadata={"expired_exports": len(swept)})


def drop_partition(instance: dg.DagsterInstance, export_id: str) -> None:
    """Keep the number of dynamic partitions bounded (Dagster advises <= 100,000 per asset)."""
    if instance.has_dynamic_partition(EXPORT_PARTITIONS.name, export_id):  # type: ignore[arg-type]
        instance.delete_dynamic_partition(EXPORT_PARTITIONS.name, export_id)  # type: ignore[arg-type]


@dg.job(description="Sweep expired exports (runs hourly).")
def sweep_expired_exports_job() -> None:
    sweep_expired_exports()


sweep_schedule = dg.ScheduleDefinition(
    job=sweep_expired_exports_job,
    cron_schedule="17 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    execution_timezone="UTC",
)
