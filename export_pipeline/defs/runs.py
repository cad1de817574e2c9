"""What the export and delivery jobs share about their runs: the queue tag, whether a run still goes, and
how a domain error fails a step."""

import dagster as dg

from export_pipeline.errors import ExportPipelineError

# Runs on the embedded engine carry it so that the run queue runs at most one of them at a time.
CLICKHOUSE_TAG = "export-pipeline/clickhouse"


def clickhouse_tags(cluster_name: str) -> dict[str, str]:
    return {CLICKHOUSE_TAG: cluster_name}


def run_is_active(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and not run.is_finished


def failure(error: ExportPipelineError) -> dg.Failure:
    """A message the requester can act on, shown in the UI without a traceback and not retried."""
    return dg.Failure(description=str(error),
                      metadata={"error_code": error.code, **{k: str(v) for k, v in error.details.items()}},
                      allow_retries=False)
