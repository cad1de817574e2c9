"""Batch exports over HTTP, for Maintainers and Owners of the project.

`/api/v1/projects/{project_id}/batch_exports[/{id}]`: list, create, show, delete; `.../{id}/pause` and
`.../{id}/resume` (resuming re-runs the failed intervals first); `.../{id}/runs`: one record per interval
(state, rows, bytes, files, error); `.../{id}/backfills`: export a range again through a Dagster backfill.
Lists answer `{"data": [...]}`, like the API's other lists.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.accounts.roles import Role
from export_pipeline.api.dependencies import Caller, Deps, ProjectId, require
from export_pipeline.api.responses import MEMBER_ERRORS, error_responses
from export_pipeline.batch_exports.backfill import launch_backfill, parse_range
from export_pipeline.batch_exports.destinations import Destination, RunState
from export_pipeline.batch_exports.records import RunStore
from export_pipeline.batch_exports.run import build_batch_deps
from export_pipeline.batch_exports.store import DestinationStore
from export_pipeline.batch_exports.views import BackfillView, BatchExportList, IntervalRunList
from export_pipeline.defs.graphql import DagsterGraphQL

router = APIRouter(tags=["batch exports"], responses=error_responses(*MEMBER_ERRORS))
BASE = "/api/v1/projects/{project_id}/batch_exports"
TAGS = ["batch exports"]
Maintainer = Annotated[Caller, require(Role.MAINTAINER, action="managing batch exports")]
DestinationId = Annotated[str, Path(min_length=1, max_length=32)]


async def destination_store(deps: Deps) -> DestinationStore:
    return DestinationStore(deps.engine)


Destinations = Annotated[DestinationStore, Depends(destination_store)]


class BatchExportCreate(BaseModel):
    """Every field is checked at once; an error names each bad field. Credentials are never sent: name the
    environment variable (or mounted secret) that holds them in `credentials_ref`."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="file:///folder or s3://bucket/prefix")
    start_at: str = Field(description="The first interval's start, ISO 8601 (naive: in `timezone`)")
    name: str | None = None
    model: str = "events"
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, R2, ...)")
    credentials_ref: str | None = Field(None, description="NAME of the variable holding the AWS keys as JSON")
    key_template: str | None = Field(None, description="{project_id} {model} {year} {month} {day} {hour} "
                                                       "{data_interval_start} {data_interval_end}")
    format: str = "ndjson"
    compression: str | None = None
    file_size_bytes: int | None = None
    split_by_event: bool = False
    interval: str = "hour"
    timezone: str = "UTC"
    settle_seconds: int | None = None
    max_failures: int | None = None
    notify_email: str | None = None
    slack_workspace: str | None = None
    slack_channel: str | None = None
    probe: bool = Field(False, description="First write and delete a test object at the destination, with this "
                                           "server's environment; if that fails, answer the error and create nothing")


class BackfillCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(description="ISO 8601, inclusive")
    end: str = Field(description="ISO 8601, exclusive")


@router.get(BASE, tags=TAGS, response_model=BatchExportList)
def list_batch_exports(project_id: ProjectId, who: Maintainer, store: Destinations) -> BatchExportList:
    return BatchExportList.of(store.list(project_id))


@router.post(BASE, tags=TAGS, status_code=201, response_model=Destination)
def create_batch_export(project_id: ProjectId, body: BatchExportCreate, who: Maintainer,
                        store: Destinations) -> Destination:
    return store.create(project_id, who.user, body.model_dump(exclude={"probe"}), probe=body.probe)


@router.get(BASE + "/{destination_id}", tags=TAGS, response_model=Destination)
def show_batch_export(project_id: ProjectId, destination_id: DestinationId, who: Maintainer,
                      store: Destinations) -> Destination:
    return store.require(destination_id, project_id=project_id)


@router.post(BASE + "/{destination_id}/pause", tags=TAGS, response_model=Destination)
def pause_batch_export(project_id: ProjectId, destination_id: DestinationId, who: Maintainer,
                       store: Destinations) -> Destination:
    store.require(destination_id, project_id=project_id)
    return store.set_paused(destination_id, True, f"Paused by {who.user}.")


@router.post(BASE + "/{destination_id}/resume", tags=TAGS, response_model=Destination)
def resume_batch_export(project_id: ProjectId, destination_id: DestinationId, who: Maintainer,
                        store: Destinations) -> Destination:
    store.require(destination_id, project_id=project_id)
    return store.set_paused(destination_id, False)


@router.delete(BASE + "/{destination_id}", tags=TAGS, status_code=204, response_class=Response)
def delete_batch_export(project_id: ProjectId, destination_id: DestinationId, who: Maintainer,
                        store: Destinations) -> Response:
    store.require(destination_id, project_id=project_id)
    store.delete(destination_id)
    return Response(status_code=204)


@router.get(BASE + "/{destination_id}/runs", tags=TAGS, response_model=IntervalRunList)
def batch_export_runs(project_id: ProjectId, destination_id: DestinationId, who: Maintainer, store: Destinations,
                      deps: Deps, state: Annotated[list[RunState] | None, Query()] = None,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> IntervalRunList:
    store.require(destination_id, project_id=project_id)
    return IntervalRunList.of(RunStore(deps.engine).list(destination_id, states=state or (), limit=limit))


@router.post(BASE + "/{destination_id}/backfills", tags=TAGS, status_code=202, response_model=BackfillView)
def backfill_batch_export(project_id: ProjectId, destination_id: DestinationId, body: BackfillCreate,
                          who: Maintainer, store: Destinations, deps: Deps) -> BackfillView:
    store.require(destination_id, project_id=project_id)
    start, end = parse_range(body.start, body.end)
    batch = build_batch_deps(deps.settings, deps.engine, deps.clickhouse)
    launched = launch_backfill(DagsterGraphQL(deps.settings.dagster_url), batch, destination_id, start, end,
                               requested_by=who.user)
    return BackfillView.of(launched)
