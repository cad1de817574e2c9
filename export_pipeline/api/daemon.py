"""Whether a Dagster daemon picks queued exports up (its sensor turns them into runs).

Without one, an export waits in the queue until a daemon starts. The API says so on each queued export (a
`hint`), and an export queued longer than the heartbeat window while no daemon runs is *stale*: it does not
count toward the in-flight limit (429), since nothing is running it; it still runs once a daemon starts.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from export_pipeline.defs.instance import DAEMON_HEARTBEAT_FRESH_SECONDS, daemon_is_running, dagster_instance
from export_pipeline.exports.requests import ExportRequest, ExportState
from export_pipeline.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

log = logging.getLogger(__name__)

NO_DAEMON_HINT = ("No Dagster daemon is running, so nothing starts queued exports: start one (`make dev`, or "
                  "`dagster-daemon run`); the export runs then.")
STALE_AFTER = timedelta(seconds=DAEMON_HEARTBEAT_FRESH_SECONDS)
# One heartbeat read per few seconds at most, whatever the request rate.
CACHE_SECONDS = 5.0


class DaemonWatch:
    """The daemon's liveness from the Dagster instance's heartbeats, read at most every CACHE_SECONDS."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._instance: dg.DagsterInstance | None = None
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._running = True

    def running(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked_at >= CACHE_SECONDS:
                self._running = self._read()
                self._checked_at = time.monotonic()
            return self._running

    def _read(self) -> bool:
        try:
            if self._instance is None:
                self._instance = dagster_instance(self.settings)
            return daemon_is_running(self._instance)
        except Exception:  # unknown is not "down": no hint, and queued exports keep counting
            log.exception("reading the Dagster daemon's heartbeat failed")
            return True

    def hint(self, export: ExportRequest) -> str | None:
        return NO_DAEMON_HINT if export.state is ExportState.QUEUED and not self.running() else None

    def is_stale(self, export: ExportRequest, now: datetime) -> bool:
        return (export.state is ExportState.QUEUED and now - export.created_at > STALE_AFTER
                and not self.running())


async def daemon_watch(request: Request) -> DaemonWatch:
    """Built once by create_app."""
    return request.app.state.daemon


Daemon = Annotated[DaemonWatch, Depends(daemon_watch)]
