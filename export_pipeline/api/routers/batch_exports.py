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
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.batch_exports import (
    BACKFILL,
    BACKFILL_CREATE,
    BATCH_EXPORT_CREATE,
    DESTINATION,
    DESTINATION_LIST,
    PAUSED_DESTINATION,
    RUN_LIST,
)
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
Maintainer = Annotated[Caller, require(Role.MAINTAINER, action="managing batch exports")]
DestinationId = Annotated[str, Path(min_length=1, max_length=32, examples=["be_58640d24ae43"])]


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


@router.get(BASE, response_model=BatchExportList, summary="List batch exports",
            openapi_extra=examples(response=DESTINATION_LIST))
def list_batch_exports(project_id: ProjectId, who: Maintainer, store: Destinations) -> BatchExportList:
    """The project's batch exports: where each delivers, in which format, how often, and whether it is paused."""
    return BatchExportList.of(store.list(project_id))


@router.post(BASE, status_code=201, response_model=Destination, summary="Create a batch export",
             openapi_extra=examples(request=BATCH_EXPORT_CREATE, response=DESTINATION, status=201))
def create_batch_export(project_id: ProjectId, body: BatchExportCreate, who: Maintainer,
                        store: Destinations) -> Destination:
    """A destination (a folder or S3 bucket) that gets the project's events, persons or groups every interval
    (hour, day or week in its time zone) from `start_at` on, once each interval has settled (`settle_seconds`):
    a Dagster sensor requests every closed interval, missed ones included."""
    return store.create(project_id, who.user, body.model_dump(exclude={"probe"}), probe=body.probe)


@router.get(BASE + "/{destination_id}", response_model=Destination, summary="Get a batch export",
            openapi_extra=examples(response=DESTINATION))
def get_batch_export(project_id: ProjectId, destination_id: DestinationId, who: Maintainer,
                     store: Destinations) -> Destination:
    """One batch export, with its failure count and why it is paused, if it is."""
    return store.require(destination_id, project_id=project_id)


@router.post(BASE + "/{destination_id}/pause", response_model=Destination, summary="Pause a batch export",
             openapi_extra=examples(response=PAUSED_DESTINATION))
def pause_batch_export(project_id: ProjectId, destination_id: DestinationId, who: Maintainer,
                       store: Destinations) -> Destination:
    """No new intervals run until it is resumed (the reason names who paused it)."""
    store.require(destination_id, project_id=project_id)
    return store.set_paused(destination_id, True, f"Paused by {who.user}.")


@router.post(BASE + "/{destination_id}/resume", response_model=Destination, summary="Resume a batch export",
             openapi_extra=examples(response=DESTINATION))
def resume_batch_export(project_id: ProjectId, destination_id: DestinationId, who: Maintainer,
                        store: Destinations) -> Destination:
    """Intervals run again; the failed ones first."""
    store.require(destination_id, project_id=project_id)
    return store.set_paused(destination_id, False)


@router.delete(BASE + "/{destination_id}", status_code=204, response_class=Response,
               summary="Delete a batch export")
def delete_batch_export(project_id: ProjectId, destination_id: DestinationId, who: Maintainer,
                        store: Destinations) -> Response:
    """Delete the batch export and its run records; files it delivered stay where they are."""
    store.require(destination_id, project_id=project_id)
    store.delete(destination_id)
    return Response(status_code=204)


@router.get(BASE + "/{destination_id}/runs", response_model=IntervalRunList, summary="List a batch export's runs",
            openapi_extra=examples(response=RUN_LIST))
def list_batch_export_runs(project_id: ProjectId, destination_id: DestinationId, who: Maintainer,
                           store: Destinations, deps: Deps,
                           state: Annotated[list[RunState] | None, Query(description="Only these states")] = None,
                           limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> IntervalRunList:
    """One record per interval, oldest first: state, rows, bytes and files delivered, attempts, the manifest's
    key, and the error of a failed one."""
    store.require(destination_id, project_id=project_id)
    return IntervalRunList.of(RunStore(deps.engine).list(destination_id, states=state or (), limit=limit))


@router.post(BASE + "/{destination_id}/backfills", status_code=202, response_model=BackfillView,
             summary="Export a range again",
             openapi_extra=examples(request=BACKFILL_CREATE, response=BACKFILL, status=202))
def backfill_batch_export(project_id: ProjectId, destination_id: DestinationId, body: BackfillCreate,
                          who: Maintainer, store: Destinations, deps: Deps) -> BackfillView:
    """Deliver every interval in [start, end) again, through a Dagster backfill (DAGSTER_WEBSERVER_URL); intervals
    without data are skipped and counted. Answers once the backfill is launched."""
    store.require(destination_id, project_id=project_id)
    start, end = parse_range(body.start, body.end)
    batch = build_batch_deps(deps.settings, deps.engine, deps.clickhouse)
    launched = launch_backfill(DagsterGraphQL(deps.settings.dagster_url), batch, destination_id, start, end,
                               requested_by=who.user)
    return BackfillView.of(launched)
