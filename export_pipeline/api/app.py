"""The HTTP API: `/api/v1`, personal access tokens, project roles, one error shape; and the pages it serves.

Errors are always `{"error": {"code", "message", "hint", "details"}}` (declared by api/responses.py). A
project the caller is not a member of answers 404 (its existence is not revealed); a member below the role
a route needs gets 403 naming it.
Routes live in one router per domain; what they need comes from api/dependencies.py.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from export_pipeline.api import (
    api_docs,
    body_limit,
    downloads,
    embed,
    events,
    export_page,
    exports,
    insights,
    subscriptions,
    usage,
)
from export_pipeline.api.daemon import DaemonWatch
from export_pipeline.api.errors import error_body, status_of
from export_pipeline.api.responses import declare_body_limit
from export_pipeline.api.routers import batch_exports, cohorts, people, recordings
from export_pipeline.deps import AppDeps
from export_pipeline.embed.page import STATIC_DIR, page_headers
from export_pipeline.errors import EngineBusy, ExportPipelineError
from export_pipeline.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    page_headers(settings.embed_allowed_origins)  # a bad EXPORT_EMBED_ALLOWED_ORIGINS stops the start
    app = FastAPI(
        title="export-pipeline API",
        version="1",
        description="Request exports of product-analytics events and page through events. "
        "Authenticate with `Authorization: Bearer <personal access token>`; Maintainer or higher on the project.",
        docs_url=None, redoc_url=None, generate_unique_id_function=api_docs.operation_id,  # api/api_docs.py
    )
    app.state.deps = AppDeps.from_settings(settings)
    app.state.deps.clickhouse.keep_open("the HTTP API")
    app.state.daemon = DaemonWatch(settings)
    _install_error_handlers(app)
    # Inside the usage middleware (which records the 413), so the route's reads raise through no task group.
    app.add_middleware(body_limit.BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.middleware("http")(usage.record_usage)
    app.mount("/embed/static", StaticFiles(directory=STATIC_DIR), name="embed-static")
    api_docs.serve_static(app)
    for domain in (api_docs, export_page, insights, embed, subscriptions, exports, downloads, events, people, cohorts,
                   recordings, usage, batch_exports):
        app.include_router(domain.router)
    declare_body_limit(app)
    api_docs.restore_example_nulls(app)
    # FastAPI prepares included routes on first use; the schema walks them all, so the first request is not
    # ~100 ms slower than the rest (and a route FastAPI cannot describe fails here, at start).
    app.openapi()
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ExportPipelineError)
    def pipeline_error(_request: Request, error: ExportPipelineError) -> JSONResponse:
        status = status_of(error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        retry_after = getattr(error, "retry_after", None) or (5 if isinstance(error, EngineBusy) else None)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        return JSONResponse(error_body(error.code, error.message, error.details, hint=error.hint),
                            status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        fields = {".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path")) or "body": e["msg"]
                  for e in error.errors()}
        message = "Invalid request: " + "; ".join(f"{k}: {v}" for k, v in fields.items())
        return JSONResponse(error_body("invalid_request", message, fields), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        if isinstance(error, body_limit.BodyTooLarge):
            return body_limit.too_large_response(error.limit)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code)

    @app.exception_handler(Exception)
    def unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled API error")
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side; it has been logged. Try again."),
            status_code=500,
        )
