"""Cohorts over HTTP: project members read them (with their current size), Maintainers and higher write them
(a static cohort's persons as a JSON list or a CSV upload), and a cohort's persons are personal data
(Maintainer or higher, as persons)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from export_pipeline.accounts.roles import EXPORT_ROLE, Role
from export_pipeline.api.cursors import decode_cursor, encode_cursor
from export_pipeline.api.dependencies import Caller, Deps, Events, ProjectId, require
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.exports import (
    COHORT,
    COHORT_CREATE,
    COHORT_CSV,
    COHORT_PAGE,
    COHORT_UPDATE,
    PERSON_PAGE,
    STATIC_COHORT,
)
from export_pipeline.api.responses import MEMBER_ERRORS, error_responses
from export_pipeline.api.routers.people import PersonPage, person_page
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import iso_utc, now_utc
from export_pipeline.cohorts.store import Cohort, CohortStore, person_ids_from_csv
from export_pipeline.deps import AppDeps
from export_pipeline.engine.extract import ExportQuery
from export_pipeline.engine.spec import parse_spec
from export_pipeline.models.pages import row_count
from export_pipeline.models.persons import cohort_model
from export_pipeline.models.resolve import resolve_spec

router = APIRouter(prefix="/api/v1/projects/{project_id}/cohorts", tags=["cohorts"],
                   responses=error_responses(*MEMBER_ERRORS))
Member = Annotated[Caller, require(Role.GUEST, action="reading cohorts")]
Writer = Annotated[Caller, require(Role.MAINTAINER, action="changing cohorts")]
PeopleReader = Annotated[Caller, require(EXPORT_ROLE, action="reading a cohort's persons")]
CohortId = Annotated[int, Path(gt=0, lt=2**31, examples=[2])]


class CohortOut(BaseModel):
    id: int
    name: str
    kind: str
    definition: dict | None
    person_count: int = Field(description="Members now: a dynamic cohort is evaluated on read")
    created_by: str
    created_at: str
    updated_at: str


class CohortPage(BaseModel):
    data: list[CohortOut]
    next_cursor: str | None


class CohortCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=255)
    kind: str = Field(description="static | dynamic")
    definition: dict | None = Field(None, description='Dynamic: {"match": "all"|"any", "filters": [...]}')
    person_ids: list[str] = Field(default_factory=list, max_length=100_000, description="Static: person ids")


class CohortUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=255)
    definition: dict | None = None
    person_ids: list[str] | None = Field(None, max_length=100_000)


def _size(deps: AppDeps, table: EventsTable, cohort: Cohort, user: str) -> int:
    spec = resolve_spec(parse_spec(project_id=cohort.project_id, requested_by=user, resource="cohort",
                                   cohort_id=cohort.id), deps.engine)
    with deps.clickhouse.session(f"api cohort {cohort.id} size") as session:
        return row_count(session, ExportQuery(cohort_model(table), spec, now_utc()))


def _out(deps: AppDeps, table: EventsTable, cohort: Cohort, user: str) -> CohortOut:
    return CohortOut(id=cohort.id, name=cohort.name, kind=cohort.kind, definition=cohort.definition,
                     person_count=_size(deps, table, cohort, user), created_by=cohort.created_by,
                     created_at=iso_utc(cohort.created_at), updated_at=iso_utc(cohort.updated_at))


def _positive(text: str) -> int:
    number = int(text)
    if number <= 0:
        raise ValueError(text)
    return number


@router.get("", response_model=CohortPage, summary="List cohorts",
            openapi_extra=examples(response=COHORT_PAGE))
def list_cohorts(project_id: ProjectId, who: Member, deps: Deps, table: Events,
                 limit: Annotated[int, Query(ge=1, le=100)] = 20,
                 cursor: Annotated[str | None, Query(max_length=200)] = None) -> CohortPage:
    """The project's cohorts, oldest first, each with its size now; for every member."""
    after = decode_cursor(cursor, {"id": _positive})["id"] if cursor else 0
    cohorts = CohortStore(deps.engine).list(project_id, after_id=after, limit=limit)
    next_cursor = encode_cursor({"id": str(cohorts[-1].id)}) if len(cohorts) >= limit else None
    return CohortPage(data=[_out(deps, table, c, who.user) for c in cohorts], next_cursor=next_cursor)


@router.post("", response_model=CohortOut, status_code=201, summary="Create a cohort",
             openapi_extra=examples(request=COHORT_CREATE, response=COHORT, status=201))
def create_cohort(project_id: ProjectId, body: CohortCreate, who: Writer, deps: Deps, table: Events) -> CohortOut:
    """A static cohort (the persons listed in `person_ids`) or a dynamic one (whoever matches `definition` when
    it is read: property and behavioural filters); Maintainer or higher."""
    cohort = CohortStore(deps.engine).create(project_id, name=body.name, kind=body.kind, created_by=who.user,
                                             definition=body.definition, people=body.person_ids)
    return _out(deps, table, cohort, who.user)


@router.get("/{cohort_id}", response_model=CohortOut, summary="Get a cohort",
            openapi_extra=examples(response=COHORT))
def get_cohort(project_id: ProjectId, cohort_id: CohortId, who: Member, deps: Deps, table: Events) -> CohortOut:
    """One cohort with its size now (a dynamic cohort is evaluated on read); for every member."""
    return _out(deps, table, CohortStore(deps.engine).require(project_id, cohort_id), who.user)


@router.patch("/{cohort_id}", response_model=CohortOut, summary="Change a cohort",
              openapi_extra=examples(request=COHORT_UPDATE, response={**COHORT, **COHORT_UPDATE}))
def update_cohort(project_id: ProjectId, cohort_id: CohortId, body: CohortUpdate, who: Writer, deps: Deps,
                  table: Events) -> CohortOut:
    """Rename a cohort, change a dynamic one's definition or replace a static one's persons (the fields given;
    the others stay); Maintainer or higher."""
    cohort = CohortStore(deps.engine).update(project_id, cohort_id, name=body.name, definition=body.definition,
                                             people=body.person_ids)
    return _out(deps, table, cohort, who.user)


@router.put("/{cohort_id}/persons.csv", response_model=CohortOut, summary="Upload a static cohort's persons",
            description="Replace a static cohort's persons with the first column of a CSV body (text/csv); "
            "Maintainer or higher.",
            openapi_extra=examples(request=COHORT_CSV, request_type="text/csv", response=STATIC_COHORT))
def upload_cohort_csv(project_id: ProjectId, cohort_id: CohortId, data: Annotated[bytes, Body(media_type="text/csv")],
                      who: Writer, deps: Deps, table: Events) -> CohortOut:
    people = person_ids_from_csv(data)  # the body limit middleware bounds its size
    cohort = CohortStore(deps.engine).update(project_id, cohort_id, people=people)
    return _out(deps, table, cohort, who.user)


@router.delete("/{cohort_id}", status_code=204, summary="Delete a cohort")
def delete_cohort(project_id: ProjectId, cohort_id: CohortId, who: Writer, deps: Deps) -> Response:
    """Delete the cohort for good; Maintainer or higher."""
    CohortStore(deps.engine).delete(project_id, cohort_id)
    return Response(status_code=204)


@router.get("/{cohort_id}/persons", response_model=PersonPage, summary="Page through a cohort's persons",
            openapi_extra=examples(response=PERSON_PAGE))
def list_cohort_persons(project_id: ProjectId, cohort_id: CohortId, who: PeopleReader, deps: Deps, table: Events,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                        cursor: Annotated[str | None, Query(max_length=500)] = None) -> PersonPage:
    """The cohort's persons now, as in `GET persons`; Maintainer or higher (personal data)."""
    spec = resolve_spec(parse_spec(project_id=project_id, requested_by=who.user, resource="cohort",
                                   cohort_id=cohort_id), deps.engine)
    return person_page(deps, table, spec, limit=limit, cursor=cursor)
