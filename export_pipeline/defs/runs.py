"""What the export and delivery jobs share about their runs: the queue tag, whether a run still goes (and
why it ended), ending a run whose process is gone, and how a domain error fails a step."""

import dagster as dg

from export_pipeline.errors import AccessDenied, ExportConflict, ExportPipelineError, InvalidRequest, NotFound
from export_pipeline.exports.reconcile import RunView

# Runs on the embedded engine carry it so that the run queue runs at most one of them at a time.
CLICKHOUSE_TAG = "export-pipeline/clickhouse"


def clickhouse_tags(cluster_name: str) -> dict[str, str]:
    return {CLICKHOUSE_TAG: cluster_name}


def run_is_active(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and not run.is_finished


# Dagster's run-retry tags. max_retries 0 is what holds: the daemon honours retry_on_asset_or_op_failure only
# once it sees the run's failure reason, and under load it may read the failed run before that tag is stored.
NO_RUN_RETRY = {"dagster/retry_on_asset_or_op_failure": "false", "dagster/max_retries": "0"}
# Failures another attempt would only repeat: who asked, what they asked, or another run owning the work.
FINAL_ERRORS = (AccessDenied, InvalidRequest, NotFound, ExportConflict)


def failure(context: dg.OpExecutionContext, error: ExportPipelineError) -> dg.Failure:
    """A message the requester can act on, shown in the UI without a traceback and not retried as a step; a
    final one (a refusal, an invalid request) is not retried as a run either (dagster.yaml's run_retries)."""
    if isinstance(error, FINAL_ERRORS):
        context.instance.add_run_tags(context.run_id, NO_RUN_RETRY)
    return dg.Failure(description=str(error),
                      metadata={"error_code": error.code, **{k: str(v) for k, v in error.details.items()}},
                      allow_retries=False)


def run_view(instance: dg.DagsterInstance, run_id: str) -> RunView:
    """The run as the reconciler sees it: missing, still going, or ended (with the step's error if it failed)."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return RunView(False, "missing from the Dagster instance")
    if not run.is_finished:
        return RunView(True, run.status.value)
    return RunView(False, run.status.value, _failure_message(instance, run_id))


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str | None:
    for kind in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE):
        records = instance.get_records_for_run(run_id, of_type=kind, limit=1, ascending=False).records
        if not records:
            continue
        entry = records[0].event_log_entry
        event = entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        message = (error.message if error else None) or entry.user_message or (event.message if event else None)
        if message:
            return " ".join(message.split())[:500]
    return None


def end_run(instance: dg.DagsterInstance, run_id: str, reason: str) -> bool:
    """Mark a run left STARTED by a process that is gone as failed, so its run slot frees (and run retries
    hand the export to a new run). Not terminated through the launcher: with the process gone that would
    leave it CANCELING until run monitoring's timeout, still holding the slot."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:
        return False
    instance.report_run_failed(run, reason)
    return True
