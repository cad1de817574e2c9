"""Batch exports in Dagster: one asset partitioned by destination × interval, and the sensor that requests
closed intervals. The work is `export_interval` (batch_exports/run.py); this is glue.

Partitions: a MultiPartitionsDefinition of a dynamic `destination` dimension (one key per destination id,
registered by the sensor) and an hourly UTC `interval` dimension, the finest interval a destination may have.
A day or week destination's interval is named by its first hour (in UTC); the other hours of that
destination are not its intervals and their runs end at once with `not_an_interval` (docs/batch-exports.md
says why this beats one dynamic partition per interval).

Runs carry `export-pipeline/clickhouse` (the embedded engine runs one at a time) and Dagster's own
`dagster/partition/destination` tag, which dagster.yaml limits to one run per destination.
"""

import dagster as dg

from export_pipeline.batch_exports.intervals import parse_partition_key
from export_pipeline.batch_exports.plan import due_intervals
from export_pipeline.batch_exports.records import RunStore
from export_pipeline.batch_exports.run import IntervalResult, build_batch_deps, export_interval
from export_pipeline.batch_exports.store import DestinationStore
from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.defs import names
from export_pipeline.defs.resources import (
    AppDatabaseResource,
    AppSettingsResource,
    ClickHouseResource,
    SendGridResource,
    SlackResource,
    run_settings,
)
from export_pipeline.defs.runs import clickhouse_tags, failure, run_is_active
from export_pipeline.errors import ExportPipelineError

DESTINATIONS = dg.DynamicPartitionsDefinition(name=names.DESTINATIONS_PARTITIONS)
BATCH_PARTITIONS = dg.MultiPartitionsDefinition({
    "destination": DESTINATIONS,
    "interval": dg.HourlyPartitionsDefinition(start_date="2020-01-01-00:00", timezone="UTC"),
})
DESTINATION_TAG = "export-pipeline/batch-export"
# What a run did, on the run itself so the runs list tells an exported interval from an empty one, and the
# destination's name beside its `be_…` id.
OUTCOME_TAG = "export-pipeline/interval-outcome"
DESTINATION_NAME_TAG = "export-pipeline/destination-name"
MAX_TAG_VALUE = 63
BATCH_JOB = "batch_export_job"


@dg.asset(
    partitions_def=BATCH_PARTITIONS,
    group_name="batch_exports",
    # No storage kind: each destination is its own folder or bucket.
    kinds={"clickhouse", "polars"},
    description="One interval of one batch export destination: the rows ingested in it, as files and a manifest.",
)
def batch_export(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    app_db: AppDatabaseResource,
    sendgrid: SendGridResource,
    slack: SlackResource,
    app_settings: AppSettingsResource,
) -> dg.MaterializeResult:
    key = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    settings = run_settings(clickhouse, app_db, sendgrid, slack, app_settings)
    deps = build_batch_deps(settings, app_db.engine(), ClickHouse.from_settings(settings))
    start = parse_partition_key(key["interval"])
    try:
        destination = deps.destinations.require(key["destination"])
        named = {DESTINATION_NAME_TAG: destination.name[:MAX_TAG_VALUE]}
        if not _is_interval_start(destination, start):
            context.instance.add_run_tags(context.run_id, {**named, OUTCOME_TAG: "not-an-interval"})
            context.log.info("%s is not the start of an interval of %s (%s intervals in %s); nothing to do.",
                             key["interval"], destination.id, destination.interval.value, destination.timezone)
            return dg.MaterializeResult(metadata={"not_an_interval": True})
        result = export_interval(destination.id, start, deps, run_id=context.run_id,
                                 run_is_active=lambda run_id: run_is_active(context.instance, run_id), log=context.log)
    except ExportPipelineError as error:
        raise failure(context, error) from None
    context.instance.add_run_tags(context.run_id, {**named, OUTCOME_TAG: "skipped-empty" if result.skipped
                                                   else "exported"})
    return dg.MaterializeResult(metadata=_metadata(result))


def _request_ended(instance: dg.DagsterInstance, run_key: str) -> bool:
    """Whether the run the sensor requested as `run_key` exists and has ended."""
    found = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=1)
    return bool(found) and found[0].is_finished


def _is_interval_start(destination, start) -> bool:
    try:
        destination.interval_at(start)
    except ExportPipelineError:
        return False
    return True


def _metadata(result: IntervalResult) -> dict[str, object]:
    record = result.record
    return {
        "destination": result.destination.id,
        "destination_name": result.destination.name,
        # An interval with no rows writes nothing; the run succeeds, marked here and in its tags.
        "skipped": dg.MetadataValue.bool(result.skipped),
        "data_interval_start": iso_utc(result.interval.start),
        "data_interval_end": iso_utc(result.interval.end),
        "state": record.state.value,
        "rows": dg.MetadataValue.int(record.rows),
        "bytes": dg.MetadataValue.int(record.bytes),
        "files": dg.MetadataValue.int(record.files),
        "attempts": dg.MetadataValue.int(record.attempts),
        "manifest": dg.MetadataValue.text(record.manifest_key or ""),
        "duration_seconds": dg.MetadataValue.float(round(result.seconds, 3)),
    }


def build_batch_export_job(cluster_name: str):
    return dg.define_asset_job(
        BATCH_JOB, selection=[batch_export], partitions_def=BATCH_PARTITIONS, tags=clickhouse_tags(cluster_name),
        description="Export one interval of one batch export destination (partition = destination|hour).",
    )


@dg.sensor(
    job_name=BATCH_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers destinations as partitions and requests their closed intervals, oldest first: failed "
                "ones again, then new ones (run_key = destination|interval|attempts), catching up after downtime.",
)
def batch_export_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabaseResource) -> dg.SensorResult:
    destinations, runs = DestinationStore(app_db.engine()), RunStore(app_db.engine())
    listed = destinations.list()
    known = set(context.instance.get_dynamic_partitions(DESTINATIONS.name))  # type: ignore[arg-type]
    ids = {d.id for d in listed}
    requests, now = [], now_utc()
    for destination in listed:
        for due in due_intervals(destination, destinations, runs, now,
                                 run_ended=lambda run_id: not run_is_active(context.instance, run_id),
                                 request_ended=lambda key: _request_ended(context.instance, key)):
            requests.append(dg.RunRequest(
                partition_key=dg.MultiPartitionKey({"destination": destination.id,
                                                    "interval": due.interval.partition_key}),
                run_key=due.run_key(destination.id),
                tags={DESTINATION_TAG: destination.id, "export-pipeline/project-id": str(destination.project_id)},
            ))
    partition_changes: list = []
    if ids - known:
        partition_changes.append(DESTINATIONS.build_add_request(sorted(ids - known)))
    if known - ids:  # deleted destinations: keep the partitions view to the live ones
        partition_changes.append(DESTINATIONS.build_delete_request(sorted(known - ids)))
    if not requests and not partition_changes:
        return dg.SensorResult(skip_reason="No batch export interval is due.")
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partition_changes)
