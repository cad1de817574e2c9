"""What a route declares it needs: the app's connections, the stores built on them, the caller, and the
caller's role on the project (`who: Maintainer`, with `Maintainer = Annotated[Caller, require(...)]`)."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from export_pipeline.accounts.roles import Role, require_role
from export_pipeline.accounts.tokens import authenticate
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.deps import AppDeps
from export_pipeline.errors import AccessDenied, NotFound, NotLoggedIn
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.insights.store import InsightStore

# The role check below runs before the route's own parameters are validated, so the id carries its bounds.
ProjectId = Annotated[int, Path(gt=0, lt=2**63, examples=[1])]

# Where the host product puts a logged-in user's token for the pages it frames (never read by the JSON API,
# whose POSTs would otherwise be open to cross-site requests).
TOKEN_COOKIE = "export_pipeline_token"


# The providers without I/O are `async`, so FastAPI calls them in place rather than on a worker thread.


async def app_deps(request: Request) -> AppDeps:
    """Built once by create_app."""
    return request.app.state.deps


Deps = Annotated[AppDeps, Depends(app_deps)]


async def export_deps(deps: Deps) -> ExportDeps:
    return ExportDeps.of(deps)


async def events_table(deps: Deps) -> EventsTable:
    return EventsTable.from_settings(deps.settings)


async def insight_store(deps: Deps) -> InsightStore:
    return InsightStore(deps.engine)


Exports = Annotated[ExportDeps, Depends(export_deps)]
Events = Annotated[EventsTable, Depends(events_table)]
Insights = Annotated[InsightStore, Depends(insight_store)]


@dataclass(frozen=True)
class Caller:
    user: str


def presented_token(request: Request) -> str:
    """For the pages: the `Authorization: Bearer` token, else the token cookie, else ""."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    return request.cookies.get(TOKEN_COOKIE, "")


# The OpenAPI security scheme (the Authorize button of /docs). Not auto_error: a missing token answers our 401.
bearer = HTTPBearer(scheme_name="PersonalAccessToken", auto_error=False,
                    description="A personal access token: `export-pipeline tokens create --user <you>`.")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def caller(request: Request, deps: Deps, credentials: Bearer) -> Caller:
    token = credentials.credentials.strip() if credentials else ""
    return _authenticated(request, deps, token)


def link_caller(request: Request, deps: Deps, _credentials: Bearer) -> Caller:
    """For downloads only: the bearer token, else the token cookie, so a plain link (the browser saving the file
    itself, nothing held in page memory) downloads. GET and SameSite=Strict: no cross-site request rides it."""
    return _authenticated(request, deps, presented_token(request))


def _authenticated(request: Request, deps: AppDeps, token: str) -> Caller:
    user = authenticate(deps.engine, token) if token else None
    if user is None:
        raise NotLoggedIn("A valid personal access token is required (Authorization: Bearer …).")
    request.state.user = user  # for the usage record of this request
    return Caller(user)


CurrentCaller = Annotated[Caller, Depends(caller)]
LinkCaller = Annotated[Caller, Depends(link_caller)]


def require_project_role(deps: AppDeps, project_id: int, user: str, *, action: str, required: Role) -> None:
    """404 for non-members (existence not revealed), 403 naming the role for members below it."""
    try:
        require_role(deps.roles, deps.engine, project_id, user, action=action, required=required)
    except AccessDenied as denied:
        if denied.details.get("access_level") is None:
            raise NotFound(f"Project {project_id} not found.") from None
        raise


def require(role: Role, *, action: str, by_link: bool = False):
    """A dependency: the caller, once they hold `role` on the path's project; `action` names the refusal.
    `by_link`: the token cookie is accepted too (downloads)."""

    def member_with_role(project_id: ProjectId, who: CurrentCaller, deps: Deps) -> Caller:
        require_project_role(deps, project_id, who.user, action=action, required=role)
        return who

    def link_member_with_role(project_id: ProjectId, who: LinkCaller, deps: Deps) -> Caller:
        return member_with_role(project_id, who, deps)

    return Depends(link_member_with_role if by_link else member_with_role)
