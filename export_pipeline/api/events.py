"""`GET /api/v1/projects/{project_id}/events`: a project's raw events, paged by a keyset cursor that also pins
the moment the first page was read (later events do not shift the pages)."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from export_pipeline.accounts.roles import EXPORT_ROLE
from export_pipeline.api.cursors import aware_time, decode_cursor, encode_cursor, uuid_text
from export_pipeline.api.dependencies import Caller, Deps, Events, ProjectId, require
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.exports import EVENT_PAGE
from export_pipeline.api.responses import MEMBER_ERRORS, error_responses
from export_pipeline.clock import now_utc
from export_pipeline.engine.encoders import concatenated
from export_pipeline.engine.extract import ExportQuery
from export_pipeline.engine.frames import json_lines
from export_pipeline.engine.spec import parse_spec
from export_pipeline.models.events import events_model
from export_pipeline.models.pages import arrow_page

router = APIRouter()


class Event(BaseModel):
    """One event, as in an NDJSON export."""

    project_id: int
    uuid: str
    event: str
    timestamp: str = Field(description="ISO 8601 UTC with microseconds")
    distinct_id: str
    person_id: str
    created_at: str = Field(description="When it was ingested")
    properties: dict[str, Any] = Field(description="Stored text that is not a JSON object: `{\"$unparsed\": …}`")


class EventPage(BaseModel):
    data: list[Event]
    next_cursor: str | None = Field(description="The next page; null on the last")


Maintainer = Annotated[Caller, require(EXPORT_ROLE, action="exporting events")]


# The body is the export's own JSON lines, joined as they are: a response model would parse and re-encode them.
@router.get("/api/v1/projects/{project_id}/events", tags=["events"], response_class=Response,
            responses={200: {"model": EventPage, "description": "A page of events, oldest first"},
                       **error_responses(*MEMBER_ERRORS)},
            summary="Page through events", openapi_extra=examples(response=EVENT_PAGE))
def list_events(
    project_id: ProjectId, who: Maintainer, deps: Deps, table: Events,
    date_from: Annotated[str | None, Query(max_length=40, description="ISO 8601, inclusive (UTC if naive)")] = None,
    date_to: Annotated[str | None, Query(max_length=40, description="ISO 8601, exclusive; a bare date includes "
                                                                    "that day")] = None,
    event: Annotated[list[str] | None, Query(max_length=100, description="Only these events (repeatable)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page")] = None,
) -> Response:
    """The project's raw events as an NDJSON export writes them, oldest first; Maintainer or higher. Follow
    `next_cursor` until it is null: the cursor also pins the moment the first page was read, so events
    ingested meanwhile neither shift nor repeat rows."""
    spec = parse_spec(project_id=project_id, requested_by=who.user, date_from=date_from, date_to=date_to,
                      events=event or [])
    state = decode_cursor(cursor, {"as_of": aware_time, "ts": aware_time, "uuid": uuid_text}) if cursor else None
    as_of = state["as_of"] if state else now_utc()
    after = (state["ts"], state["uuid"]) if state else None
    query = ExportQuery(events_model(table), spec, as_of)
    with deps.clickhouse.session(f"api events project {project_id}") as session:
        page = arrow_page(session, query, after=after, limit=limit)
    import polars as pl

    frame = pl.from_arrow(page)
    body = bytes(concatenated(json_lines(query.model, frame, terminator=","))).removesuffix(b",")  # type: ignore[arg-type]
    next_cursor = None
    if page.num_rows >= limit:
        last = page.slice(page.num_rows - 1, 1).select(["timestamp", "uuid"]).to_pylist()[0]
        next_cursor = encode_cursor(
            {"as_of": as_of.isoformat(), "ts": last["timestamp"].isoformat(), "uuid": last["uuid"]}
        )
    payload = b'{"data":[' + body + b'],"next_cursor":' + json.dumps(next_cursor).encode() + b"}"
    return Response(payload, media_type="application/json")
