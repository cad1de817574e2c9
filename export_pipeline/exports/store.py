"""Export request rows: queued by a caller, claimed by a run, updated as it goes, read back for listings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.accounts.emails import optional_email
from export_pipeline.clock import now_utc
from export_pipeline.db import export_requests
from export_pipeline.engine.spec import ExportSpec
from export_pipeline.errors import ExportConflict, NotFound
from export_pipeline.exports.requests import ExportRequest, ExportState, new_export_id, request_from_row
from export_pipeline.models.resolve import resolve_spec

# A new attempt starts from nothing: what an earlier attempt recorded (rows, files, error, email) is cleared.
_NOTHING_RECORDED = dict(
    finished_at=None, row_count=0, row_total=None, byte_count=0, file_count=0, manifest_key=None, error_code=None, error=None,
    notified_to=None, notified_at=None, notify_error=None, cleanup_error=None,
)


class ExportStore:
    """Export request rows. Each state change is one guarded UPDATE, so concurrent runs cannot both win."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create(
        self, spec: ExportSpec, *, source: str, export_id: str | None = None, notify_email: str | None = None
    ) -> ExportRequest:
        """Store a queued request; `notify_email` (validated) overrides where the finished-export email goes."""
        notify_email = optional_email(notify_email)
        spec = resolve_spec(spec, self.engine)
        now = now_utc()
        request = ExportRequest(
            id=export_id or new_export_id(now),
            spec=spec,
            as_of=now,
            source=source,
            state=ExportState.QUEUED,
            created_at=now,
            notify_email=notify_email,
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(export_requests).values(
                    id=request.id,
                    project_id=spec.project_id,
                    requested_by=spec.requested_by,
                    resource=spec.resource.value,
                    target_id=spec.target_id,
                    width=spec.width,
                    format=spec.format.value,
                    compression=spec.compression.value,
                    date_from=spec.date_from,
                    date_to=spec.date_to,
                    events=list(spec.events),
                    model_filters=spec.model_filters(),
                    as_of=request.as_of,
                    source=source,
                    state=request.state.value,
                    row_count=0,
                    byte_count=0,
                    file_count=0,
                    created_at=now,
                    notify_email=notify_email,
                )
            )
        return request

    def get(self, export_id: str) -> ExportRequest | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(export_requests).where(export_requests.c.id == export_id)).first()
        return request_from_row(row) if row else None

    def require(self, export_id: str) -> ExportRequest:
        request = self.get(export_id)
        if request is None:
            raise NotFound(f"No export request {export_id!r}.")
        return request

    def in_state(self, state: ExportState, *, limit: int = 1000) -> list[ExportRequest]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(export_requests)
                .where(export_requests.c.state == state.value)
                .order_by(export_requests.c.created_at)
                .limit(limit)
            ).all()
        return [request_from_row(row) for row in rows]

    def expired_before(self, moment: datetime, *, limit: int = 1000) -> list[ExportRequest]:
        """Finished exports whose files are past their time to live."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(export_requests)
                .where(
                    export_requests.c.state.in_([ExportState.SUCCEEDED.value, ExportState.FAILED.value]),
                    export_requests.c.expires_at <= moment,
                )
                .order_by(export_requests.c.expires_at)
                .limit(limit)
            ).all()
        return [request_from_row(row) for row in rows]

    def project_page(self, project_id: int, *, after: tuple[datetime, str] | None, limit: int) -> list[ExportRequest]:
        """The project's requests newest first: `limit` of them, after the one created at `after` (its
        created_at and id), or from the newest."""
        query = sa.select(export_requests).where(export_requests.c.project_id == project_id)
        if after:
            created, after_id = after
            query = query.where(
                sa.or_(export_requests.c.created_at < created,
                       sa.and_(export_requests.c.created_at == created, export_requests.c.id < after_id))
            )
        query = query.order_by(export_requests.c.created_at.desc(), export_requests.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [request_from_row(row) for row in conn.execute(query).all()]

    def in_flight(self, project_id: int) -> list[ExportRequest]:
        """The project's queued and running requests, as stored (a dead run's request among them)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(export_requests).where(
                    export_requests.c.project_id == project_id,
                    export_requests.c.state.in_([ExportState.QUEUED.value, ExportState.RUNNING.value]),
                )
            ).all()
        return [request_from_row(row) for row in rows]

    def claim(self, export_id: str, run_id: str, run_is_active: Callable[[str], bool]) -> ExportRequest:
        """Take the request for this run: from queued or failed (a retry), or from a run that died.

        A succeeded request is returned unchanged: the caller reports it instead of exporting again.
        """
        request = self.require(export_id)
        if request.state is ExportState.SUCCEEDED:
            return request
        if request.state in (ExportState.EXPIRED, ExportState.CANCELED):
            raise ExportConflict(
                f"Export {export_id} is {request.state.value}; it will not be written.", hint="Request a new export."
            )
        if (
            request.state is ExportState.RUNNING
            and request.run_id not in (None, run_id)
            and run_is_active(request.run_id)  # type: ignore[arg-type]
        ):
            raise ExportConflict(
                f"Export {export_id} is already being written by run {request.run_id}.",
                hint="Wait for that run to finish, or terminate it before retrying.",
            )
        started = now_utc()
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.update(export_requests)
                .where(
                    export_requests.c.id == export_id,
                    export_requests.c.state == request.state.value,
                    _same(export_requests.c.run_id, request.run_id),
                )
                .values(state=ExportState.RUNNING.value, run_id=run_id, started_at=started, heartbeat_at=started,
                        **_NOTHING_RECORDED)
            ).rowcount
        if not taken:
            raise ExportConflict(
                f"Export {export_id} was taken by another run at the same moment.",
                hint="Nothing to do: that run is writing it.",
            )
        return replace(
            request, state=ExportState.RUNNING, run_id=run_id, started_at=started, heartbeat_at=started,
            notified_to=None, notified_at=None, notify_error=None,
        )

    def record_total(self, export_id: str, run_id: str, total: int) -> None:
        self._update(export_id, run_id, row_total=total, heartbeat_at=now_utc())

    def record_progress(self, export_id: str, run_id: str, *, rows: int, bytes_written: int) -> None:
        self._update(export_id, run_id, row_count=rows, byte_count=bytes_written, heartbeat_at=now_utc())

    def heartbeat(self, export_id: str, run_id: str) -> bool:
        """The running process is alive; False once the run no longer owns the request."""
        with self.engine.begin() as conn:
            return bool(conn.execute(self._owned(export_id, run_id).values(heartbeat_at=now_utc())).rowcount)

    def abandon(self, export_id: str, run_id: str | None, *, code: str, message: str, expires_at: datetime) -> bool:
        """Fail a running request whose run is gone; False if it ended or changed hands meanwhile (a run that
        finishes, or a retry that takes it over, wins over the reconciler)."""
        with self.engine.begin() as conn:
            return bool(conn.execute(
                self._owned(export_id, run_id).values(
                    state=ExportState.FAILED.value, error_code=code, error=message, finished_at=now_utc(),
                    expires_at=expires_at, file_count=0, manifest_key=None,
                )
            ).rowcount)

    def succeed(
        self,
        export_id: str,
        run_id: str,
        *,
        rows: int,
        bytes_written: int,
        files: int,
        manifest_key: str,
        finished_at: datetime,
        expires_at: datetime,
    ) -> None:
        self._update(export_id, run_id, state=ExportState.SUCCEEDED.value, row_count=rows, byte_count=bytes_written,
                     file_count=files, manifest_key=manifest_key, finished_at=finished_at, expires_at=expires_at)

    def fail(self, export_id: str, run_id: str | None, *, code: str, message: str, expires_at: datetime) -> None:
        """Mark failed. `expires_at` lets the sweeper prune the failed request's partition later."""
        values = dict(
            state=ExportState.FAILED.value,
            error_code=code,
            error=message,
            finished_at=now_utc(),
            expires_at=expires_at,
            file_count=0,
            manifest_key=None,
        )
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(export_requests)
                .where(export_requests.c.id == export_id, _same(export_requests.c.run_id, run_id))
                .values(**values)
            )

    def record_cleanup(self, export_id: str, error: str | None) -> None:
        """The outcome of removing a failed attempt's files: an error stays beside the failure (never replacing
        it) until a later cleanup succeeds."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(export_requests).where(export_requests.c.id == export_id)
                         .values(cleanup_error=error))

    def cleanup_pending(self, *, limit: int = 100) -> list[ExportRequest]:
        """Failed or canceled requests whose files could not be removed yet."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(export_requests)
                .where(export_requests.c.cleanup_error.is_not(None),
                       export_requests.c.state.in_([ExportState.FAILED.value, ExportState.CANCELED.value]))
                .order_by(export_requests.c.created_at).limit(limit)
            ).all()
        return [request_from_row(row) for row in rows]

    def cancel(self, export_id: str) -> None:
        """Cancel a queued or running export; a running one notices at its next progress update."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(export_requests)
                .where(
                    export_requests.c.id == export_id,
                    export_requests.c.state.in_([ExportState.QUEUED.value, ExportState.RUNNING.value]),
                )
                .values(state=ExportState.CANCELED.value, finished_at=now_utc(), error_code="canceled",
                        error="Canceled by request.", expires_at=now_utc())
            )

    def record_notification(
        self, export_id: str, *, to: str | None, sent_at: datetime | None, error: str | None
    ) -> None:
        """The outcome of the finished-export email (not guarded: it comes after the run's last update)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(export_requests)
                .where(export_requests.c.id == export_id)
                .values(notified_to=to, notified_at=sent_at, notify_error=error)
            )

    def mark_expired(self, export_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(export_requests)
                .where(export_requests.c.id == export_id)
                .values(state=ExportState.EXPIRED.value, manifest_key=None)
            )

    def _update(self, export_id: str, run_id: str, **values: object) -> None:
        # Guarded by run_id and state: a run that lost its claim (taken over after it was presumed dead,
        # or canceled) writes nothing.
        with self.engine.begin() as conn:
            updated = conn.execute(self._owned(export_id, run_id).values(**values)).rowcount
        if not updated:
            raise ExportConflict(
                f"Export {export_id} is no longer owned by run {run_id}.",
                hint="It was canceled or another run took it over; this run stops.",
            )


    @staticmethod
    def _owned(export_id: str, run_id: str | None) -> sa.Update:
        return sa.update(export_requests).where(
            export_requests.c.id == export_id,
            _same(export_requests.c.run_id, run_id),
            export_requests.c.state == ExportState.RUNNING.value,
        )


def _same(column: sa.Column, value: str | None) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == value
