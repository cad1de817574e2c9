"""`export --wait`: follow an export until it ends, never forever.

The request row alone can lie: a run that died keeps it `running`, and with no daemon a queued request never
starts. So the wait also follows the Dagster run (the reconciler's check, against the run's status and the
export's heartbeat) and the daemon's liveness, and stops at `--timeout`."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from export_pipeline.cli.progress import ProgressDisplay
from export_pipeline.clock import now_utc
from export_pipeline.defs.instance import daemon_is_running
from export_pipeline.defs.runs import run_view
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.reconcile import INTERRUPTED, Reconciler
from export_pipeline.exports.requests import ExportRequest, ExportState

if TYPE_CHECKING:
    import dagster as dg

POLL_SECONDS = 0.5
# How long after an interrupted run the daemon may take to launch its retry (it reacts within seconds).
RETRY_GRACE_SECONDS = 60
CHECK_RUN_SECONDS = 2.0
EXIT_TIMED_OUT = 3


@dataclass(frozen=True)
class GaveUp:
    message: str
    exit_code: int


def reconcile_now(deps: ExportDeps, instance: dg.DagsterInstance) -> None:
    """The reconciler's pass, for a machine without a daemon (whose sensor would do it)."""
    from export_pipeline.defs.exports import reconcile_exports

    reconcile_exports(instance, deps.store, deps.storage, stale_after=_stale_after(deps),
                      expires_after=timedelta(hours=deps.settings.ttl_hours), log=logging.getLogger(__name__))


def _stale_after(deps: ExportDeps) -> timedelta:
    return timedelta(seconds=deps.settings.export_stale_after_seconds)


def follow_export(deps: ExportDeps, instance: dg.DagsterInstance, request: ExportRequest, *,
                  runner: threading.Thread | None, timeout: float | None,
                  display: ProgressDisplay | None = None) -> tuple[ExportRequest, GaveUp | None]:
    """Poll until the export ends, showing progress on stderr; or give up, saying why."""
    display = display or ProgressDisplay()
    store = deps.store
    reconciler = Reconciler(store, deps.storage, stale_after=_stale_after(deps),
                            expires_after=timedelta(hours=deps.settings.ttl_hours), log=logging.getLogger(__name__))
    lookup = lambda run_id: run_view(instance, run_id)  # noqa: E731
    started = time.monotonic()
    checked = started
    while True:
        current = store.require(request.id)
        display.show(current)
        if current.is_terminal and not (runner is None and _retry_may_follow(instance, current)):
            return current, None
        now = time.monotonic()
        if runner is not None and not runner.is_alive():
            # The in-process run is over, yet the request did not end: whatever killed it, fail it here.
            reconciler.check(store.require(request.id), lookup, now=now_utc())
            ended = store.require(request.id)
            if ended.is_terminal:
                return ended, None
            return ended, GaveUp(f"The run in this process ended but export {request.id} is still "
                                 f"{ended.state.value}.", 1)
        if now - checked >= CHECK_RUN_SECONDS:
            checked = now
            if current.state is ExportState.RUNNING and reconciler.check(current, lookup, now=now_utc()):
                continue  # failed with the run's cause: shown and returned on the next pass
            if current.state is ExportState.QUEUED and runner is None and not daemon_is_running(instance):
                return current, GaveUp(
                    f"The Dagster daemon stopped before export {request.id} started; it stays queued and runs "
                    "when the daemon is back (make dev), or cancel it.", 1)
        if timeout is not None and now - started >= timeout:
            goes_on = ("it ran in this process, so it is canceled" if runner is not None else
                       f"it goes on (export-pipeline status {request.id})")
            return current, GaveUp(f"Stopped waiting after {timeout:g} s with export {request.id} "
                                   f"{current.state.value}: {goes_on}.", EXIT_TIMED_OUT)
        time.sleep(POLL_SECONDS)


def _retry_may_follow(instance: dg.DagsterInstance, request: ExportRequest) -> bool:
    """An export whose run died is failed at once, but with run retries on the daemon relaunches it: keep
    waiting for that retry rather than report a failure that is about to be undone."""
    if request.error_code != INTERRUPTED or not instance.run_retries_enabled:
        return False
    import dagster as dg

    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": request.id}))
    if any(not run.is_finished for run in runs):
        return True
    recent = request.finished_at is not None and (now_utc() - request.finished_at).total_seconds() < RETRY_GRACE_SECONDS
    return recent and len(runs) <= instance.run_retries_max_retries
