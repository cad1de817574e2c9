"""`GET recordings`, `GET recordings/{session_id}`, `GET recordings/{session_id}/snapshots`: recordings are
personal data (Maintainer or higher). The snapshots stream in PostHog's recording file format, block by
block, so a recording of any size is served in bounded memory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from export_pipeline.accounts.roles import EXPORT_ROLE
from export_pipeline.api.cursors import aware_time, decode_cursor, encode_cursor, identifier
from export_pipeline.api.dependencies import Caller, Deps, Events, ProjectId, require
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.exports import RECORDING, RECORDING_FILE, RECORDING_PAGE
from export_pipeline.api.responses import MEMBER_ERRORS, error_responses
from export_pipeline.api.routers.people import read_one, read_rows
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import now_utc
from export_pipeline.deps import AppDeps
from export_pipeline.engine.extract import ExportQuery
from export_pipeline.engine.spec import parse_spec
from export_pipeline.errors import NotFound
from export_pipeline.exports.recordings import recording_person
from export_pipeline.models.recordings import recordings_model
from export_pipeline.recordings.blobs import SESSION_ID, RecordingBlobs
from export_pipeline.recordings.document import recording_document
from export_pipeline.storage import storage_from_url

router = APIRouter(prefix="/api/v1/projects/{project_id}/recordings", tags=["recordings"],
                   responses=error_responses(*MEMBER_ERRORS))
Reader = Annotated[Caller, require(EXPORT_ROLE, action="reading recordings")]
SessionId = Annotated[str, Path(max_length=128, examples=["0117b85b69e1b108"])]


class Recording(BaseModel):
    session_id: str
    distinct_id: str
    person_id: str | None
    start_time: str
    end_time: str
    duration_seconds: float
    first_url: str | None
    click_count: int
    keypress_count: int
    mouse_activity_count: int
    active_seconds: float
    console_log_count: int
    console_warn_count: int
    console_error_count: int
    size: int
    event_count: int
    person_properties: dict


class RecordingPage(BaseModel):
    data: list[Recording]
    next_cursor: str | None


def _one(deps: AppDeps, table: EventsTable, project_id: int, user: str, session_id: str) -> dict:
    if not SESSION_ID.match(session_id):
        raise NotFound(f"No recording {session_id!r} in project {project_id}.")
    query = ExportQuery(recordings_model(table), parse_spec(project_id=project_id, requested_by=user,
                                                            resource="recordings"), now_utc())
    row = read_one(deps, query, session_id)
    if row is None:
        raise NotFound(f"No recording {session_id!r} in project {project_id}.")
    return row


@router.get("", response_model=RecordingPage, summary="Page through recordings",
            openapi_extra=examples(response=RECORDING_PAGE))
def list_recordings(project_id: ProjectId, who: Reader, deps: Deps, table: Events,
                    date_from: Annotated[str | None, Query(max_length=40)] = None,
                    date_to: Annotated[str | None, Query(max_length=40)] = None,
                    distinct_id: Annotated[str | None, Query(max_length=400)] = None,
                    person_id: Annotated[str | None, Query(max_length=64)] = None,
                    min_duration: Annotated[int | None, Query(ge=0, description="Seconds")] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                    cursor: Annotated[str | None, Query(max_length=500)] = None) -> RecordingPage:
    """The project's session recordings (one summary each: duration, activity, first URL, size), filtered by
    start time, distinct id, person or minimum duration; Maintainer or higher (personal data). Follow
    `next_cursor` until it is null."""
    spec = parse_spec(project_id=project_id, requested_by=who.user, resource="recordings", date_from=date_from,
                      date_to=date_to, distinct_id=distinct_id, person_id=person_id, min_duration=min_duration)
    state = decode_cursor(cursor, {"as_of": aware_time, "session": identifier}) if cursor else None
    as_of = state["as_of"] if state else now_utc()
    query = ExportQuery(recordings_model(table), spec, as_of)
    rows = read_rows(deps, query, after=(state["session"],) if state else None, limit=limit)
    next_cursor = (encode_cursor({"as_of": as_of.isoformat(), "session": rows[-1]["session_id"]})
                   if len(rows) >= limit else None)
    return RecordingPage(data=[Recording(**row) for row in rows], next_cursor=next_cursor)


@router.get("/{session_id}", response_model=Recording, summary="Get a recording",
            openapi_extra=examples(response=RECORDING))
def get_recording(project_id: ProjectId, session_id: SessionId, who: Reader, deps: Deps, table: Events) -> Recording:
    """One recording's summary; its rrweb events are at `…/snapshots`. Maintainer or higher."""
    return Recording(**_one(deps, table, project_id, who.user, session_id))


class RecordingData(BaseModel):
    id: str = Field(description="The session id")
    person: dict | None = Field(description="uuid, distinct_ids and properties of the session's person, if known")
    snapshots: list[dict] = Field(description="The rrweb events in order, each with its windowId")


class RecordingFile(BaseModel):
    """PostHog's recording export file, which its file playback imports."""

    version: str = Field(description="2023-04-28")
    data: RecordingData


@router.get("/{session_id}/snapshots", response_class=StreamingResponse,
            responses={200: {"model": RecordingFile, "description": "The recording file, streamed"}},
            summary="Download a recording's snapshots",
            description="The recording in PostHog's file format (version 2023-04-28), streamed, which PostHog's "
            "file playback imports; Maintainer or higher.", openapi_extra=examples(response=RECORDING_FILE))
def get_recording_snapshots(project_id: ProjectId, session_id: SessionId, who: Reader, deps: Deps,
                            table: Events) -> StreamingResponse:
    row = _one(deps, table, project_id, who.user, session_id)
    blobs = RecordingBlobs(storage_from_url(deps.settings.recordings_storage_url))
    person = recording_person(row["person_id"], row["distinct_id"], row["person_properties"])
    pieces = recording_document(blobs, project_id, session_id, person)
    return StreamingResponse(pieces, media_type="application/json")
