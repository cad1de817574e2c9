"""Export requests: validated parameters and their state, as stored (exports/store.py keeps them)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from export_pipeline.clock import as_utc
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.filters import parse_property_filters
from export_pipeline.engine.formats import Format
from export_pipeline.engine.resources import Resource
from export_pipeline.engine.spec import ExportSpec


class ExportState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"


def new_export_id(now: datetime) -> str:
    """Time-ordered and unguessable; also the Dagster partition key and run_key."""
    return f"exp_{now:%Y%m%d%H%M%S}_{secrets.token_hex(5)}"


@dataclass(frozen=True)
class ExportRequest:
    id: str
    spec: ExportSpec
    as_of: datetime
    source: str
    state: ExportState
    created_at: datetime
    run_id: str | None = None
    row_count: int = 0
    row_total: int | None = None
    byte_count: int = 0
    file_count: int = 0
    manifest_key: str | None = None
    error_code: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    # Not part of the spec: who is told, not what is exported (two requests differing only here are the same).
    notify_email: str | None = None
    notified_to: str | None = None
    notified_at: datetime | None = None
    notify_error: str | None = None
    heartbeat_at: datetime | None = None
    cleanup_error: str | None = None

    @property
    def storage_prefix(self) -> str:
        return f"{self.spec.project_id}/{self.id}"

    @property
    def is_terminal(self) -> bool:
        return self.state in (ExportState.SUCCEEDED, ExportState.FAILED, ExportState.CANCELED, ExportState.EXPIRED)


def request_from_row(row: sa.Row) -> ExportRequest:
    m = row._mapping
    spec = ExportSpec(
        project_id=m["project_id"],
        requested_by=m["requested_by"],
        format=Format(m["format"]),
        compression=Compression(m["compression"]),
        date_from=as_utc(m["date_from"]),
        date_to=as_utc(m["date_to"]),
        events=tuple(m["events"]),
        resource=Resource(m["resource"]),
        target_id=m["target_id"],
        width=m["width"],
        **_model_filters(m["model_filters"]),
    )
    return ExportRequest(
        id=m["id"],
        spec=spec,
        as_of=as_utc(m["as_of"]),  # type: ignore[arg-type]
        source=m["source"],
        state=ExportState(m["state"]),
        created_at=as_utc(m["created_at"]),  # type: ignore[arg-type]
        run_id=m["run_id"],
        row_count=m["row_count"],
        row_total=m["row_total"],
        byte_count=m["byte_count"],
        file_count=m["file_count"],
        manifest_key=m["manifest_key"],
        error_code=m["error_code"],
        error=m["error"],
        started_at=as_utc(m["started_at"]),
        finished_at=as_utc(m["finished_at"]),
        expires_at=as_utc(m["expires_at"]),
        notify_email=m["notify_email"],
        notified_to=m["notified_to"],
        notified_at=as_utc(m["notified_at"]),
        notify_error=m["notify_error"],
        heartbeat_at=as_utc(m["heartbeat_at"]),
        cleanup_error=m["cleanup_error"],
    )


def _model_filters(stored: dict | None) -> dict:
    if not stored:
        return {}
    errors: dict[str, str] = {}
    return {
        "properties": parse_property_filters(stored["properties"], "properties", errors),
        "cohort_id": stored["cohort_id"], "group_type": stored["group_type"], "resolved": stored["resolved"],
        **{name: stored.get(name) for name in ("distinct_id", "person_id", "min_duration")},
    }
