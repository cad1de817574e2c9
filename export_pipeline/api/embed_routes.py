"""Embed pages and share links.

- `/embed/insights/{token}`, `/embed/dashboards/{token}`: anyone holding a share token, while sharing is
  enabled (EXPORT_SHARING_ENABLED) and the link is neither revoked nor expired.
- `/projects/{project_id}/embed/insights/{id}`, `.../embed/dashboards/{id}`: members of the project, with a
  personal access token as `Authorization: Bearer …` or in the `export_pipeline_token` cookie (set by the host
  product for its logged-in users).
- `/api/v1/projects/{project_id}/{insights|dashboards}/{id}/share_links`: list (members), create (Maintainer+;
  the token is in the answer once), and `DELETE /api/v1/projects/{project_id}/share_links/{id}` revokes.

Every page, error pages included, carries `Content-Security-Policy: frame-ancestors` with this site and
EXPORT_EMBED_ALLOWED_ORIGINS, so only those sites may frame it. Errors on pages are readable HTML pages.
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.accounts.roles import Role
from export_pipeline.accounts.tokens import authenticate
from export_pipeline.api.statuses import status_of
from export_pipeline.embed.page import (
    STATIC_DIR,
    EmbedOptions,
    compute_view,
    error_page_html,
    page_headers,
    page_html,
)
from export_pipeline.embed.share import ShareLinks, embed_path
from export_pipeline.errors import AccessDenied, ExportPipelineError, NotLoggedIn
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.insights.store import InsightStore

ProjectId = Annotated[int, Path(gt=0, lt=2**63)]


class SharingDisabled(AccessDenied):
    code = "sharing_disabled"


TOKEN_COOKIE = "export_pipeline_token"
PAGE_TITLES = {401: "Log in to see this page", 403: "No access", 404: "Not found", 410: "Link no longer valid", 422: "Invalid page options",
               503: "Temporarily unavailable"}


class ShareLinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: datetime | None = Field(None, description="When the link stops working (none: until revoked)")


def install_embed_routes(app: FastAPI, deps: ExportDeps, caller, require_project_role) -> None:
    settings = deps.settings
    headers = page_headers(settings.embed_allowed_origins)  # also validates the configured origins at start-up
    insights = InsightStore(deps.store.engine)
    links = ShareLinks(deps.store.engine)
    app.mount("/embed/static", StaticFiles(directory=STATIC_DIR), name="embed-static")

    def page(project_id: int, resource: str, target_id: str, options: EmbedOptions) -> HTMLResponse:
        with deps.clickhouse.session(f"embed page of {resource} {target_id}") as session:
            view = compute_view(session, deps.table, insights, project_id, resource, target_id)
        return HTMLResponse(page_html(view, options), headers=headers)

    def error_page(error: ExportPipelineError) -> HTMLResponse:
        status = status_of(error)
        message = f"{error.message} {error.hint}" if error.hint else error.message
        if status == 500:
            message = "Something went wrong on our side; it has been logged. Try again."
        return HTMLResponse(error_page_html(PAGE_TITLES.get(status, "Error"), message), status_code=status,
                            headers=headers)

    def options_of(theme, width, whitelabel, readonly) -> EmbedOptions:
        return EmbedOptions.parse(theme=theme, width=width, whitelabel=whitelabel, readonly=readonly)

    Theme = Annotated[str | None, Query(description="light or dark")]
    Width = Annotated[str | None, Query(description="Page width in pixels, 400-3000 (default: the window's)")]
    Flag = Annotated[str | None, Query(description="true or false")]

    def shared_page(resource: str, token: str, theme, width, whitelabel, readonly) -> HTMLResponse:
        try:
            options = options_of(theme, width, whitelabel, readonly)
            if not settings.sharing_enabled:
                raise SharingDisabled("Sharing is turned off on this server, so share links do not open.",
                                      hint="Ask a member of the project to show it to you, or an administrator "
                                      "to turn sharing on (EXPORT_SHARING_ENABLED).")
            link = links.resolve(resource, token)
            return page(link.project_id, resource, link.target_id, options)
        except ExportPipelineError as error:
            return error_page(error)

    @app.get("/embed/insights/{token}", response_class=HTMLResponse, tags=["embed"])
    def shared_insight(token: str, theme: Theme = None, width: Width = None, whitelabel: Flag = None,
                       readonly: Flag = None) -> HTMLResponse:
        """The embed page of an insight, for anyone with its share token."""
        return shared_page("insight", token, theme, width, whitelabel, readonly)

    @app.get("/embed/dashboards/{token}", response_class=HTMLResponse, tags=["embed"])
    def shared_dashboard(token: str, theme: Theme = None, width: Width = None, whitelabel: Flag = None,
                         readonly: Flag = None) -> HTMLResponse:
        """The embed page of a dashboard (every tile), for anyone with its share token."""
        return shared_page("dashboard", token, theme, width, whitelabel, readonly)

    def member_page(request: Request, project_id: int, resource: str, target_id: str, theme, width, whitelabel,
                    readonly) -> HTMLResponse:
        try:
            options = options_of(theme, width, whitelabel, readonly)
            scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
            token = bearer.strip() if scheme.lower() == "bearer" else request.cookies.get(TOKEN_COOKIE, "")
            user = authenticate(deps.store.engine, token) if token else None
            if user is None:
                raise NotLoggedIn("This page is for members of the project.",
                                  hint="Log in to the product, or ask a member for a share link.")
            require_project_role(deps, project_id, user, action=f"viewing {resource}s", required=Role.GUEST)
            return page(project_id, resource, target_id, options)
        except ExportPipelineError as error:
            return error_page(error)

    @app.get("/projects/{project_id}/embed/insights/{insight_id}", response_class=HTMLResponse, tags=["embed"])
    def member_insight(request: Request, project_id: ProjectId, insight_id: str, theme: Theme = None,
                       width: Width = None, whitelabel: Flag = None, readonly: Flag = None) -> HTMLResponse:
        return member_page(request, project_id, "insight", insight_id, theme, width, whitelabel, readonly)

    @app.get("/projects/{project_id}/embed/dashboards/{dashboard_id}", response_class=HTMLResponse, tags=["embed"])
    def member_dashboard(request: Request, project_id: ProjectId, dashboard_id: str, theme: Theme = None,
                         width: Width = None, whitelabel: Flag = None, readonly: Flag = None) -> HTMLResponse:
        return member_page(request, project_id, "dashboard", dashboard_id, theme, width, whitelabel, readonly)

    # --- share links --------------------------------------------------------------------------------

    base = "/api/v1/projects/{project_id}"

    def target(project_id: int, kind: str, target_id: str) -> str:
        resource = kind.removesuffix("s")
        if resource == "insight":
            insights.insight(project_id, target_id)  # NotFound for another project's insight
        else:
            insights.dashboard(project_id, target_id)
        return resource

    @app.get(f"{base}/{{kind}}/{{target_id}}/share_links", tags=["sharing"])
    def list_share_links(project_id: ProjectId, kind: Literal["insights", "dashboards"], target_id: str,
                         who=Depends(caller)) -> dict:  # noqa: B008 (FastAPI's dependency style)
        require_project_role(deps, project_id, who.user, action="viewing share links", required=Role.GUEST)
        resource = target(project_id, kind, target_id)
        return {"data": [link.to_json() for link in links.list(project_id, resource, target_id)],
                "sharing_enabled": settings.sharing_enabled}

    @app.post(f"{base}/{{kind}}/{{target_id}}/share_links", status_code=201, tags=["sharing"])
    def create_share_link(request: Request, project_id: ProjectId, kind: Literal["insights", "dashboards"],
                          target_id: str, body: ShareLinkBody | None = None,
                          who=Depends(caller)) -> dict:  # noqa: B008
        require_project_role(deps, project_id, who.user, action="sharing insights and dashboards")
        if not settings.sharing_enabled:
            raise SharingDisabled("Sharing is turned off on this server (EXPORT_SHARING_ENABLED=false).",
                                  hint="Ask an administrator to turn it on.")
        resource = target(project_id, kind, target_id)
        token, link = links.create(project_id, resource, target_id, created_by=who.user,
                                   expires_at=body.expires_at if body else None)
        url = str(request.base_url).rstrip("/") + embed_path(resource, token)
        return {**link.to_json(), "token": token, "url": url}

    @app.delete(f"{base}/share_links/{{link_id}}", tags=["sharing"])
    def revoke_share_link(project_id: ProjectId, link_id: str, who=Depends(caller)) -> dict:  # noqa: B008
        require_project_role(deps, project_id, who.user, action="revoking share links")
        return links.revoke(project_id, link_id).to_json()
