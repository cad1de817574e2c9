"""Insights and dashboards over HTTP: members read, Maintainer or higher change.

Both have the same five routes (list, create, get, change, delete) over InsightStore, written once in
`_collection`; an insight also has its computed result.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.accounts.roles import Role
from export_pipeline.api.dependencies import Caller, Deps, Events, Insights, ProjectId, require
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.reports import (
    DASHBOARD,
    DASHBOARD_BODY,
    DASHBOARD_PATCH,
    INSIGHT,
    INSIGHT_BODY,
    INSIGHT_PATCH,
    INSIGHT_RESULT,
)
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


@dataclass(frozen=True)
class Documented:
    """What `/docs` shows of a collection besides its schemas: what one item is, and examples (api/examples)."""

    intro: str
    body: dict
    patch: dict
    item: dict


def _collection(noun: str, body_model: type[BaseModel], patch_model: type[BaseModel], out: type[BaseModel],
                docs: Documented, *, list_all: Callable, create: Callable, get: Callable, update: Callable,
                delete: Callable) -> APIRouter:
    """The five routes of `/{noun}s`; route names (so OpenAPI operation ids) and path names are the noun's."""
    router = APIRouter(prefix=f"/api/v1/projects/{{project_id}}/{noun}s", tags=[f"{noun}s"])
    item = f"/{{{noun}_id}}"
    a_noun = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
    ItemId = Annotated[str, Path(alias=f"{noun}_id", examples=[docs.item["id"]])]

    @router.get("", name=f"list_{noun}s", response_model=page_model(out, f"{noun.capitalize()}List"),
                summary=f"List the project's {noun}s", openapi_extra=examples(response={"data": [docs.item]}),
                description=f"{docs.intro} Every {noun} of the project, oldest first; for every member.")
    def list_items(project_id: ProjectId, who: Reader, store: Insights) -> dict:
        return {"data": [each.to_json() for each in list_all(store, project_id)]}

    @router.post("", status_code=201, name=f"create_{noun}", response_model=out, summary=f"Create {a_noun}",
                 openapi_extra=examples(request=docs.body, response=docs.item, status=201),
                 description=f"{docs.intro} Maintainer or higher; the caller is its creator.")
    def create_item(project_id: ProjectId, body: body_model, who: Editor, store: Insights) -> dict:  # type: ignore[valid-type]
        return create(store, project_id, created_by=who.user, **dict(body)).to_json()

    @router.get(item, name=f"get_{noun}", response_model=out, summary=f"Get {a_noun}",
                openapi_extra=examples(response=docs.item),
                description=f"One {noun} of the project; for every member.")
    def get_item(project_id: ProjectId, item_id: ItemId, who: Reader, store: Insights) -> dict:
        return get(store, project_id, item_id).to_json()

    @router.patch(item, name=f"update_{noun}", response_model=out, summary=f"Change {a_noun}",
                  openapi_extra=examples(request=docs.patch, response={**docs.item, **docs.patch}),
                  description=f"Change the {noun}'s fields given (the others stay as they are); Maintainer or higher.")
    def update_item(project_id: ProjectId, item_id: ItemId, body: patch_model, who: Editor,  # type: ignore[valid-type]
                    store: Insights) -> dict:
        return update(store, project_id, item_id, **dict(body)).to_json()

    @router.delete(item, status_code=204, name=f"delete_{noun}", summary=f"Delete {a_noun}",
                   description=f"Delete the {noun} for good; Maintainer or higher.")
    def delete_item(project_id: ProjectId, item_id: ItemId, who: Editor, store: Insights) -> Response:
        delete(store, project_id, item_id)
        return Response(status_code=204)

    return router


INSIGHTS = Documented("An insight is one question about the project's events (`query`: trends, funnel, table or "
                      "number over a date range), drawn as one chart.", INSIGHT_BODY, INSIGHT_PATCH, INSIGHT)
DASHBOARDS = Documented("A dashboard is a grid of insights (`tiles`: each insight with its width and height, in "
                        "twelfths of the page's width).", DASHBOARD_BODY, DASHBOARD_PATCH, DASHBOARD)

router = APIRouter(responses=error_responses(*MEMBER_ERRORS))
router.include_router(_collection(
    "insight", InsightBody, InsightPatch, InsightOut, INSIGHTS, list_all=InsightStore.list_insights,
    create=InsightStore.create_insight, get=InsightStore.insight, update=InsightStore.update_insight,
    delete=InsightStore.delete_insight,
))


@router.get("/api/v1/projects/{project_id}/insights/{insight_id}/result", tags=["insights"],
            summary="Compute an insight", openapi_extra=examples(response=INSIGHT_RESULT))
def get_insight_result(project_id: ProjectId, insight_id: str, who: Reader, deps: Deps, table: Events,
                       store: Insights) -> InsightResultOut:
    """The insight computed now, as a table: `columns`, then `rows` of values (what its chart draws, and what
    CSV, XLSX and JSON exports of it hold); for every member."""
    insight = store.insight(project_id, insight_id)
    with deps.clickhouse.session(f"insight {insight_id}") as session:
        result = compute(session, table, project_id, insight.query)
    return InsightResultOut(insight_id=insight.id, kind=result.kind, columns=list(result.columns),
                            rows=[list(row) for row in result.rows])


router.include_router(_collection(
    "dashboard", DashboardBody, DashboardPatch, DashboardOut, DASHBOARDS, list_all=InsightStore.list_dashboards,
    create=InsightStore.create_dashboard, get=InsightStore.dashboard, update=InsightStore.update_dashboard,
    delete=InsightStore.delete_dashboard,
))
