"""How a destination and its interval runs are shown (API answers, CLI JSON): never a credential, only the
name of the variable that holds it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from export_pipeline.batch_exports.backfill import Backfill
from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.batch_exports.records import IntervalRun


class BatchExportView(BaseModel):
    id: str
    project_id: int
    name: str
    model: str
    url: str
    endpoint_url: str | None
    credentials_ref: str | None
    key_template: str
    format: str
    compression: str
    file_size_bytes: int
    split_by_event: bool
    interval: str
    timezone: str
    start_at: datetime
    settle_seconds: int
    max_failures: int
    paused: bool
    paused_reason: str | None
    consecutive_failures: int
    created_by: str
    notify_email: str | None
    slack_workspace: str | None
    slack_channel: str | None
    created_at: datetime

    @classmethod
    def of(cls, destination: Destination) -> BatchExportView:
        return cls(**{name: getattr(destination, name) for name in cls.model_fields})


class IntervalRunView(BaseModel):
    data_interval_start: datetime
    data_interval_end: datetime
    state: str
    rows: int
    bytes: int
    files: int
    attempts: int
    manifest_key: str | None
    error: str | None
    run_id: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, run: IntervalRun) -> IntervalRunView:
        return cls(data_interval_start=run.interval_start, data_interval_end=run.interval_end, state=run.state.value,
                   rows=run.rows, bytes=run.bytes, files=run.files, attempts=run.attempts,
                   manifest_key=run.manifest_key, error=run.error, run_id=run.run_id, started_at=run.started_at,
                   finished_at=run.finished_at)


class BackfillView(BaseModel):
    destination_id: str
    backfill_id: str | None  # None when every interval of the range was empty
    partitions: list[str]  # destination|hour keys handed to Dagster
    skipped_empty: int

    @classmethod
    def of(cls, backfill: Backfill) -> BackfillView:
        return cls(destination_id=backfill.destination_id, backfill_id=backfill.backfill_id,
                   partitions=backfill.intervals, skipped_empty=backfill.skipped)
