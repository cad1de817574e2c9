"""The API's own documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), drawn with copies the API serves
itself (`static/vendor`, refreshed by `make vendor-api-docs`): FastAPI's defaults load both from a CDN, which
leaves the pages blank offline. Their Content-Security-Policy keeps them to what this site serves (ReDoc would
fetch its logo from redoc.ly). Operation ids are the route functions' names (`create_export`): stable, and what
generated clients call their methods."""

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from export_pipeline.api.examples import restore_nulls

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/api-docs/static"
VENDOR = f"{STATIC_PATH}/vendor"

router = APIRouter(include_in_schema=False)


def operation_id(route: APIRoute) -> str:
    """The route function's name: snake_case, unique across the app (FastAPI warns about a duplicate)."""
    return route.name


def serve_static(app: FastAPI) -> None:
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="api-docs-static")


def restore_example_nulls(app: FastAPI) -> None:
    """The document with the nulls of its examples (api/examples) back."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return restore_nulls(build())  # cached by FastAPI: after the first call there is nothing left to restore

    app.openapi = openapi  # type: ignore[method-assign]


def _openapi_url(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + (request.app.openapi_url or "/openapi.json")


def _this_site_only(page: HTMLResponse) -> HTMLResponse:
    """`page` with a policy allowing nothing from another site; its inline scripts by their hashes."""
    inline = re.findall(r"<script>(.*?)</script>", bytes(page.body).decode(), re.DOTALL)
    hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
                     for script in inline)
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self'")
    return page


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return _this_site_only(get_swagger_ui_html(
        openapi_url=_openapi_url(request), title=f"{request.app.title} · Swagger UI",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js", swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/favicon-32x32.png", oauth2_redirect_url=None,
        # The token typed into Authorize survives a reload of the page.
        swagger_ui_parameters={"persistAuthorization": True, "displayOperationId": True},
    ))


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _this_site_only(get_redoc_html(
        openapi_url=_openapi_url(request), title=f"{request.app.title} · ReDoc",
        redoc_js_url=f"{VENDOR}/redoc.standalone.js", redoc_favicon_url=f"{VENDOR}/favicon-32x32.png",
        with_google_fonts=False,
    ))
