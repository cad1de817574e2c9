"""Session recordings' metadata: one row per session (its `session_replay_events` rows summed, as of the
request), with the person its distinct id belongs to now, paged by session id. Filters: start time range
(date_from/date_to), distinct id, person id, minimum duration. The snapshots are exported beside it
(exports/recordings.py)."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import ch_time
from export_pipeline.engine.model import (
    UTC_MICROSECONDS,
    Column,
    Conditions,
    ExportModel,
    KeyColumn,
    date_range,
)
from export_pipeline.engine.spec import ExportSpec
from export_pipeline.models.person_sql import AS_OF, distinct_ids_sql, persons_sql

NO_PERSON = "00000000-0000-0000-0000-000000000000"  # what a LEFT JOIN leaves in a UUID column


def sessions_sql(table: EventsTable) -> str:
    summed = (
        f"SELECT project_id AS r_project_id, session_id AS r_session, any(distinct_id) AS r_distinct_id, "
        f"min(first_timestamp) AS r_start, max(last_timestamp) AS r_end, argMin(first_url, first_timestamp) AS r_url, "
        f"sum(click_count) AS r_clicks, sum(keypress_count) AS r_keys, sum(mouse_activity_count) AS r_mouse, "
        f"sum(active_milliseconds) AS r_active, sum(console_log_count) AS r_log, sum(console_warn_count) AS r_warn, "
        f"sum(console_error_count) AS r_error, sum(size) AS r_size, sum(event_count) AS r_events "
        f"FROM {table.other('session_replay_events')} "
        f"WHERE project_id = {{project_id:UInt64}} AND _timestamp <= {AS_OF} GROUP BY project_id, session_id"
    )
    return (
        f"SELECT r.*, ids.owner AS r_person, p.p_properties AS r_person_properties FROM ({summed}) AS r "
        f"LEFT JOIN ({distinct_ids_sql(table)}) AS ids ON ids.distinct_id = r.r_distinct_id "
        f"LEFT JOIN ({persons_sql(table, with_distinct_ids=False)}) AS p ON p.id = ids.owner"
    )


def recording_filters(spec: ExportSpec, as_of: datetime) -> Conditions:
    clauses, params = date_range(spec, "r_start")
    clauses.insert(0, "r_project_id = {project_id:UInt64}")
    params.update(project_id=spec.project_id, as_of=ch_time(as_of))
    if spec.distinct_id is not None:
        clauses.append("r_distinct_id = {distinct_id:String}")
        params["distinct_id"] = spec.distinct_id
    if spec.person_id is not None:
        clauses.append("r_person = {person_id:UUID}")
        params["person_id"] = spec.person_id
    if spec.min_duration is not None:
        clauses.append("dateDiff('millisecond', r_start, r_end) >= {min_duration_ms:UInt64}")
        params["min_duration_ms"] = spec.min_duration * 1000
    return clauses, params


def recordings_model(table: EventsTable) -> ExportModel:
    return ExportModel(
        name="recordings",
        source=f"({sessions_sql(table)})",
        columns=(
            Column("session_id", "r_session", pa.string(), distinct=True),
            Column("distinct_id", "r_distinct_id", pa.string()),
            Column("person_id", f"nullIf(toString(r_person), '{NO_PERSON}')", pa.string()),
            Column("start_time", "r_start", UTC_MICROSECONDS, distinct=True),
            Column("end_time", "r_end", UTC_MICROSECONDS, distinct=True),
            Column("duration_seconds", "dateDiff('millisecond', r_start, r_end) / 1000", pa.float64()),
            Column("first_url", "r_url", pa.string()),
            Column("click_count", "r_clicks", pa.int64()),
            Column("keypress_count", "r_keys", pa.int64()),
            Column("mouse_activity_count", "r_mouse", pa.int64()),
            Column("active_seconds", "r_active / 1000", pa.float64()),
            Column("console_log_count", "r_log", pa.int64()),
            Column("console_warn_count", "r_warn", pa.int64()),
            Column("console_error_count", "r_error", pa.int64()),
            Column("size", "r_size", pa.int64()),
            Column("event_count", "r_events", pa.int64()),
            Column("person_properties", "r_person_properties", pa.string(), json_object=True, distinct=True),
        ),
        key=(KeyColumn("session_id", "r_session", "String"),),
        filters=recording_filters,
    )
