"""`GET persons`, `GET persons/{id}`, `GET groups?group_type=`: people are personal data, so Maintainer or
higher, as events. Pages are read with the export models' own queries and keyset cursors."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from export_pipeline.accounts.roles import EXPORT_ROLE
from export_pipeline.api.cursors import aware_time, decode_cursor, encode_cursor, uuid_text
from export_pipeline.api.dependencies import Caller, Deps, Events, ProjectId, require
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.exports import GROUP_PAGE, PERSON, PERSON_PAGE
from export_pipeline.api.responses import MEMBER_ERRORS, error_responses
from export_pipeline.clickhouse.connection import Session
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import now_utc
from export_pipeline.deps import AppDeps
from export_pipeline.engine.extract import ExportQuery
from export_pipeline.engine.spec import ExportSpec, parse_spec
from export_pipeline.errors import NotFound
from export_pipeline.models.groups import groups_model
from export_pipeline.models.pages import page_rows, row_by_key
from export_pipeline.models.persons import persons_model
from export_pipeline.models.resolve import resolve_spec

router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["people"],
                   responses=error_responses(*MEMBER_ERRORS))
PeopleReader = Annotated[Caller, require(EXPORT_ROLE, action="reading persons")]
GroupReader = Annotated[Caller, require(EXPORT_ROLE, action="reading groups")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=500)]


class Person(BaseModel):
    id: str
    created_at: str
    is_identified: bool
    version: int
    distinct_ids: list[str]
    properties: dict


class PersonPage(BaseModel):
    data: list[Person]
    next_cursor: str | None


class Group(BaseModel):
    key: str
    group_type: str
    group_type_index: int
    created_at: str
    properties: dict


class GroupPage(BaseModel):
    data: list[Group]
    next_cursor: str | None


def read_rows(deps: AppDeps, query: ExportQuery, *, after: tuple | None, limit: int) -> list[dict]:
    """A page of the query's rows after the key values `after`, as the JSON exports write them."""
    with _session(deps, query) as session:
        return page_rows(session, query, after=after, limit=limit)


def read_one(deps: AppDeps, query: ExportQuery, key: str) -> dict | None:
    """The query's row whose key is `key`, or None."""
    with _session(deps, query) as session:
        return row_by_key(session, query, key)


def _session(deps: AppDeps, query: ExportQuery) -> AbstractContextManager[Session]:
    return deps.clickhouse.session(f"api {query.model.name} project {query.spec.project_id}")


def person_page(deps: AppDeps, table: EventsTable, spec: ExportSpec, *, limit: int, cursor: str | None) -> PersonPage:
    """A page of persons of `spec` (its filters and cohort), as of the first page's moment."""
    state = decode_cursor(cursor, {"as_of": aware_time, "id": uuid_text}) if cursor else None
    as_of: datetime = state["as_of"] if state else now_utc()
    query = ExportQuery(persons_model(table), spec, as_of)
    rows = read_rows(deps, query, after=(state["id"],) if state else None, limit=limit)
    next_cursor = encode_cursor({"as_of": as_of.isoformat(), "id": rows[-1]["id"]}) if len(rows) >= limit else None
    return PersonPage(data=[Person(**row) for row in rows], next_cursor=next_cursor)


@router.get("/persons", response_model=PersonPage, summary="Page through persons",
            openapi_extra=examples(response=PERSON_PAGE))
def list_persons(project_id: ProjectId, who: PeopleReader, deps: Deps, table: Events, limit: Limit = 100,
                 cursor: Cursor = None,
                 created_from: Annotated[str | None, Query(max_length=40)] = None,
                 created_to: Annotated[str | None, Query(max_length=40)] = None,
                 properties: Annotated[str | None, Query(max_length=5000, description='JSON: [{"key", "operator", "value"}]')] = None,
                 cohort_id: Annotated[int | None, Query(gt=0)] = None) -> PersonPage:
    """The project's persons (latest version, every distinct id), as a persons export writes them; Maintainer
    or higher (personal data). Filter by creation time, properties (all must match) or cohort; follow
    `next_cursor` until it is null."""
    spec = parse_spec(project_id=project_id, requested_by=who.user, resource="persons", date_from=created_from,
                      date_to=created_to, properties=_json_list(properties), cohort_id=cohort_id)
    return person_page(deps, table, resolve_spec(spec, deps.engine), limit=limit, cursor=cursor)


@router.get("/persons/{person_id}", response_model=Person, summary="Get a person",
            openapi_extra=examples(response=PERSON))
def get_person(project_id: ProjectId, person_id: Annotated[str, Path(max_length=64)], who: PeopleReader, deps: Deps,
               table: Events) -> Person:
    """One person by id (a UUID): the latest version, with every distinct id; Maintainer or higher."""
    try:
        canonical = uuid_text(person_id)
    except ValueError:
        raise NotFound(f"No person {person_id!r} in project {project_id}.") from None
    spec = parse_spec(project_id=project_id, requested_by=who.user, resource="persons")
    query = ExportQuery(persons_model(table), spec, now_utc())
    row = read_one(deps, query, canonical)
    if row is None:
        raise NotFound(f"No person {person_id!r} in project {project_id}.")
    return Person(**row)


@router.get("/groups", response_model=GroupPage, summary="Page through groups",
            openapi_extra=examples(response=GROUP_PAGE))
def list_groups(project_id: ProjectId, who: GroupReader, deps: Deps, table: Events,
                group_type: Annotated[str, Query(min_length=1, max_length=64, description="Type name or index (0-4)")],
                limit: Limit = 100, cursor: Cursor = None) -> GroupPage:
    """The project's groups of one type (e.g. organizations), latest version each; Maintainer or higher. Follow
    `next_cursor` until it is null."""
    spec = resolve_spec(parse_spec(project_id=project_id, requested_by=who.user, resource="groups",
                                   group_type=group_type), deps.engine)
    state = decode_cursor(cursor, {"as_of": aware_time, "key": str}) if cursor else None
    as_of = state["as_of"] if state else now_utc()
    query = ExportQuery(groups_model(table), spec, as_of)
    rows = read_rows(deps, query, after=(state["key"],) if state else None, limit=limit)
    next_cursor = encode_cursor({"as_of": as_of.isoformat(), "key": rows[-1]["key"]}) if len(rows) >= limit else None
    return GroupPage(data=[Group(**row) for row in rows], next_cursor=next_cursor)


def _json_list(text: str | None) -> object:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # parse_spec reports it as not a list of filters
