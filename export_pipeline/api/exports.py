"""Exports over HTTP, for Maintainers or higher: request one, list, follow, download its files, cancel or delete.

The export's id is `export_id` everywhere (CLI, manifest, paths, this resource); `id` is its deprecated alias.
Files download under unique names (`<project>-<export_id>-<resource>-part-00000.ndjson.zst`, manifest.py).
"""

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.accounts.roles import EXPORT_ROLE
from export_pipeline.api.cursors import aware_time, decode_cursor, encode_cursor, identifier
from export_pipeline.api.daemon import Daemon, DaemonWatch
from export_pipeline.api.dependencies import Caller, Exports, ProjectId, require
from export_pipeline.api.downloads import FILE_RESPONSES, export_file_response
from export_pipeline.api.errors import ApiError
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.exports import (
    EXPORT_CANCELED,
    EXPORT_CREATE,
    EXPORT_PAGE,
    EXPORT_QUEUED,
    EXPORT_SUCCEEDED,
)
from export_pipeline.api.responses import MEMBER_ERRORS, error_responses
from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.defs.instance import terminate_run
from export_pipeline.engine.request import ExportFields
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import NotFound
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.lifecycle import withdraw
from export_pipeline.exports.manifest import MANIFEST_NAME, download_name, read_manifest
from export_pipeline.exports.reconcile import reconciled
from export_pipeline.exports.requests import ExportRequest, ExportState

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/projects/{project_id}/exports", tags=["exports"],
                   responses=error_responses(*MEMBER_ERRORS))
Maintainer = Annotated[Caller, require(EXPORT_ROLE, action="exporting events")]
MaintainerByLink = Annotated[Caller, require(EXPORT_ROLE, action="exporting events", by_link=True)]


class ExportCreate(ExportFields):
    """A new export of the project in the path, for the caller: the export-request model's fields
    (engine/request.py), which the CLI and the Launchpad take too."""


class ExportFile(BaseModel):
    name: str = Field(description="The file's name in the export (and the manifest)")
    download_name: str = Field(description="The name a download is saved as")
    rows: int
    bytes: int
    sha256: str
    url: str = Field(description="Download it here (302 to a presigned URL on S3; the file itself locally)")


class ExportFailure(BaseModel):
    code: str
    message: str | None


class ExportNotification(BaseModel):
    email: str | None = Field(description="Where the finished-export email goes (or went)")
    sent_at: str | None
    error: str | None


class Export(BaseModel):
    """An export request and, once it succeeded, its files. Filters that do not apply to the resource are null
    (`date_from`, `date_to`, `events` for events; `properties`, `cohort_id`, `group_type` for persons, groups and
    cohorts; `distinct_id`, `person_id`, `min_duration` for recordings; `target_id`, `width` for an insight or
    dashboard)."""

    model_config = ConfigDict(extra="forbid")

    export_id: str
    id: str = Field(deprecated=True, description="The same as export_id (kept for earlier clients)")
    project_id: int
    resource: Literal["events", "persons", "groups", "cohort", "recordings", "insight", "dashboard"]
    format: str
    compression: str
    date_from: str | None = None
    date_to: str | None = None
    events: list[str] | None = None
    target_id: str | None = None
    width: int | None = None
    properties: list[dict] | None = Field(None, description="Persons and groups: the property filters")
    cohort_id: int | None = None
    group_type: str | None = None
    distinct_id: str | None = None
    person_id: str | None = None
    min_duration: int | None = Field(None, description="Recordings: at least this many seconds")
    requested_by: str
    status: ExportState
    row_count: int = Field(description="Rows written so far")
    row_total: int | None = Field(description="Rows the export writes in all, once its run has counted them")
    byte_count: int
    files: list[ExportFile] = Field(description="Empty until the export succeeded")
    manifest_url: str | None = Field(description="The manifest's download link, once succeeded")
    created_at: str
    started_at: str | None
    finished_at: str | None
    expires_at: str | None
    error: ExportFailure | None
    notification: ExportNotification
    url: str = Field(description="This resource's path")
    hint: str | None = Field(description="What is holding a queued export up, e.g. no Dagster daemon running")


class ExportPage(BaseModel):
    data: list[Export]
    next_cursor: str | None


CREATE_ERRORS = error_responses(
    429, e429="More than EXPORT_API_MAX_IN_FLIGHT exports queued or running in the project (Retry-After)")
DOWNLOAD_ERRORS = error_responses(
    409, 410, e409="Not ready (`export_not_ready`, Retry-After) or failed (`export_failed`)",
    e410="Expired: its files were deleted (`export_expired`)")


@router.post("", status_code=202, response_model=Export, summary="Request an export", responses={
    200: {"model": Export, "description": "The same request is already queued or running: that export"},
    **CREATE_ERRORS}, openapi_extra=examples(request=EXPORT_CREATE, response=EXPORT_QUEUED, status=202))
def create_export(project_id: ProjectId, body: ExportCreate, who: Maintainer, request: Request,
                  deps: Exports, daemon: Daemon) -> JSONResponse:
    """Queue an export (202 + Location); the Dagster daemon's sensor starts it."""
    spec = parse_spec(project_id=project_id, requested_by=who.user, **body.model_dump(exclude={"notify_email"}))
    in_flight_exports = _in_flight(deps, project_id)
    for existing in in_flight_exports:
        if existing.spec == spec:
            return _export_response(deps, daemon, existing, request, status=200)
    now = now_utc()
    in_flight = sum(1 for export in in_flight_exports if not daemon.is_stale(export, now))
    limit = deps.settings.api_max_in_flight_exports
    if in_flight >= limit:
        raise ApiError(
            429, "too_many_exports",
            f"Project {project_id} already has {in_flight} exports queued or running (limit {limit}).",
            hint="Wait for one to finish, or cancel one (DELETE …/exports/{export_id}).", retry_after=30,
        )
    created = deps.store.create(spec, source="api", notify_email=body.notify_email)
    return _export_response(deps, daemon, created, request, status=202)


@router.get("", summary="List the project's exports", openapi_extra=examples(response=EXPORT_PAGE))
def list_exports(
    project_id: ProjectId, who: Maintainer, request: Request, deps: Exports, daemon: Daemon,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ExportPage:
    """The project's exports, newest first."""
    after = decode_cursor(cursor, {"created_at": aware_time, "id": identifier}) if cursor else None
    rows = deps.store.project_page(project_id, after=(after["created_at"], after["id"]) if after else None,
                                   limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor({"created_at": page[-1].created_at.isoformat(), "id": page[-1].id}) if more else None
    return ExportPage(data=[export_resource(deps, daemon, r, request) for r in page], next_cursor=next_cursor)


@router.get("/{export_id}", summary="Follow an export", openapi_extra=examples(response=EXPORT_SUCCEEDED))
def get_export(project_id: ProjectId, export_id: str, who: Maintainer, request: Request, deps: Exports,
               daemon: Daemon) -> Export:
    """State, rows so far, and once succeeded the files and manifest with their download links."""
    return export_resource(deps, daemon, _export_of(deps, project_id, export_id), request)


@router.get("/{export_id}/files/{name}", response_class=Response, responses={**FILE_RESPONSES, **DOWNLOAD_ERRORS},
            summary="Download an export file")
def download_export_file(project_id: ProjectId, export_id: str, name: str, who: MaintainerByLink,
                         request: Request, deps: Exports) -> Response:
    """One file of a succeeded export (or `manifest.json`), saved as its download name. Besides the bearer token,
    the token cookie the export page sets is accepted, so a plain link downloads. Local files answer with
    `Content-Length` and honour one `Range`; `HEAD` answers the headers alone."""
    return export_file_response(request, _export_of(deps, project_id, export_id), deps, name)


router.add_api_route("/{export_id}/files/{name}", download_export_file, methods=["HEAD"], include_in_schema=False)


@router.delete("/{export_id}", summary="Cancel an export or delete its files",
               openapi_extra=examples(response=EXPORT_CANCELED))
def delete_export(project_id: ProjectId, export_id: str, who: Maintainer, request: Request, deps: Exports,
                  daemon: Daemon) -> Export:
    """Cancel a queued or running export, or delete a finished one's files now."""
    export = _export_of(deps, project_id, export_id)
    if run_id := withdraw(deps.store, deps.storage, export):
        terminate_run(run_id, log)
    return export_resource(deps, daemon, deps.store.require(export_id), request)


def export_resource(deps: ExportDeps, daemon: DaemonWatch, export: ExportRequest, request: Request) -> Export:
    base = f"/api/v1/projects/{export.spec.project_id}/exports/{export.id}"
    origin = str(request.base_url).rstrip("/") + base
    files: list[ExportFile] = []
    manifest_url = None
    if export.state is ExportState.SUCCEEDED and export.manifest_key:
        manifest = read_manifest(deps.storage, export.manifest_key)
        files = [ExportFile(**f, download_name=download_name(export, f["name"]), url=f"{origin}/files/{f['name']}")
                 for f in manifest["files"]]
        manifest_url = f"{origin}/files/{MANIFEST_NAME}"
    spec = export.spec
    return Export(
        export_id=export.id, id=export.id, project_id=spec.project_id, resource=spec.resource,  # type: ignore[arg-type]
        format=spec.format.value, compression=spec.compression.value, **spec.filters(),
        requested_by=spec.requested_by, status=export.state, row_count=export.row_count,
        row_total=export.row_total, byte_count=export.byte_count, files=files, manifest_url=manifest_url,
        created_at=iso_utc(export.created_at), started_at=iso_utc(export.started_at),
        finished_at=iso_utc(export.finished_at), expires_at=iso_utc(export.expires_at),
        error=ExportFailure(code=export.error_code, message=export.error) if export.error_code else None,
        notification=ExportNotification(email=export.notified_to or export.notify_email,
                                        sent_at=iso_utc(export.notified_at), error=export.notify_error),
        url=base, hint=daemon.hint(export),
    )


def _export_response(deps: ExportDeps, daemon: DaemonWatch, export: ExportRequest, request: Request, *,
                     status: int) -> JSONResponse:
    resource = export_resource(deps, daemon, export, request)
    return JSONResponse(resource.model_dump(mode="json"), status_code=status, headers={"Location": resource.url})


def _in_flight(deps: ExportDeps, project_id: int) -> list[ExportRequest]:
    # A dead export must neither be handed back as the duplicate of a new request nor count against the cap.
    found = (reconciled(deps, request, log=log) for request in deps.store.in_flight(project_id))
    return [request for request in found if not request.is_terminal]


def _export_of(deps: ExportDeps, project_id: int, export_id: str) -> ExportRequest:
    export = deps.store.get(export_id)
    if export is None or export.spec.project_id != project_id:
        raise NotFound(f"Export {export_id!r} not found in project {project_id}.")
    return reconciled(deps, export, log=log)
