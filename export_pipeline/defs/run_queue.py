"""The run queue of this deployment (dagster.yaml `run_coordinator`): Dagster's queued run coordinator, plus
two checks on every run it is handed, whatever started it.

- A run that materializes `event_export`, `subscription_delivery` or `batch_export` gets the engine's
  concurrency tag (`export-pipeline/clickhouse`). Jobs carry it, but an asset backfill, the asset page's
  Materialize button and their re-executions run Dagster's implicit asset job with only the backfill's tags;
  untagged, they ran side by side on the embedded engine.
- A run of an export partition that has no stored request is checked as its config would be at run time.
  Dagster has checked the config's structure already (export_config.py); what it cannot see (no config at
  all, as for a partition added by hand, or a date that does not exist) fails here, at launch, with the
  field messages, instead of in a run worker after the queue.
- A partitioned run of `export_job` or `subscription_delivery_job` carries its job's partition set tag
  (`dagster/partition_set`). A job backfill with `fromFailure: true` re-executes a partition only when its
  latest run *with that tag* failed; runs submitted through GraphQL with just `dagster/partition` (our
  `submit_export`) lack it, so such a backfill found no run for them and launched nothing while reporting
  success.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import dagster as dg
from dagster._core.remote_representation.external_data import partition_set_snap_name_for_job_name
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.tags import MAX_RETRIES_TAG, PARTITION_NAME_TAG, PARTITION_SET_TAG

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.db import get_engine
from export_pipeline.defs import names
from export_pipeline.defs.export_config import new_request
from export_pipeline.defs.runs import CLICKHOUSE_TAG, clickhouse_tags
from export_pipeline.errors import ExportPipelineError
from export_pipeline.exports.store import ExportStore
from export_pipeline.settings import Settings

EXPORT_ASSET = dg.AssetKey(names.EXPORT_OP)
CLICKHOUSE_ASSETS = frozenset({EXPORT_ASSET, dg.AssetKey(names.DELIVERY_ASSET), dg.AssetKey(names.BATCH_EXPORT_ASSET)})
CLICKHOUSE_JOBS = frozenset({names.EXPORT_JOB, names.DELIVERY_JOB})  # their runs select no assets


class ClickHouseRunCoordinator(QueuedRunCoordinator):
    @cached_property
    def _settings(self) -> Settings:
        return Settings()

    def submit_run(self, context: SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        if run.status == dg.DagsterRunStatus.NOT_STARTED and _touches_clickhouse(run):
            refusal = self._refusal(run)
            if refusal:
                # A retry would be refused the same way; a backfill would also wait on it before finishing.
                self._instance.add_run_tags(run.run_id, {MAX_RETRIES_TAG: "0"})
                self._instance.report_run_failed(run, message=refusal)
                return self._instance.get_run_by_id(run.run_id) or run
            missing = self._missing_tags(run)
            if missing:
                self._instance.add_run_tags(run.run_id, missing)
                run = self._instance.get_run_by_id(run.run_id) or run
                context = SubmitRunContext(run, context.workspace)
        return super().submit_run(context)

    def _missing_tags(self, run: dg.DagsterRun) -> dict[str, str]:
        tags = {}
        if CLICKHOUSE_TAG not in run.tags:
            tags.update(clickhouse_tags(ClickHouse.from_settings(self._settings).cluster_name))
        if run.job_name in CLICKHOUSE_JOBS and PARTITION_NAME_TAG in run.tags and PARTITION_SET_TAG not in run.tags:
            tags[PARTITION_SET_TAG] = partition_set_snap_name_for_job_name(run.job_name)
        return tags

    def _refusal(self, run: dg.DagsterRun) -> str | None:
        """Why an export partition cannot run, or None (not an export, a stored request, or a valid config)."""
        key = run.tags.get(PARTITION_NAME_TAG)
        if key is None or not _exports(run):
            return None
        if ExportStore(get_engine(self._settings.database_url)).get(key) is not None:
            return None
        try:
            new_request(_export_config(run.run_config))
        except ExportPipelineError as error:
            return (f"Refused at launch: partition {key} has no stored export request, and the run config "
                    f"does not describe one. {error} Describe it under ops.event_export.config, or request "
                    "the export with the CLI or the API.")
        return None


def _touches_clickhouse(run: dg.DagsterRun) -> bool:
    if run.asset_selection is not None:
        return bool(run.asset_selection & CLICKHOUSE_ASSETS)
    return run.job_name in CLICKHOUSE_JOBS


def _exports(run: dg.DagsterRun) -> bool:
    if run.asset_selection is not None:
        return EXPORT_ASSET in run.asset_selection
    return run.job_name == names.EXPORT_JOB


def _export_config(run_config: Mapping[str, Any]) -> dict[str, Any] | None:
    config = (run_config.get("ops") or {}).get(EXPORT_ASSET.path[-1]) or {}
    return config.get("config")
