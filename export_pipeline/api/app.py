"""The HTTP API: `/api/v1`, personal access tokens, Maintainer+ on the project, one error shape.

Errors are always `{"error": {"code", "message", "details"}}`. A project the caller is not a member of
answers 404 (its existence is not revealed); a member below Maintainer gets 403 naming the role needed.
"""


import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from export_pipeline.accounts.emails import OptionalEmail
from export_pipeline.accounts.roles import EXPORT_ROLE, Role, require_role
from export_pipeline.accounts.tokens import authenticate
from export_pipeline.api.embed_routes import install_embed_routes
from export_pipeline.api.insights_routes import install_insight_routes
from export_pipeline.api.pages import install_pages
from export_pipeline.api.statuses import status_of
from export_pipeline.api.subscription_routes import install_subscription_routes
from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.db import export_requests
from export_pipeline.errors import (
    AccessDenied,
    EngineBusy,
    ExportPipelineError,
    InvalidRequest,
    NotFound,
)
from export_pipeline.exports.deps import ExportDeps, build_deps
from export_pipeline.exports.extract import QUERY_SETTINGS, ExportQuery
from export_pipeline.exports.manifest import read_manifest
from export_pipeline.exports.requests import ExportRequest, ExportState, ExportStore, request_from_row
from export_pipeline.exports.serialize import concatenated, json_lines
from export_pipeline.exports.spec import parse_spec
from export_pipeline.models.events import events_model
from export_pipeline.settings import Settings
from export_pipeline.usage.service_ping import latest_payload, record_api_request

log = logging.getLogger(__name__)


class ApiError(ExportPipelineError):
    """An error with an explicit HTTP status (and optional Retry-After)."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None, details=None):
        super().__init__(message, details=details)
        self.status = status
        self.code = code
        self.retry_after = retry_after


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource: Literal["events", "insight", "dashboard"] = "events"
    target_id: str | None = Field(None, max_length=32, description="The insight or dashboard to export")
    format: Literal["ndjson", "json", "csv", "parquet", "xlsx", "png"] = "ndjson"
    width: int | None = Field(None, ge=400, le=3000, description="PNG width (default 800 insight, 1920 dashboard)")
    compression: Literal["gzip", "zstd", "none"] | None = None
    date_from: str | None = Field(None, description="ISO 8601 date or datetime, inclusive (UTC if naive)")
    date_to: str | None = Field(None, description="ISO 8601; exclusive, a bare date includes that day")
    events: list[str] = Field(default_factory=list, max_length=100)
    notify_email: OptionalEmail = Field(None, max_length=254, description="Email the result here (default: yours)")


@dataclass(frozen=True)
class Caller:
    user: str


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    deps = build_deps(settings)
    app = FastAPI(
        title="export-pipeline API",
        version="1",
        description="Request exports of product-analytics events and page through events. "
        "Authenticate with `Authorization: Bearer <personal access token>`; Maintainer or higher on the project.",
    )
    _install_error_handlers(app)
    _record_usage(app, deps.store.engine)

    def caller(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        user = authenticate(deps.store.engine, token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise ApiError(401, "unauthorized", "A valid personal access token is required (Authorization: Bearer …).")
        request.state.user = user
        return Caller(user)

    # The dependency below runs before the endpoint's own parameters are validated, so it carries the bounds.
    ProjectId = Annotated[int, Path(gt=0, lt=2**63)]

    def maintainer_of(project_id: ProjectId, who: Annotated[Caller, Depends(caller)]) -> Caller:
        require_project_role(deps, project_id, who.user, action="exporting events")
        return who

    Maintainer = Annotated[Caller, Depends(maintainer_of)]
    install_pages(app, deps.store.engine, caller)
    install_insight_routes(app, deps, caller, require_project_role)
    install_embed_routes(app, deps, caller, require_project_role)
    install_subscription_routes(app, deps, caller, require_project_role)

    @app.post("/api/v1/projects/{project_id}/exports", status_code=202)
    def create_export(project_id: ProjectId, body: ExportCreate, who: Maintainer, request: Request) -> JSONResponse:
        spec = parse_spec(
            project_id=project_id, requested_by=who.user, format=body.format, compression=body.compression,
            resource=body.resource, target_id=body.target_id, width=body.width,
            date_from=body.date_from, date_to=body.date_to, events=body.events,
        )
        store = deps.store
        in_flight_exports = _in_flight(store, project_id)
        for existing in in_flight_exports:
            if existing.spec == spec:
                return _export_response(deps, existing, request, status=200)
        in_flight = len(in_flight_exports)
        if in_flight >= settings.api_max_in_flight_exports:
            raise ApiError(
                429, "too_many_exports",
                f"Project {project_id} already has {in_flight} exports queued or running "
                f"(limit {settings.api_max_in_flight_exports}).",
                retry_after=30,
            )
        created = store.create(spec, source="api", notify_email=body.notify_email)
        return _export_response(deps, created, request, status=202)

    @app.get("/api/v1/projects/{project_id}/exports")
    def list_exports(
        project_id: ProjectId, who: Maintainer, request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict:
        after = _decode_cursor(cursor, ("created_at", "id")) if cursor else None
        query = sa.select(export_requests).where(export_requests.c.project_id == project_id)
        if after:
            created = datetime.fromisoformat(after["created_at"])
            query = query.where(
                sa.or_(export_requests.c.created_at < created,
                       sa.and_(export_requests.c.created_at == created, export_requests.c.id < after["id"]))
            )
        query = query.order_by(export_requests.c.created_at.desc(), export_requests.c.id.desc()).limit(limit + 1)
        with deps.store.engine.connect() as conn:
            rows = [request_from_row(row) for row in conn.execute(query).all()]
        page, more = rows[:limit], len(rows) > limit
        next_cursor = (
            _encode_cursor({"created_at": page[-1].created_at.isoformat(), "id": page[-1].id}) if more else None
        )
        return {"data": [export_resource(deps, r, request) for r in page], "next_cursor": next_cursor}

    @app.get("/api/v1/projects/{project_id}/exports/{export_id}")
    def get_export(project_id: ProjectId, export_id: str, who: Maintainer, request: Request) -> dict:
        return export_resource(deps, _export_of(deps, project_id, export_id), request)

    @app.get("/api/v1/projects/{project_id}/exports/{export_id}/files/{name}", response_model=None)
    def download_file(project_id: ProjectId, export_id: str, name: str, who: Maintainer) -> Response:
        export = _export_of(deps, project_id, export_id)
        if export.state in (ExportState.QUEUED, ExportState.RUNNING):
            raise ApiError(409, "export_not_ready", f"Export {export_id} is {export.state.value}; files are not ready.",
                           retry_after=5)
        if export.state is ExportState.EXPIRED or (export.expires_at and export.expires_at <= now_utc()):
            raise ApiError(410, "export_expired", f"Export {export_id} has expired and its files were deleted.")
        if export.state is not ExportState.SUCCEEDED:
            raise ApiError(409, "export_failed", f"Export {export_id} failed: {export.error}")
        manifest = read_manifest(deps.storage, export.manifest_key)  # type: ignore[arg-type]
        if name not in {f["name"] for f in manifest["files"]} | {"manifest.json"}:
            raise NotFound(f"Export {export_id} has no file {name!r}.")
        key = f"{export.storage_prefix}/{name}"
        if deps.storage.presigns_downloads:
            return RedirectResponse(deps.storage.download_url(key, expires_at=export.expires_at), status_code=302)  # type: ignore[arg-type]
        reader = deps.storage.open_reader(key)
        return StreamingResponse(
            iter(lambda: reader.read(1024 * 1024), b""),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @app.delete("/api/v1/projects/{project_id}/exports/{export_id}")
    def delete_export(project_id: ProjectId, export_id: str, who: Maintainer, request: Request) -> dict:
        export = _export_of(deps, project_id, export_id)
        if export.state in (ExportState.QUEUED, ExportState.RUNNING):
            deps.store.cancel(export_id)
            if export.run_id:
                _terminate_run(export.run_id)
        deps.storage.delete_prefix(export.storage_prefix)
        if export.state is ExportState.SUCCEEDED:
            deps.store.mark_expired(export_id)
        return export_resource(deps, deps.store.require(export_id), request)

    @app.get("/api/v1/projects/{project_id}/events")
    def list_events(
        project_id: ProjectId, who: Maintainer,
        date_from: Annotated[str | None, Query(max_length=40)] = None,
        date_to: Annotated[str | None, Query(max_length=40)] = None,
        event: Annotated[list[str] | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
    ) -> Response:
        spec = parse_spec(project_id=project_id, requested_by=who.user, date_from=date_from, date_to=date_to,
                          events=event or [])
        state = _decode_cursor(cursor, ("as_of", "ts", "uuid")) if cursor else None
        try:
            as_of = datetime.fromisoformat(state["as_of"]) if state else now_utc()
            after = (datetime.fromisoformat(state["ts"]), state["uuid"]) if state else None
        except (TypeError, ValueError):
            raise InvalidRequest("Invalid cursor.", details={"cursor": "not a cursor from this API"}) from None
        query = ExportQuery(events_model(deps.table), spec, as_of)
        sql, params = query.chunk_sql(after=after, limit=limit)
        with deps.clickhouse.session(f"api events project {project_id}") as session:
            page = session.client.query_arrow(sql, parameters=params, settings=QUERY_SETTINGS)
        import polars as pl

        frame = pl.from_arrow(page)
        body = bytes(concatenated(json_lines(query.model, frame, terminator=","))).removesuffix(b",")  # type: ignore[arg-type]
        next_cursor = None
        if page.num_rows >= limit:
            last = page.slice(page.num_rows - 1, 1).select(["timestamp", "uuid"]).to_pylist()[0]
            next_cursor = _encode_cursor(
                {"as_of": as_of.isoformat(), "ts": last["timestamp"].isoformat(), "uuid": last["uuid"]}
            )
        payload = b'{"data":[' + body + b'],"next_cursor":' + json.dumps(next_cursor).encode() + b"}"
        return Response(payload, media_type="application/json")

    @app.get("/api/v1/usage/service_ping")
    def get_service_ping(who: Annotated[Caller, Depends(caller)]) -> dict:
        if who.user not in settings.admin_users:
            raise ApiError(403, "forbidden", "Only instance administrators (EXPORT_ADMIN_USERS) may read Service Ping.")
        payload = latest_payload(deps.store.engine)
        if payload is None:
            raise NotFound("No Service Ping has been computed yet; it runs weekly (materialize `service_ping` in Dagster).")
        return payload

    return app


def _record_usage(app: FastAPI, engine: sa.Engine) -> None:
    """Record every API request (route template, status, user) for Service Ping."""

    def save(request: Request, status: int) -> None:
        route = request.scope.get("route")
        if route is None or not request.url.path.startswith("/api/"):
            return
        try:
            record_api_request(engine, endpoint=f"{request.method} {route.path}", status=status,
                               user=getattr(request.state, "user", None), at=now_utc())
        except Exception:  # usage must never break a request
            log.exception("recording API usage failed")

    @app.middleware("http")
    async def record(request: Request, call_next):
        try:
            response = await call_next(request)
        except Exception:
            save(request, 500)  # the outermost handler turns it into our 500 response
            raise
        save(request, response.status_code)
        return response


def require_project_role(deps: ExportDeps, project_id: int, user: str, *, action: str, required: Role = EXPORT_ROLE) -> None:
    """404 for non-members (existence not revealed), 403 naming the role for members below it."""
    try:
        require_role(deps.roles, deps.store.engine, project_id, user, action=action, required=required)
    except AccessDenied as denied:
        if denied.details.get("access_level") is None:
            raise NotFound(f"Project {project_id} not found.") from None
        raise


def _in_flight(store: ExportStore, project_id: int) -> list[ExportRequest]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(export_requests).where(
                export_requests.c.project_id == project_id,
                export_requests.c.state.in_([ExportState.QUEUED.value, ExportState.RUNNING.value]),
            )
        ).all()
    return [request_from_row(row) for row in rows]


def _export_of(deps: ExportDeps, project_id: int, export_id: str) -> ExportRequest:
    export = deps.store.get(export_id)
    if export is None or export.spec.project_id != project_id:
        raise NotFound(f"Export {export_id!r} not found in project {project_id}.")
    return export


def export_resource(deps: ExportDeps, export: ExportRequest, request: Request) -> dict:
    base = f"/api/v1/projects/{export.spec.project_id}/exports/{export.id}"
    files = []
    if export.state is ExportState.SUCCEEDED and export.manifest_key:
        manifest = read_manifest(deps.storage, export.manifest_key)
        files = [{**f, "url": str(request.base_url).rstrip("/") + f"{base}/files/{f['name']}"} for f in manifest["files"]]
    spec = export.spec
    return {
        "id": export.id,
        "project_id": spec.project_id,
        "resource": spec.resource,
        "format": spec.format.value,
        "compression": spec.compression.value,
        **spec.filters(),
        "requested_by": spec.requested_by,
        "status": export.state.value,
        "row_count": export.row_count,
        "byte_count": export.byte_count,
        "files": files,
        "created_at": iso_utc(export.created_at),
        "started_at": iso_utc(export.started_at),
        "finished_at": iso_utc(export.finished_at),
        "expires_at": iso_utc(export.expires_at),
        "error": {"code": export.error_code, "message": export.error} if export.error_code else None,
        "notification": {"email": export.notified_to or export.notify_email, "sent_at": iso_utc(export.notified_at),
                         "error": export.notify_error},
        "url": base,
    }


def _export_response(deps: ExportDeps, export: ExportRequest, request: Request, *, status: int) -> JSONResponse:
    resource = export_resource(deps, export, request)
    return JSONResponse(resource, status_code=status, headers={"Location": resource["url"]})




def _encode_cursor(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, keys: tuple[str, ...]) -> dict:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(state, dict) or set(state) != set(keys) or not all(isinstance(v, str) for v in state.values()):
            raise ValueError
        return state
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("Invalid cursor.", details={"cursor": "not a cursor from this API"}) from None


def _terminate_run(run_id: str) -> None:
    """Best effort: stop the Dagster run writing a canceled export (its cleanup removes partial files)."""
    try:
        from dagster import DagsterInstance

        instance = DagsterInstance.get()
        if instance.run_launcher.terminate(run_id):
            return
        log.warning("Dagster could not terminate run %s", run_id)
    except Exception:  # the export is canceled in our state either way
        log.exception("terminating run %s failed", run_id)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ExportPipelineError)
    def pipeline_error(_request: Request, error: ExportPipelineError) -> JSONResponse:
        if isinstance(error, ApiError):
            status, code = error.status, error.code
        else:
            status = status_of(error)
            code = error.code
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        retry_after = getattr(error, "retry_after", None) or (5 if isinstance(error, EngineBusy) else None)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        message = f"{error.message} {error.hint}" if error.hint else error.message
        return JSONResponse(error_body(code, message, error.details), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        fields = {".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path")) or "body": e["msg"]
                  for e in error.errors()}
        message = "Invalid request: " + "; ".join(f"{k}: {v}" for k, v in fields.items())
        return JSONResponse(error_body("invalid_request", message, fields), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code)

    @app.exception_handler(Exception)
    def unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled API error")
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side; it has been logged. Try again."),
            status_code=500,
        )
