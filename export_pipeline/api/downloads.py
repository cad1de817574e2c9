"""Downloading an export's files: what both download routes check and answer, and the signed-link route.

- `GET|HEAD /api/v1/projects/{project_id}/exports/{export_id}/files/{name}` (api/exports.py): for a Maintainer,
  by bearer token or the export page's cookie.
- `GET|HEAD /downloads/{export_id}/{name}?expires=…&signature=…`: for whoever holds the signed link that the
  finished-export email carries (storage/signed_links.py); no token, no cookie, so it opens from a mail app or
  chat on another site. A browser gets its errors as a page, other clients as JSON.

Both answer the file itself for a local folder (`Content-Length`, one `Range`, `HEAD`: api/byte_ranges.py),
or 302 to a presigned URL for S3.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from export_pipeline.api.byte_ranges import file_response
from export_pipeline.api.dependencies import Exports
from export_pipeline.api.errors import ApiError, message_of, status_of
from export_pipeline.api.responses import ErrorBody, error_responses
from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.embed.page import error_page_html, page_headers
from export_pipeline.errors import ExportPipelineError, NotFound
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.manifest import MANIFEST_NAME, download_name, file_link, read_manifest
from export_pipeline.exports.reconcile import reconciled
from export_pipeline.exports.requests import ExportRequest, ExportState
from export_pipeline.storage.base import content_disposition
from export_pipeline.storage.signed_links import DOWNLOAD_PATH, verified_expiry

log = logging.getLogger(__name__)
router = APIRouter(tags=["exports"])

# What a download answers besides the file: the routes' OpenAPI `responses`.
FILE_RESPONSES: dict[int | str, dict] = {
    200: {"description": "The whole file (local storage), streamed; `Content-Length`, `Accept-Ranges: bytes`",
          "content": {"application/octet-stream": {"example": '{"event": "$pageview", "distinct_id": "u1"}\n'}}},
    206: {"description": "The one byte range asked for with `Range: bytes=first-last` (`Content-Range`)",
          "content": {"application/octet-stream": {"example": '{"event": "$pageview"'}}},
    302: {"description": "To a presigned URL (S3) that downloads the file under its download name"},
    **error_responses(416),
}
PAGE_TITLES = {403: "This download link does not work", 404: "Not found", 409: "Not ready",
               410: "This export has expired"}


def check_downloadable(export: ExportRequest) -> None:
    """409 not ready or failed; 410 expired (its files are deleted)."""
    if export.state in (ExportState.QUEUED, ExportState.RUNNING):
        raise ApiError(409, "export_not_ready", f"Export {export.id} is {export.state.value}; files are not ready.",
                       retry_after=5)
    if export.state is ExportState.EXPIRED or (export.expires_at and export.expires_at <= now_utc()):
        raise ApiError(410, "export_expired", f"Export {export.id} has expired and its files were deleted.",
                       hint="Request the export again.")
    if export.state is not ExportState.SUCCEEDED:
        raise ApiError(409, "export_failed", f"Export {export.id} failed: {export.error}")


def export_file_key(export: ExportRequest, deps: ExportDeps, name: str) -> str:
    """The storage key of file `name` (or the manifest) of a succeeded export (check_downloadable); 404 when
    the export has no such file."""
    check_downloadable(export)
    manifest = read_manifest(deps.storage, export.manifest_key)  # type: ignore[arg-type]
    if name not in {f["name"] for f in manifest["files"]} | {MANIFEST_NAME}:
        raise NotFound(f"Export {export.id} has no file {name!r}.")
    return f"{export.storage_prefix}/{name}"


def export_file_response(request: Request, export: ExportRequest, deps: ExportDeps, name: str) -> Response:
    """File `name` of the export, saved as its download name: 302 to S3, or the file (or its range) itself."""
    key = export_file_key(export, deps, name)
    if deps.storage.presigns_downloads:
        return RedirectResponse(file_link(deps.storage, export, name), status_code=302)
    media_type = "application/json" if name == MANIFEST_NAME else "application/octet-stream"
    return file_response(request, deps.storage.open_reader(key), media_type=media_type,
                         headers={"Content-Disposition": content_disposition(download_name(export, name))})


class DownloadLinkRefused(ApiError):
    """403: the link is not one we signed, or it has expired. Either way a new link is the way out."""

    def __init__(self, code: str, message: str, hint: str):
        super().__init__(403, code, message, hint=hint)


Expires = Annotated[str, Query(description="When the link stops working, in Unix seconds (signed)",
                               examples=["1767225600"])]
Signature = Annotated[str, Query(description="HMAC-SHA256 of the export, the file and `expires`, base64url",
                                 examples=["Zk3x0Qm1yJw2b8pX4nL6cV9dR7tH5sA0eG3uK1oI2qE"])]


@router.get(DOWNLOAD_PATH, response_class=Response, summary="Download an export file by signed link",
            responses={**FILE_RESPONSES, "4XX": {
                "model": ErrorBody, "description": "Why the link does not open: 403 changed or expired (ask for a "
                "new link), 404 no such export, 409 not ready, 410 the export expired. A page for browsers (`Accept: "
                "text/html`), else the error JSON",
                "content": {"text/html": {"example": "<!doctype html>…<h1>This download link does not work</h1>"
                                                     "<p>This download link expired at …</p>"}}}})
def download_export_file_by_link(request: Request, export_id: str, name: str, deps: Exports,
                                 expires: Expires = "", signature: Signature = "") -> Response:
    """One file of a finished export (or its `manifest.json`) for whoever holds the signed link its email
    carries: no token and no cookie, so it opens from a mail app or chat on another site. Links last
    EXPORT_DOWNLOAD_LINK_HOURS (24 by default), never past the export's expiry, and stop working when the
    export expires or is deleted. Local files answer with `Content-Length` and honour one `Range`; `HEAD`
    answers the headers alone."""
    try:
        return export_file_response(request, _linked_export(deps, export_id, name, expires, signature), deps, name)
    except ExportPipelineError as error:
        if "text/html" not in request.headers.get("accept", ""):
            raise  # the API's own error JSON
        status = status_of(error)
        return HTMLResponse(error_page_html(PAGE_TITLES.get(status, "Download failed"), message_of(error)),
                            status_code=status, headers=page_headers(()))


# HEAD besides GET, out of the document: one route with both would give OpenAPI a duplicate operation id.
router.add_api_route(DOWNLOAD_PATH, download_export_file_by_link, methods=["HEAD"], include_in_schema=False)


def _linked_export(deps: ExportDeps, export_id: str, name: str, expires: str, signature: str) -> ExportRequest:
    """The export the link opens: only once its signature is ours (nothing is looked up before), then while
    the export is there and the link has not expired."""
    new_link = ("Ask whoever sent it for a new link, or download the file from the export page of its project "
                "while the export lasts.")
    valid_until = verified_expiry(deps.settings.secret_key, export_id=export_id, name=name, expires=expires,
                                  signature=signature)
    if valid_until is None:
        raise DownloadLinkRefused("invalid_download_link", "This download link is not valid: it was changed or "
                                  "cut short.", "Open the link exactly as it was sent (some mail apps cut long "
                                  f"links). {new_link}")
    export = deps.store.get(export_id)
    if export is None:
        raise NotFound(f"Export {export_id} does not exist any more: it was deleted.",
                       hint="Request the export again.")
    export = reconciled(deps, export, log=log)
    check_downloadable(export)  # 409/410 before "expired": a gone export is why, not the link
    if valid_until <= now_utc().timestamp():
        expired_at = iso_utc(datetime.fromtimestamp(valid_until, UTC))
        raise DownloadLinkRefused(
            "download_link_expired", f"This download link expired at {expired_at}.",
            f"{new_link} Members of project {export.spec.project_id} with the Maintainer role can download "
            f"export {export.id} until {iso_utc(export.expires_at)} on the export page, "
            f"{deps.settings.api_base_url.rstrip('/')}/projects/{export.spec.project_id}/export.")
    return export
