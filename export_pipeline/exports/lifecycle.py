"""The end of an export before or after its time: expiry of finished exports, and withdrawing one on request
(canceled while queued or running, or its files deleted now). Their files go, their state says so."""

from __future__ import annotations

from datetime import datetime

from export_pipeline.exports.parts import PartLog
from export_pipeline.exports.requests import ExportRequest, ExportState
from export_pipeline.exports.store import ExportStore
from export_pipeline.storage import ExportStorage


def sweep_expired(store: ExportStore, storage: ExportStorage, *, now: datetime) -> list[tuple[ExportRequest, int]]:
    """Delete the files of every export past `expires_at` and mark it expired; returns (request, files deleted)."""
    swept = []
    for request in store.expired_before(now):
        deleted = storage.delete_prefix(request.storage_prefix)
        store.mark_expired(request.id)
        PartLog(store.engine).forget(request.id)  # a crashed export's kept parts went with its files
        swept.append((request, deleted))
    return swept


def withdraw(store: ExportStore, storage: ExportStorage, request: ExportRequest) -> str | None:
    """Cancel a queued or running export, or delete a finished one's files now. Returns the id of the run
    still writing it, which the caller stops (a running export also stops at its next progress update)."""
    if request.state in (ExportState.QUEUED, ExportState.RUNNING):
        store.cancel(request.id)
    storage.delete_prefix(request.storage_prefix)
    if request.state is ExportState.SUCCEEDED:
        store.mark_expired(request.id)
    return request.run_id if request.state in (ExportState.QUEUED, ExportState.RUNNING) else None
