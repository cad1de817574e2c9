"""Batch export destinations in the app database: create, read, pause and resume, and the failure count
that pauses a destination after `max_failures` failed intervals in a row."""

from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.batch_exports.intervals import IntervalUnit
from export_pipeline.batch_exports.targets import open_target
from export_pipeline.batch_exports.validation import validate_new
from export_pipeline.clock import as_utc, now_utc
from export_pipeline.db import batch_export_destinations as table
from export_pipeline.db import batch_export_runs
from export_pipeline.engine.compression import Compression
from export_pipeline.engine.formats import Format
from export_pipeline.errors import InvalidRequest, NotFound


def new_destination_id() -> str:
    return f"be_{secrets.token_hex(6)}"


class DestinationStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, project_id: int, created_by: str, fields: dict, *, probe: bool = False,
               paused_reason: str | None = None) -> Destination:
        """With `probe`, the destination must first pass its connection test from this process (whose
        environment may lack the credentials the runs get); a failure raises and stores nothing. With
        `paused_reason` it is stored paused: no sensor tick ever sees it live."""
        errors: dict[str, str] = {}
        values = validate_new(fields, errors)
        if errors:
            listed = "; ".join(f"{field}: {message}" for field, message in errors.items())
            raise InvalidRequest(f"Invalid batch export: {listed}.", details=errors)
        now = now_utc()
        row = {**values, "id": new_destination_id(), "project_id": project_id,
               "created_by": created_by, "paused": paused_reason is not None, "paused_reason": paused_reason, "consecutive_failures": 0,
               "created_at": now, "updated_at": now}
        if probe:
            open_target(_destination(row)).probe()
        with self.engine.begin() as conn:
            conn.execute(table.insert().values(**row))
        return self.require(row["id"])

    def get(self, destination_id: str) -> Destination | None:
        with self.engine.connect() as conn:
            row = conn.execute(table.select().where(table.c.id == destination_id)).mappings().first()
        return _destination(row) if row else None

    def require(self, destination_id: str, *, project_id: int | None = None) -> Destination:
        found = self.get(destination_id)
        if found is None or (project_id is not None and found.project_id != project_id):
            raise NotFound(f"There is no batch export {destination_id!r}"
                           + (f" in project {project_id}." if project_id is not None else "."),
                           hint="List them with `export-pipeline batch-exports list --project-id …`.")
        return found

    def list(self, project_id: int | None = None) -> list[Destination]:
        query = table.select().order_by(table.c.created_at, table.c.id)
        if project_id is not None:
            query = query.where(table.c.project_id == project_id)
        with self.engine.connect() as conn:
            return [_destination(row) for row in conn.execute(query).mappings()]

    def delete(self, destination_id: str) -> None:
        """Forget the destination and its run records; the files already written stay where they are."""
        with self.engine.begin() as conn:
            conn.execute(batch_export_runs.delete().where(batch_export_runs.c.destination_id == destination_id))
            conn.execute(table.delete().where(table.c.id == destination_id))

    def set_paused(self, destination_id: str, paused: bool, reason: str | None = None) -> Destination:
        values: dict = {"paused": paused, "paused_reason": reason if paused else None, "updated_at": now_utc()}
        if not paused:
            values["consecutive_failures"] = 0
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == destination_id).values(**values))
        return self.require(destination_id)

    def advance_cursor(self, destination_id: str, to: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == destination_id).values(live_cursor=to))

    def cursor(self, destination_id: str) -> datetime | None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(table.c.live_cursor).where(table.c.id == destination_id)).scalar()
        return as_utc(found) if found else None

    def record_success(self, destination_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == destination_id, table.c.consecutive_failures != 0)
                         .values(consecutive_failures=0, updated_at=now_utc()))

    def record_failure(self, destination_id: str, reason: str) -> bool:
        """Count a failed interval; True exactly once, for the failure that pauses the destination (the
        conditional update makes concurrent failures agree on who tells the creator)."""
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == destination_id)
                         .values(consecutive_failures=table.c.consecutive_failures + 1, updated_at=now_utc()))
            paused = conn.execute(
                table.update()
                .where(table.c.id == destination_id, table.c.paused.is_(False),
                       table.c.consecutive_failures >= table.c.max_failures)
                .values(paused=True, paused_reason=reason[:4000])
            )
            return paused.rowcount == 1


def _destination(row) -> Destination:
    return Destination(
        id=row["id"], project_id=int(row["project_id"]), name=row["name"], model=row["model"], url=row["url"],
        endpoint_url=row["endpoint_url"], credentials_ref=row["credentials_ref"], key_template=row["key_template"],
        format=Format(row["format"]), compression=Compression(row["compression"]),
        file_size_bytes=int(row["file_size_bytes"]), split_by_event=bool(row["split_by_event"]),
        interval=IntervalUnit(row["interval"]), timezone=row["timezone"], start_at=as_utc(row["start_at"]),
        settle_seconds=int(row["settle_seconds"]), max_failures=int(row["max_failures"]), paused=bool(row["paused"]),
        paused_reason=row["paused_reason"], consecutive_failures=int(row["consecutive_failures"]),
        created_by=row["created_by"], notify_email=row["notify_email"], slack_workspace=row["slack_workspace"],
        slack_channel=row["slack_channel"], created_at=as_utc(row["created_at"]),
    )
