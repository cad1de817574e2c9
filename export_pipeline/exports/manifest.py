"""The manifest: written last, so its presence means every file it lists is complete."""

from __future__ import annotations

import json
from datetime import datetime

from export_pipeline.clock import iso_utc
from export_pipeline.engine.serialize import WrittenFile
from export_pipeline.exports.requests import ExportRequest
from export_pipeline.storage import ExportStorage

MANIFEST_NAME = "manifest.json"


def build_manifest(
    request: ExportRequest, files: list[WrittenFile], *, finished_at: datetime, expires_at: datetime
) -> dict:
    spec = request.spec
    return {
        "export_id": request.id,
        "project_id": spec.project_id,
        "resource": spec.resource,
        "requested_by": spec.requested_by,
        "format": spec.format.value,
        "compression": spec.compression.value,
        "filters": spec.filters(),
        "as_of": iso_utc(request.as_of),
        "row_count": sum(f.rows for f in files),
        "byte_count": sum(f.bytes for f in files),
        "files": [{"name": f.name, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256} for f in files],
        "created_at": iso_utc(request.created_at),
        "completed_at": iso_utc(finished_at),
        "expires_at": iso_utc(expires_at),
    }


def download_name(request: ExportRequest, name: str) -> str:
    """The name a downloaded file is saved as: unique across exports, so several fit in one folder
    (`12-exp_20261129221400_ab12cd34ef-events-part-00000.ndjson.zst`). Keys keep the short name."""
    return f"{request.spec.project_id}-{request.id}-{request.spec.resource}-{name}"


def file_link(storage: ExportStorage, request: ExportRequest, name: str) -> str:
    """The storage's own link to one of a finished export's files, saved as its download_name."""
    assert request.expires_at is not None
    return storage.download_url(f"{request.storage_prefix}/{name}", expires_at=request.expires_at,
                                filename=download_name(request, name))


def read_manifest(storage: ExportStorage, key: str) -> dict:
    return json.loads(storage.read_bytes(key))
