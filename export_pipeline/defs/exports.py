"""Exports in Dagster: one dynamic partition per export request, a sensor that turns queued requests into
runs, a sensor that reconciles running requests with their runs, and a schedule that sweeps expired exports
(files, state and partitions)."""

import logging
from datetime import datetime, timedelta

import dagster as dg

from export_pipeline.clock import now_utc
from export_pipeline.defs import names
from export_pipeline.defs.export_config import export_config_schema, new_request
from export_pipeline.defs.resources import (
    AppDatabaseResource,
    AppSettingsResource,
    ChromiumResource,
    ClickHouseResource,
    ExportStorageResource,
    SendGridResource,
    run_settings,
)
from export_pipeline.defs.runs import clickhouse_tags, end_run, failure, run_is_active, run_view
from export_pipeline.deps import AppDeps
from export_pipeline.errors import ExportPipelineError
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.finished_email import size_text
from export_pipeline.exports.lifecycle import sweep_expired
from export_pipeline.exports.reconcile import Reconciled, Reconciler
from export_pipeline.exports.requests import ExportState
from export_pipeline.exports.run import ExportResult, describe, run_export
from export_pipeline.exports.store import ExportStore
from export_pipeline.storage import ExportStorage

EXPORT_PARTITIONS = dg.DynamicPartitionsDefinition(name=names.EXPORT_PARTITIONS)
EXPORT_ID_TAG = "export-pipeline/export-id"


@dg.asset(
    partitions_def=EXPORT_PARTITIONS,
    group_name="exports",
    kinds={"clickhouse", "polars"},  # plus the storage's, by with_storage_kind
    description="One export request as files with a manifest: raw events, people or recordings, or an insight's "
    "or dashboard's tables or image.",
    config_schema=export_config_schema(),
)
def event_export(
    context: dg.AssetExecutionContext,
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
            spec, notify = new_request(context.op_config)
            deps.store.create(spec, source="dagster", export_id=export_id, notify_email=notify)
            context.log.info("Created export request %s from the run config.", export_id)
        result = run_export(
            export_id,
            deps,
            run_id=context.run_id,
            run_is_active=lambda run_id: run_is_active(context.instance, run_id),
            log=context.log,
        )
    except ExportPipelineError as error:
        raise failure(context, error) from None
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
        names.EXPORT_JOB,
        selection=[event_export],
        partitions_def=EXPORT_PARTITIONS,
        tags=clickhouse_tags(cluster_name),
        description="Export one request (partition = export id). A new partition's request goes under "
                    "ops.event_export.config, whose description has a starting config for each resource.",
    )


@dg.sensor(
    job_name=names.EXPORT_JOB,
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


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Fails running exports whose run ended or whose heartbeat stopped (removing their unfinished "
    "files), and ends export runs left STARTED by a process that is gone, freeing their run slot.",
)
def export_reconcile_sensor(
    context: dg.SensorEvaluationContext,
    app_db: AppDatabaseResource,
    export_storage: ExportStorageResource,
    app_settings: AppSettingsResource,
) -> dg.SkipReason:
    failed, ended = reconcile_exports(
        context.instance, app_db.export_store(), export_storage.get(),
        stale_after=timedelta(seconds=app_settings.export_stale_after_seconds),
        expires_after=timedelta(hours=app_settings.ttl_hours), log=context.log,
    )
    return dg.SkipReason(f"Failed {len(failed)} interrupted export(s); ended {len(ended)} orphaned run(s).")


def reconcile_exports(instance: dg.DagsterInstance, store: ExportStore, storage: ExportStorage, *,
                      stale_after: timedelta, expires_after: timedelta,
                      log: logging.Logger | logging.LoggerAdapter) -> tuple[list[Reconciled], list[str]]:
    """One pass of the reconciler against the instance's runs (the sensor's, and the CLI's before it runs an
    export itself): the requests it failed and the runs it ended."""
    now = now_utc()
    reconciler = Reconciler(store, storage, stale_after=stale_after, expires_after=expires_after, log=log)
    failed = reconciler.run(lambda run_id: run_view(instance, run_id), now=now)
    ended = [r.request.run_id for r in failed
             if not r.run_ended and r.request.run_id and end_run(instance, r.request.run_id, r.cause)]
    ended += end_orphan_export_runs(instance, store, stale_after=stale_after, now=now)
    return failed, ended


def end_orphan_export_runs(instance: dg.DagsterInstance, store: ExportStore, *, stale_after: timedelta,
                           now: datetime) -> list[str]:
    """End export runs still STARTED although their request is not running under them (it finished, failed or
    went to another run) for longer than `stale_after`: their process died before Dagster heard the end."""
    ended = []
    started = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    for record in instance.get_run_records(dg.RunsFilter(job_name=names.EXPORT_JOB, statuses=started), limit=200):
        run = record.dagster_run
        request = store.get(run.tags.get("dagster/partition", ""))
        if request is not None and request.state is ExportState.RUNNING and request.run_id == run.run_id:
            continue  # the reconciler vouched for it: its heartbeat is fresh
        since = max(record.start_time or record.create_timestamp.timestamp(),
                    request.finished_at.timestamp() if request and request.finished_at else 0.0)
        if now.timestamp() - since < stale_after.total_seconds():
            continue  # not claimed yet, or finishing up after its request ended
        state = request.state.value if request else "missing"
        if end_run(instance, run.run_id, f"The run's process is gone: its export is {state} and the run sent "
                   f"no word for {stale_after.total_seconds():.0f} s."):
            ended.append(run.run_id)
    return ended


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
