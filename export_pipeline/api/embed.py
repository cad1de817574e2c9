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

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.accounts.roles import Role
from export_pipeline.accounts.tokens import authenticate
from export_pipeline.api.dependencies import (
    Caller,
    Deps,
    Events,
    Insights,
    ProjectId,
    presented_token,
    require,
    require_project_role,
)
from export_pipeline.api.errors import message_of, status_of
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.reports import (
    CREATED_SHARE_LINK,
    DASHBOARD_PAGE,
    INSIGHT_PAGE,
    REVOKED_SHARE_LINK,
    SHARE_LINK_BODY,
    SHARE_LINK_LIST,
)
from export_pipeline.api.responses import MEMBER_ERRORS, error_responses
from export_pipeline.api.schemas import page_model, record_model
from export_pipeline.embed.page import EmbedOptions, compute_view, error_page_html, page_headers, page_html
from export_pipeline.embed.share import ShareLink, ShareLinks, embed_path
from export_pipeline.errors import AccessDenied, ExportPipelineError, NotLoggedIn
from export_pipeline.insights.store import InsightStore

router = APIRouter()
# A page answers its errors as a page too (embed/page.py error_page_html).
PAGE_ERRORS: dict[int | str, dict] = {"4XX": {
    "description": "A page saying why: 401 log in, 403 no access, 404, 410 link revoked or expired, 422 bad option",
    "content": {"text/html": {}}}}
SHARING_ERRORS = error_responses(*MEMBER_ERRORS)


class SharingDisabled(AccessDenied):
    code = "sharing_disabled"


PAGE_TITLES = {401: "Log in to see this page", 403: "No access", 404: "Not found", 410: "Link no longer valid",
               422: "Invalid page options", 503: "Temporarily unavailable"}

Theme = Annotated[str | None, Query(description="light or dark")]
Width = Annotated[str | None, Query(description="Page width in pixels, 400-3000 (default: the window's)")]
Flag = Annotated[str | None, Query(description="true or false")]


def page_query(theme: Theme = None, width: Width = None, whitelabel: Flag = None,
               readonly: Flag = None) -> dict[str, str | None]:
    """The page options as given: parsed inside the page, so that a bad one answers with an error page."""
    return {"theme": theme, "width": width, "whitelabel": whitelabel, "readonly": readonly}


PageQuery = Annotated[dict[str, str | None], Depends(page_query)]


class EmbedPages:
    """Renders an embed page, or the error page that stands in for it, with the embed headers."""

    def __init__(self, deps: Deps, table: Events, insights: Insights):
        self.deps, self.table, self.insights = deps, table, insights
        self.headers = page_headers(deps.settings.embed_allowed_origins)

    def page(self, project_id: int, resource: str, target_id: str, options: EmbedOptions) -> HTMLResponse:
        with self.deps.clickhouse.session(f"embed page of {resource} {target_id}") as session:
            view = compute_view(session, self.table, self.insights, project_id, resource, target_id)
        return HTMLResponse(page_html(view, options), headers=self.headers)

    def error_page(self, error: ExportPipelineError) -> HTMLResponse:
        status = status_of(error)
        message = message_of(error) if status != 500 else "Something went wrong on our side; it has been logged. Try again."
        return HTMLResponse(error_page_html(PAGE_TITLES.get(status, "Error"), message), status_code=status,
                            headers=self.headers)

    def shared(self, resource: str, token: str, query: dict[str, str | None]) -> HTMLResponse:
        try:
            options = EmbedOptions.parse(**query)
            if not self.deps.settings.sharing_enabled:
                raise SharingDisabled("Sharing is turned off on this server, so share links do not open.",
                                      hint="Ask a member of the project to show it to you, or an administrator "
                                      "to turn sharing on (EXPORT_SHARING_ENABLED).")
            link = ShareLinks(self.deps.engine).resolve(resource, token)
            return self.page(link.project_id, resource, link.target_id, options)
        except ExportPipelineError as error:
            return self.error_page(error)

    def for_member(self, request: Request, project_id: int, resource: str, target_id: str,
                   query: dict[str, str | None]) -> HTMLResponse:
        try:
            options = EmbedOptions.parse(**query)
            token = presented_token(request)
            user = authenticate(self.deps.engine, token) if token else None
            if user is None:
                raise NotLoggedIn("This page is for members of the project.",
                                  hint="Log in to the product, or ask a member for a share link.")
            require_project_role(self.deps, project_id, user, action=f"viewing {resource}s", required=Role.GUEST)
            return self.page(project_id, resource, target_id, options)
        except ExportPipelineError as error:
            return self.error_page(error)


Pages = Annotated[EmbedPages, Depends(EmbedPages)]


@router.get("/embed/insights/{token}", response_class=HTMLResponse, tags=["embed"], responses=PAGE_ERRORS,
            summary="Embed page of a shared insight",
            openapi_extra=examples(response=INSIGHT_PAGE, response_type="text/html"))
def show_shared_insight(token: str, query: PageQuery, pages: Pages) -> HTMLResponse:
    """The embed page of an insight, for anyone with its share token."""
    return pages.shared("insight", token, query)


@router.get("/embed/dashboards/{token}", response_class=HTMLResponse, tags=["embed"], responses=PAGE_ERRORS,
            summary="Embed page of a shared dashboard",
            openapi_extra=examples(response=DASHBOARD_PAGE, response_type="text/html"))
def show_shared_dashboard(token: str, query: PageQuery, pages: Pages) -> HTMLResponse:
    """The embed page of a dashboard (every tile), for anyone with its share token."""
    return pages.shared("dashboard", token, query)


@router.get("/projects/{project_id}/embed/insights/{insight_id}", response_class=HTMLResponse, tags=["embed"],
            responses=PAGE_ERRORS, summary="Embed page of an insight, for members",
            openapi_extra=examples(response=INSIGHT_PAGE, response_type="text/html"))
def show_member_insight(request: Request, project_id: ProjectId, insight_id: str, query: PageQuery,
                        pages: Pages) -> HTMLResponse:
    """The embed page of an insight for members of the project (Guest or higher), signed in by the bearer token
    or the `export_pipeline_token` cookie the host product sets; no share link needed."""
    return pages.for_member(request, project_id, "insight", insight_id, query)


@router.get("/projects/{project_id}/embed/dashboards/{dashboard_id}", response_class=HTMLResponse, tags=["embed"],
            responses=PAGE_ERRORS, summary="Embed page of a dashboard, for members",
            openapi_extra=examples(response=DASHBOARD_PAGE, response_type="text/html"))
def show_member_dashboard(request: Request, project_id: ProjectId, dashboard_id: str, query: PageQuery,
                          pages: Pages) -> HTMLResponse:
    """The embed page of a dashboard (every tile) for members of the project (Guest or higher), signed in by the
    bearer token or the `export_pipeline_token` cookie the host product sets; no share link needed."""
    return pages.for_member(request, project_id, "dashboard", dashboard_id, query)


# --- share links ------------------------------------------------------------------------------------

Kind = Literal["insights", "dashboards"]
LinkReader = Annotated[Caller, require(Role.GUEST, action="viewing share links")]
Sharer = Annotated[Caller, require(Role.MAINTAINER, action="sharing insights and dashboards")]
Revoker = Annotated[Caller, require(Role.MAINTAINER, action="revoking share links")]


class ShareLinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: datetime | None = Field(None, description="When the link stops working (none: until revoked)")


ShareLinkOut = record_model(ShareLink, "ShareLink", active=bool)
ShareLinkList = page_model(ShareLinkOut, "ShareLinkList", sharing_enabled=bool)
CreatedShareLink = record_model(ShareLink, "CreatedShareLink", active=bool, token=str, url=str)


def _target(insights: InsightStore, project_id: int, kind: Kind, target_id: str) -> str:
    """The resource a `kind` path names, once the target is known in the project (NotFound otherwise)."""
    resource = kind.removesuffix("s")
    if resource == "insight":
        insights.insight(project_id, target_id)
    else:
        insights.dashboard(project_id, target_id)
    return resource


@router.get("/api/v1/projects/{project_id}/{kind}/{target_id}/share_links", tags=["sharing"],
            responses=SHARING_ERRORS, response_model=ShareLinkList, summary="List share links",
            openapi_extra=examples(response=SHARE_LINK_LIST))
def list_share_links(project_id: ProjectId, kind: Kind, target_id: str, who: LinkReader, deps: Deps,
                     insights: Insights) -> dict:
    """The share links of an insight or dashboard, revoked and expired ones too (`active` says which still
    open), and whether sharing is enabled on this server; for every member. Tokens are never shown again."""
    resource = _target(insights, project_id, kind, target_id)
    return {"data": [link.to_json() for link in ShareLinks(deps.engine).list(project_id, resource, target_id)],
            "sharing_enabled": deps.settings.sharing_enabled}


@router.post("/api/v1/projects/{project_id}/{kind}/{target_id}/share_links", status_code=201, tags=["sharing"],
             responses=SHARING_ERRORS, response_model=CreatedShareLink, summary="Share an insight or dashboard",
             openapi_extra=examples(request=SHARE_LINK_BODY, response=CREATED_SHARE_LINK, status=201))
def create_share_link(request: Request, project_id: ProjectId, kind: Kind, target_id: str, who: Sharer, deps: Deps,
                      insights: Insights, body: ShareLinkBody | None = None) -> dict:
    """A new share link: anyone holding its `url` sees the embed page, without an account, until it expires or
    is revoked. Maintainer or higher, while sharing is enabled (EXPORT_SHARING_ENABLED). The token is in this
    answer only: it is stored as a hash."""
    if not deps.settings.sharing_enabled:
        raise SharingDisabled("Sharing is turned off on this server (EXPORT_SHARING_ENABLED=false).",
                              hint="Ask an administrator to turn it on.")
    resource = _target(insights, project_id, kind, target_id)
    token, link = ShareLinks(deps.engine).create(project_id, resource, target_id, created_by=who.user,
                                                 expires_at=body.expires_at if body else None)
    url = str(request.base_url).rstrip("/") + embed_path(resource, token)
    return {**link.to_json(), "token": token, "url": url}


@router.delete("/api/v1/projects/{project_id}/share_links/{link_id}", tags=["sharing"], responses=SHARING_ERRORS,
               response_model=ShareLinkOut, summary="Revoke a share link",
               openapi_extra=examples(response=REVOKED_SHARE_LINK))
def revoke_share_link(project_id: ProjectId, link_id: str, who: Revoker, deps: Deps) -> dict:
    """The link stops opening at once (its page answers 410); Maintainer or higher. Revoking twice is fine."""
    return ShareLinks(deps.engine).revoke(project_id, link_id).to_json()
