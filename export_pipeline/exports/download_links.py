"""Links to a finished export's files that open without signing in, for emails and chat messages: a mail app or
Slack opens them from another site, with no token and no cookie. S3 presigns its own; a local folder's files
get our signed `/downloads/…` links (storage/signed_links.py), served by the API."""

from __future__ import annotations

from datetime import datetime, timedelta

from export_pipeline.exports.manifest import file_link
from export_pipeline.exports.requests import ExportRequest
from export_pipeline.settings import Settings
from export_pipeline.storage import ExportStorage
from export_pipeline.storage.signed_links import signed_download_url


def links_expire_at(storage: ExportStorage, settings: Settings, request: ExportRequest) -> datetime:
    """S3's links expire with the export (file_link); ours EXPORT_DOWNLOAD_LINK_HOURS after it finished (when
    its email goes out), never later than the export."""
    assert request.expires_at is not None and request.finished_at is not None
    if storage.presigns_downloads:
        return request.expires_at
    return min(request.expires_at, request.finished_at + timedelta(hours=settings.download_link_hours))


def signed_file_link(storage: ExportStorage, settings: Settings, request: ExportRequest, name: str) -> str:
    """The link to file `name` (or the manifest) of a finished export, until `links_expire_at`."""
    if storage.presigns_downloads:
        return file_link(storage, request, name)
    return signed_download_url(settings.api_base_url, settings.secret_key, export_id=request.id, name=name,
                               expires_at=links_expire_at(storage, settings, request))
