"""How a destination and its interval runs are shown (API answers, CLI JSON). A destination holds no
credential, only the name of the variable that holds it, so it is shown whole. Lists are `{"data": [...]}`,
like every list the API answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, TypeAdapter

from export_pipeline.batch_exports.backfill import Backfill
from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.batch_exports.records import IntervalRun


def destination_json(destination: Destination) -> dict:
    """A destination as JSON, the same as the API's answer (the `Destination` dataclass is its schema)."""
    return _DESTINATION.dump_python(destination, mode="json")


_DESTINATION = TypeAdapter(Destination)


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


class BatchExportList(BaseModel):
    data: list[Destination]

    @classmethod
    def of(cls, destinations: list[Destination]) -> BatchExportList:
        return cls(data=destinations)


class IntervalRunList(BaseModel):
    data: list[IntervalRunView] = Field(description="In interval order, oldest first")

    @classmethod
    def of(cls, runs: list[IntervalRun]) -> IntervalRunList:
        return cls(data=[IntervalRunView.of(run) for run in runs])


class BackfillView(BaseModel):
    destination_id: str
    backfill_id: str | None  # None when every interval of the range was empty
    partitions: list[str]  # destination|hour keys handed to Dagster
    skipped_empty: int

    @classmethod
    def of(cls, backfill: Backfill) -> BackfillView:
        return cls(destination_id=backfill.destination_id, backfill_id=backfill.backfill_id,
                   partitions=backfill.intervals, skipped_empty=backfill.skipped)
