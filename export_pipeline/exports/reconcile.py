"""The reconciler: no export stays `running` once the process writing it is gone.

A running request is compared with its run (a lookup the caller passes in: Dagster for the sensor and the
CLI, nothing for the API) and with the heartbeat its process writes. A run that ended, or an export silent
for longer than the limit, is failed with the cause, and then what it left behind is removed: partial files,
unfinished multipart uploads and parts that were never recorded. The parts recorded as complete stay, so a
retry resumes from them (they expire with the failed request otherwise). The failure is recorded before the
cleanup, so a storage fault during cleanup is logged beside it and never replaces or hides it.

Writers keep their request alive with `Heartbeat`, a thread that beats while the process lives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from export_pipeline.clock import now_utc
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.parts import PartLog
from export_pipeline.exports.requests import ExportRequest, ExportState
from export_pipeline.exports.store import ExportStore
from export_pipeline.storage import ExportStorage

INTERRUPTED = "export_interrupted"


@dataclass(frozen=True)
class RunView:
    """What the orchestrator knows of a run: whether it still goes, its status, and why it failed."""

    active: bool
    status: str
    reason: str | None = None


# None: this caller cannot see runs (the API); the heartbeat alone decides.
RunLookup = Callable[[str], RunView | None]


@dataclass(frozen=True)
class Reconciled:
    request: ExportRequest  # as it was found, running
    cause: str
    run_ended: bool  # False: the run may still be registered as going (silent export)
    cleanup_error: str | None = None


def verdict(request: ExportRequest, view: RunView | None, *, now: datetime, stale_after: timedelta) -> str | None:
    """Why this running request cannot finish, or None while it may."""
    if view is not None and not view.active:
        reason = f": {view.reason}" if view.reason else ""
        return f"Run {request.run_id} ended ({view.status}) before the export finished{reason}"
    alive = request.heartbeat_at or request.started_at or request.created_at
    silent = now - alive
    if silent > stale_after:
        return (f"Run {request.run_id} sent no heartbeat for {silent.total_seconds():.0f} s (limit "
                f"{stale_after.total_seconds():.0f} s): the process writing the export is presumed dead.")
    return None


class Reconciler:
    def __init__(self, store: ExportStore, storage: ExportStorage, *, stale_after: timedelta, expires_after: timedelta,
                 log: logging.Logger | logging.LoggerAdapter):
        self.store = store
        self.storage = storage
        self.parts = PartLog(store.engine)
        self.stale_after = stale_after
        self.expires_after = expires_after
        self.log = log

    def run(self, lookup: RunLookup, *, now: datetime, limit: int = 500) -> list[Reconciled]:
        """Check every running request, and retry the cleanups that failed before (storage was down)."""
        done = []
        for request in self.store.in_state(ExportState.RUNNING, limit=limit):
            if (outcome := self.check(request, lookup, now=now)) is not None:
                done.append(outcome)
        for request in self.store.cleanup_pending(limit=limit):
            self.discard_unrecorded(request)
        return done

    def check(self, request: ExportRequest, lookup: RunLookup, *, now: datetime) -> Reconciled | None:
        """Fail `request` if its run is gone; returns what was done, or None (still going, or not running)."""
        if request.state is not ExportState.RUNNING:
            return None
        view = lookup(request.run_id) if request.run_id else RunView(False, "missing")
        cause = verdict(request, view, now=now, stale_after=self.stale_after)
        if cause is None:
            return None
        # Recorded first and guarded: if the run finished or a retry claimed the request meanwhile, it wins.
        if not self.store.abandon(request.id, request.run_id, code=INTERRUPTED, message=cause,
                                  expires_at=now + self.expires_after):
            return None
        self.log.warning("Export %s failed by the reconciler: %s", request.id, cause)
        return Reconciled(request, cause, run_ended=view is not None and not view.active,
                          cleanup_error=self.discard_unrecorded(request))

    def discard_unrecorded(self, request: ExportRequest) -> str | None:
        """Remove what the dead attempt left but the resumable parts; a failure is logged and returned."""
        try:
            keep = [part.file.key for part in self.parts.resumable(request.id, request.storage_prefix)]
            self.parts.forget(request.id, from_part=len(keep))
            self.storage.delete_prefix(request.storage_prefix, keep=keep)
        except Exception as exc:
            self.log.exception("Export %s: removing its unfinished files failed (the export's failure is "
                               "recorded; the reconciler tries again).", request.id)
            error = f"{type(exc).__name__}: {exc}"
            self._record_cleanup(request, error)
            return error
        if request.cleanup_error is not None:
            self._record_cleanup(request, None)
        return None

    def _record_cleanup(self, request: ExportRequest, error: str | None) -> None:
        try:
            self.store.record_cleanup(request.id, error)
        except Exception:
            self.log.exception("Export %s: recording the cleanup's outcome failed.", request.id)


def reconciled(deps: ExportDeps, request: ExportRequest, *, log: logging.Logger | logging.LoggerAdapter,
               lookup: RunLookup = lambda _run_id: None) -> ExportRequest:
    """`request` as it stands once checked: a running one whose run is gone comes back failed. For readers that
    cannot wait for the sensor (the API: by default without seeing runs, on the heartbeat alone)."""
    if request.state is not ExportState.RUNNING:
        return request
    settings = deps.settings
    reconciler = Reconciler(deps.store, deps.storage, stale_after=timedelta(seconds=settings.export_stale_after_seconds),
                            expires_after=timedelta(hours=settings.ttl_hours), log=log)
    if reconciler.check(request, lookup, now=now_utc()) is None:
        return request
    return deps.store.require(request.id)


class Heartbeat:
    """Beats for a claimed request from a thread while the block runs; stops by itself once the run no longer
    owns the request. A beat that fails (database briefly away) is logged and retried at the next period."""

    def __init__(self, store: ExportStore, export_id: str, run_id: str, *, every: float,
                 log: logging.Logger | logging.LoggerAdapter):
        self._beat = lambda: store.heartbeat(export_id, run_id)
        self._every = every
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat {export_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                if not self._beat():
                    return
            except Exception:
                self._log.warning("Heartbeat not written; retrying in %s s.", self._every, exc_info=True)
