"""Insights and dashboards over HTTP: members read, Maintainer or higher change."""

from typing import Annotated

from fastapi import Depends, FastAPI, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.accounts.roles import Role
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.insights.queries import compute
from export_pipeline.insights.store import InsightStore, Tile

ProjectId = Annotated[int, Path(gt=0, lt=2**63)]


class InsightBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=10_000)
    query: dict


class InsightPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=10_000)
    query: dict | None = None


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


def install_insight_routes(app: FastAPI, deps: ExportDeps, caller, require_project_role) -> None:
    store = InsightStore(deps.store.engine)
    base = "/api/v1/projects/{project_id}"

    def reader(project_id: ProjectId, who=Depends(caller)):  # noqa: B008 (FastAPI's dependency style)
        require_project_role(deps, project_id, who.user, action="viewing insights", required=Role.GUEST)
        return who

    def editor(project_id: ProjectId, who=Depends(caller)):  # noqa: B008
        require_project_role(deps, project_id, who.user, action="changing insights and dashboards")
        return who

    Reader = Annotated[object, Depends(reader)]
    Editor = Annotated[object, Depends(editor)]

    @app.get(f"{base}/insights")
    def list_insights(project_id: ProjectId, who: Reader) -> dict:
        return {"data": [insight.to_json() for insight in store.list_insights(project_id)]}

    @app.post(f"{base}/insights", status_code=201)
    def create_insight(project_id: ProjectId, body: InsightBody, who: Editor) -> dict:
        return store.create_insight(project_id, name=body.name, description=body.description, query=body.query,
                                    created_by=who.user).to_json()  # type: ignore[attr-defined]

    @app.get(f"{base}/insights/{{insight_id}}")
    def get_insight(project_id: ProjectId, insight_id: str, who: Reader) -> dict:
        return store.insight(project_id, insight_id).to_json()

    @app.patch(f"{base}/insights/{{insight_id}}")
    def update_insight(project_id: ProjectId, insight_id: str, body: InsightPatch, who: Editor) -> dict:
        return store.update_insight(project_id, insight_id, name=body.name, description=body.description,
                                    query=body.query).to_json()

    @app.delete(f"{base}/insights/{{insight_id}}", status_code=204)
    def delete_insight(project_id: ProjectId, insight_id: str, who: Editor) -> Response:
        store.delete_insight(project_id, insight_id)
        return Response(status_code=204)

    @app.get(f"{base}/insights/{{insight_id}}/result")
    def insight_result(project_id: ProjectId, insight_id: str, who: Reader) -> dict:
        insight = store.insight(project_id, insight_id)
        with deps.clickhouse.session(f"insight {insight_id}") as session:
            result = compute(session, deps.table, project_id, insight.query)
        return {"insight_id": insight.id, "kind": result.kind, "columns": list(result.columns),
                "rows": [list(row) for row in result.rows]}

    @app.get(f"{base}/dashboards")
    def list_dashboards(project_id: ProjectId, who: Reader) -> dict:
        return {"data": [dashboard.to_json() for dashboard in store.list_dashboards(project_id)]}

    @app.post(f"{base}/dashboards", status_code=201)
    def create_dashboard(project_id: ProjectId, body: DashboardBody, who: Editor) -> dict:
        return store.create_dashboard(project_id, name=body.name, description=body.description, tiles=body.tiles,
                                      created_by=who.user).to_json()  # type: ignore[attr-defined]

    @app.get(f"{base}/dashboards/{{dashboard_id}}")
    def get_dashboard(project_id: ProjectId, dashboard_id: str, who: Reader) -> dict:
        return store.dashboard(project_id, dashboard_id).to_json()

    @app.patch(f"{base}/dashboards/{{dashboard_id}}")
    def update_dashboard(project_id: ProjectId, dashboard_id: str, body: DashboardPatch, who: Editor) -> dict:
        return store.update_dashboard(project_id, dashboard_id, name=body.name, description=body.description,
                                      tiles=body.tiles).to_json()

    @app.delete(f"{base}/dashboards/{{dashboard_id}}", status_code=204)
    def delete_dashboard(project_id: ProjectId, dashboard_id: str, who: Editor) -> Response:
        store.delete_dashboard(project_id, dashboard_id)
        return Response(status_code=204)
