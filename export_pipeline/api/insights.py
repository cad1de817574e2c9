"""Insights and dashboards over HTTP: members read, Maintainer or higher change.

Both have the same five routes (list, create, get, change, delete) over InsightStore, written once in
`_collection`; an insight also has its computed result.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.accounts.roles import Role
from export_pipeline.api.dependencies import Caller, Deps, Events, Insights, ProjectId, require
from export_pipeline.api.responses import MEMBER_ERRORS, error_responses
from export_pipeline.api.schemas import page_model, record_model
from export_pipeline.insights.queries import compute
from export_pipeline.insights.store import Dashboard, Insight, InsightStore, Tile

Reader = Annotated[Caller, require(Role.GUEST, action="viewing insights")]
Editor = Annotated[Caller, require(Role.MAINTAINER, action="changing insights and dashboards")]


QUERY_DESCRIPTION = ("The definition: `kind` and its fields, with an absolute range (`date_from`, `date_to`) or a "
                     "relative one (`date_range`: -7d, -4w, -3m, -24h, wtd, mtd, previous_week, previous_month), "
                     "and an optional IANA `timezone` (default UTC)")


class InsightBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=10_000)
    query: dict = Field(description=QUERY_DESCRIPTION)


class InsightPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=10_000)
    query: dict | None = Field(None, description=QUERY_DESCRIPTION)


class DashboardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=10_000)
    tiles: list[Tile] = Field(default_factory=list, max_length=500)


class DashboardPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=10_000)
    tiles: list[Tile] | None = Field(None, max_length=500)


InsightOut = record_model(Insight, "Insight", query=dict[str, Any])
DashboardOut = record_model(Dashboard, "Dashboard")


class InsightResultOut(BaseModel):
    insight_id: str
    kind: str
    columns: list[str]
    rows: list[list[Any]]


def _collection(noun: str, body_model: type[BaseModel], patch_model: type[BaseModel], out: type[BaseModel], *,
                list_all: Callable, create: Callable, get: Callable, update: Callable, delete: Callable) -> APIRouter:
    """The five routes of `/{noun}s`; route names (so OpenAPI operation ids) and path names are the noun's."""
    router = APIRouter(prefix=f"/api/v1/projects/{{project_id}}/{noun}s", tags=[f"{noun}s"])
    item = f"/{{{noun}_id}}"
    ItemId = Annotated[str, Path(alias=f"{noun}_id")]

    @router.get("", name=f"list_{noun}s", response_model=page_model(out, f"{noun.capitalize()}List"))
    def list_items(project_id: ProjectId, who: Reader, store: Insights) -> dict:
        return {"data": [each.to_json() for each in list_all(store, project_id)]}

    @router.post("", status_code=201, name=f"create_{noun}", response_model=out)
    def create_item(project_id: ProjectId, body: body_model, who: Editor, store: Insights) -> dict:  # type: ignore[valid-type]
        return create(store, project_id, created_by=who.user, **dict(body)).to_json()

    @router.get(item, name=f"get_{noun}", response_model=out)
    def get_item(project_id: ProjectId, item_id: ItemId, who: Reader, store: Insights) -> dict:
        return get(store, project_id, item_id).to_json()

    @router.patch(item, name=f"update_{noun}", response_model=out)
    def update_item(project_id: ProjectId, item_id: ItemId, body: patch_model, who: Editor,  # type: ignore[valid-type]
                    store: Insights) -> dict:
        return update(store, project_id, item_id, **dict(body)).to_json()

    @router.delete(item, status_code=204, name=f"delete_{noun}")
    def delete_item(project_id: ProjectId, item_id: ItemId, who: Editor, store: Insights) -> Response:
        delete(store, project_id, item_id)
        return Response(status_code=204)

    return router


router = APIRouter(responses=error_responses(*MEMBER_ERRORS))
router.include_router(_collection(
    "insight", InsightBody, InsightPatch, InsightOut, list_all=InsightStore.list_insights,
    create=InsightStore.create_insight, get=InsightStore.insight, update=InsightStore.update_insight,
    delete=InsightStore.delete_insight,
))


@router.get("/api/v1/projects/{project_id}/insights/{insight_id}/result", tags=["insights"])
def insight_result(project_id: ProjectId, insight_id: str, who: Reader, deps: Deps, table: Events,
                   store: Insights) -> InsightResultOut:
    insight = store.insight(project_id, insight_id)
    with deps.clickhouse.session(f"insight {insight_id}") as session:
        result = compute(session, table, project_id, insight.query)
    return InsightResultOut(insight_id=insight.id, kind=result.kind, columns=list(result.columns),
                            rows=[list(row) for row in result.rows])


router.include_router(_collection(
    "dashboard", DashboardBody, DashboardPatch, DashboardOut, list_all=InsightStore.list_dashboards,
    create=InsightStore.create_dashboard, get=InsightStore.dashboard, update=InsightStore.update_dashboard,
    delete=InsightStore.delete_dashboard,
))
