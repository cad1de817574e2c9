"""Which intervals to run: what the live sensor requests each tick, and what a backfill of a range needs.

Live: failed intervals first (retried, with a growing wait, until the destination pauses), then intervals still queued (a
request that did not become a run is asked again; Dagster drops a run_key it has already launched), then the
intervals that closed since the cursor. Backfill: one grouped count over the range finds the intervals that
hold rows; the empty ones that never had files are recorded as skipped without a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from export_pipeline.batch_exports.destinations import Destination, RunState
from export_pipeline.batch_exports.intervals import Interval, intervals_between
from export_pipeline.batch_exports.query import non_empty_starts
from export_pipeline.batch_exports.records import IntervalRun, RunStore
from export_pipeline.batch_exports.run import BatchDeps
from export_pipeline.batch_exports.store import DestinationStore
from export_pipeline.clock import as_utc
from export_pipeline.errors import InvalidRequest
from export_pipeline.models import BATCH_MODELS

MAX_BACKFILL_INTERVALS = 100_000
RETRY_BASE = timedelta(minutes=5)


@dataclass(frozen=True)
class Due:
    interval: Interval
    attempts: int  # attempts so far: part of the run_key, so that a retry is a new run

    def run_key(self, destination_id: str) -> str:
        return f"{destination_id}|{self.interval.partition_key}|{self.attempts}"


def due_intervals(destination: Destination, destinations: DestinationStore, runs: RunStore, now: datetime,
                  *, limit: int = 50, run_ended: Callable[[str], bool] = lambda _: False,
                  request_ended: Callable[[str], bool] = lambda _: False) -> list[Due]:
    """What the sensor requests for one destination, oldest first; records new intervals as queued and moves
    the live cursor past them.

    Intervals whose Dagster run is gone without finishing them are recorded failed first (`reconcile`, paused
    destinations too), so none stays `running` or `queued` for good after a canceled or killed run."""
    reconcile(destination, runs, limit=limit, run_ended=run_ended, request_ended=request_ended)
    if destination.paused:
        return []
    due = [Due(destination.interval_at(r.interval_start), r.attempts)
           for r in runs.list(destination.id, states=(RunState.FAILED,), limit=limit)
           if destination.consecutive_failures == 0 or _retry_at(r) <= now]
    due += [Due(destination.interval_at(r.interval_start), r.attempts)
            for r in runs.list(destination.id, states=(RunState.QUEUED,), limit=limit)]
    start = destinations.cursor(destination.id) or destination.start_at
    fresh: list[Interval] = []
    for interval in intervals_between(destination.interval, destination.zone, start, now):
        if len(due) + len(fresh) >= limit or not destination.closed_by(interval, now):
            break
        fresh.append(interval)
    for interval in fresh:
        if runs.ensure(destination.id, interval):
            due.append(Due(interval, 0))
    if fresh:
        destinations.advance_cursor(destination.id, fresh[-1].end)
    return due


def reconcile(destination: Destination, runs: RunStore, *, limit: int, run_ended: Callable[[str], bool],
              request_ended: Callable[[str], bool]) -> None:
    """A `running` interval whose run has ended (killed, or canceled while its step could not record it),
    and a `queued` one whose requested run ended without starting (canceled in the queue, refused at launch),
    become `failed`, to be requested again; neither counts toward pausing the destination (no export
    failed). A queued one also counts an attempt: its next request needs a new run_key, as Dagster drops
    one it has already launched."""
    for record in runs.list(destination.id, states=(RunState.RUNNING,), limit=limit):
        if record.run_id and run_ended(record.run_id):
            runs.abandon(destination.id, record, f"Its run {record.run_id} ended before it finished the interval.")
    for record in runs.list(destination.id, states=(RunState.QUEUED,), limit=limit):
        key = Due(destination.interval_at(record.interval_start), record.attempts).run_key(destination.id)
        if request_ended(key):
            runs.abandon(destination.id, record, f"The run requested as {key} ended before it started "
                                                 "(canceled in the queue, or refused at launch).")


def _retry_at(run: IntervalRun) -> datetime:
    """While failures run in a row, a failed interval waits 5, 10, 20 … minutes (at most ~5 h) before its
    next try, so a short outage does not use up the tries that pause the destination; after a resume
    (no failures in a row) it is retried at once."""
    finished = run.finished_at or run.interval_end
    return finished + RETRY_BASE * 2 ** min(max(run.attempts - 1, 0), 6)


def backfill_intervals(destination: Destination, start: datetime, end: datetime, deps: BatchDeps,
                       now: datetime) -> tuple[list[Interval], int]:
    """The intervals of [start, end) to run (those holding rows, and those that had files before) and how
    many were skipped as empty. Only closed intervals are backfilled."""
    start, end = as_utc(start), as_utc(end)
    if start >= end:
        raise InvalidRequest(f"The backfill range ends ({end.isoformat()}) before it starts ({start.isoformat()}).",
                             details={"end": "must be after start"})
    candidates = [i for i in intervals_between(destination.interval, destination.zone,
                                               max(start, destination.start_at), end)
                  if destination.closed_by(i, now)]
    if len(candidates) > MAX_BACKFILL_INTERVALS:
        raise InvalidRequest(f"{len(candidates):,} intervals is more than one backfill takes "
                             f"({MAX_BACKFILL_INTERVALS:,}).", hint="Split the range.")
    if not candidates:
        return [], 0
    model = BATCH_MODELS[destination.model](deps.table)
    with deps.clickhouse.session(f"batch export {destination.id} backfill plan") as session:
        rows_at = set(non_empty_starts(session, model, destination, candidates[0].start, candidates[-1].end))
    had_files = {r.interval_start for r in deps.runs.list(destination.id, since=candidates[0].start,
                                                          until=candidates[-1].end, limit=MAX_BACKFILL_INTERVALS)
                 if r.files > 0 or r.state is RunState.FAILED}
    # An interval that had files (or failed, maybe leaving some) runs even if empty now, to replace them.
    run = [i for i in candidates if int(i.start.timestamp()) in rows_at or i.start in had_files]
    chosen = {i.start for i in run}
    skipped = deps.runs.mark_skipped(destination.id, [i for i in candidates if i.start not in chosen])
    return run, skipped
