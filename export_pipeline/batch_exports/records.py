"""One record per (destination, interval): its state, what it wrote and its last error.

A run claims its interval with a conditional update, so two runs of one interval never export at once: the
second is refused while the first is alive, and takes over only once the first's Dagster run has ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from export_pipeline.batch_exports.destinations import RunState
from export_pipeline.batch_exports.intervals import Interval
from export_pipeline.clock import as_utc, now_utc
from export_pipeline.db import batch_export_runs as runs
from export_pipeline.errors import IntervalBusy


@dataclass(frozen=True)
class IntervalRun:
    destination_id: str
    interval_start: datetime
    interval_end: datetime
    state: RunState
    run_id: str | None
    attempts: int
    rows: int
    bytes: int
    files: int
    manifest_key: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


class RunStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def _where(self, destination_id: str, start: datetime):
        return sa.and_(runs.c.destination_id == destination_id, runs.c.interval_start == start)

    def get(self, destination_id: str, start: datetime) -> IntervalRun | None:
        with self.engine.connect() as conn:
            row = conn.execute(runs.select().where(self._where(destination_id, start))).mappings().first()
        return _run(row) if row else None

    def list(self, destination_id: str, *, states: Sequence[RunState] = (), since: datetime | None = None,
             until: datetime | None = None, limit: int = 1000) -> list[IntervalRun]:
        query = runs.select().where(runs.c.destination_id == destination_id)
        if states:
            query = query.where(runs.c.state.in_([s.value for s in states]))
        if since is not None:
            query = query.where(runs.c.interval_start >= since)
        if until is not None:
            query = query.where(runs.c.interval_start < until)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(runs.c.interval_start).limit(limit)).mappings()
            return [_run(row) for row in rows]

    def latest_start(self, destination_id: str) -> datetime | None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(sa.func.max(runs.c.interval_start))
                                 .where(runs.c.destination_id == destination_id)).scalar()
        return as_utc(found) if found else None

    def ensure(self, destination_id: str, interval: Interval, state: RunState = RunState.QUEUED) -> bool:
        """Record the interval if it has no record yet; True when this call created it."""
        now = now_utc()
        try:
            with self.engine.begin() as conn:
                conn.execute(runs.insert().values(
                    destination_id=destination_id, interval_start=interval.start, interval_end=interval.end,
                    state=state.value, attempts=0, rows=0, bytes=0, files=0, updated_at=now,
                    finished_at=now if state is RunState.SKIPPED else None))
            return True
        except IntegrityError:
            return False

    def claim(self, destination_id: str, interval: Interval, run_id: str,
              run_is_active: Callable[[str], bool]) -> IntervalRun:
        self.ensure(destination_id, interval)
        current = self.get(destination_id, interval.start)
        assert current is not None
        holder = current.run_id
        if current.state is RunState.RUNNING and holder != run_id and holder and run_is_active(holder):
            raise IntervalBusy(
                f"Interval {interval.label} of batch export {destination_id} is being exported by run {holder}.",
                hint="Wait for that run, or cancel it in the Dagster UI and launch again.")
        guard = self._where(destination_id, interval.start)
        if current.state is RunState.RUNNING:
            guard = sa.and_(guard, runs.c.run_id == holder)
        else:
            guard = sa.and_(guard, runs.c.state == current.state.value)
        with self.engine.begin() as conn:
            claimed = conn.execute(runs.update().where(guard).values(
                state=RunState.RUNNING.value, run_id=run_id, attempts=runs.c.attempts + 1, error=None,
                started_at=now_utc(), finished_at=None, updated_at=now_utc()))
        if claimed.rowcount != 1:
            raise IntervalBusy(f"Interval {interval.label} of batch export {destination_id} was claimed by another run.",
                               hint="Only one run exports an interval at a time; this one stops.")
        claimed_run = self.get(destination_id, interval.start)
        assert claimed_run is not None
        return claimed_run

    def finish(self, destination_id: str, interval: Interval, run_id: str, state: RunState, *, rows: int = 0,
               bytes_written: int = 0, files: int = 0, manifest_key: str | None = None, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(self._where(destination_id, interval.start), runs.c.run_id == run_id)
                         .values(state=state.value, rows=rows, bytes=bytes_written, files=files,
                                 manifest_key=manifest_key, error=error, finished_at=now_utc(), updated_at=now_utc()))

    def abandon(self, destination_id: str, record: IntervalRun, error: str) -> bool:
        """Record `failed` an interval left `running` or `queued` by a run that has ended (reconcile in
        plan.py); a queued one also counts the attempt its run never made. Only if the record is unchanged."""
        guard = sa.and_(self._where(destination_id, record.interval_start), runs.c.state == record.state.value,
                        runs.c.attempts == record.attempts)
        if record.run_id is not None:
            guard = sa.and_(guard, runs.c.run_id == record.run_id)
        attempts = record.attempts + (1 if record.state is RunState.QUEUED else 0)
        with self.engine.begin() as conn:
            done = conn.execute(runs.update().where(guard).values(
                state=RunState.FAILED.value, attempts=attempts, error=error, finished_at=now_utc(),
                updated_at=now_utc()))
        return done.rowcount == 1

    def mark_skipped(self, destination_id: str, intervals: Sequence[Interval]) -> int:
        """Intervals found empty before any run, recorded as skipped in two statements however many there are;
        an interval that has files or is running keeps its record."""
        if not intervals:
            return 0
        now = now_utc()
        starts = [i.start for i in intervals]
        with self.engine.begin() as conn:
            known = {as_utc(found) for (found,) in conn.execute(
                sa.select(runs.c.interval_start).where(runs.c.destination_id == destination_id,
                                                       runs.c.interval_start >= min(starts),
                                                       runs.c.interval_start <= max(starts)))}
            new = [{"destination_id": destination_id, "interval_start": i.start, "interval_end": i.end,
                    "state": RunState.SKIPPED.value, "attempts": 0, "rows": 0, "bytes": 0, "files": 0,
                    "updated_at": now, "finished_at": now} for i in intervals if i.start not in known]
            if new:
                conn.execute(runs.insert(), new)
            updated = conn.execute(runs.update().where(
                runs.c.destination_id == destination_id, runs.c.interval_start.in_([s for s in starts if s in known]),
                runs.c.files == 0, runs.c.state.in_([RunState.QUEUED.value, RunState.SKIPPED.value]))
                .values(state=RunState.SKIPPED.value, finished_at=now, updated_at=now)).rowcount if known else 0
        return len(new) + updated

def _run(row) -> IntervalRun:
    return IntervalRun(
        destination_id=row["destination_id"], interval_start=as_utc(row["interval_start"]),
        interval_end=as_utc(row["interval_end"]), state=RunState(row["state"]), run_id=row["run_id"],
        attempts=int(row["attempts"]), rows=int(row["rows"]), bytes=int(row["bytes"]), files=int(row["files"]),
        manifest_key=row["manifest_key"], error=row["error"], started_at=as_utc(row["started_at"]),
        finished_at=as_utc(row["finished_at"]),
    )
