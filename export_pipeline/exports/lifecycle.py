"""Expiry of finished exports: their files go, their state says so."""

from __future__ import annotations

from datetime import datetime

from export_pipeline.exports.parts import PartLog
from export_pipeline.exports.requests import ExportRequest
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
