"""Events: one row per captured event, paged by (timestamp, uuid), filtered by date range and event names.

Rows ingested after the request (`created_at > as_of`) are left out, so an export is the table as of the
request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa

from export_pipeline.clickhouse.connection import Session
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import ch_time
from export_pipeline.engine.model import (
    CH_TIME,
    UTC_MICROSECONDS,
    Column,
    Conditions,
    ExportModel,
    KeyColumn,
    date_range,
)
from export_pipeline.engine.spec import ExportSpec


def events_model(table: EventsTable) -> ExportModel:
    c = table.col

    def filters(spec: ExportSpec, as_of: datetime) -> Conditions:
        clauses = [f"{c('project_id')} = {{project_id:UInt64}}", f"{c('created_at')} <= {{as_of:{CH_TIME}}}"]
        params: dict = {"project_id": spec.project_id, "as_of": ch_time(as_of)}
        dated, more = date_range(spec, c("timestamp"))
        clauses += dated
        params.update(more)
        if spec.events:
            clauses.append(f"{c('event')} IN {{events:Array(String)}}")
            params["events"] = list(spec.events)
        return clauses, params

    return ExportModel(
        name="events",
        source=table.qualified_name,
        columns=(
            # Every column of the events table is non-Nullable in ClickHouse, so Parquet declares them required.
            Column("project_id", c("project_id"), pa.uint64(), nullable=False),
            Column("uuid", f"toString({c('uuid')})", pa.uuid(), nullable=False, distinct=True),
            # A plain String (toString keeps LowCardinality): cheaper to move through a merge of parts (extract.py).
            Column("event", f"CAST({c('event')} AS String)", pa.string(), nullable=False),
            Column("timestamp", c("timestamp"), UTC_MICROSECONDS, nullable=False, distinct=True),
            Column("distinct_id", c("distinct_id"), pa.string(), nullable=False),
            Column("person_id", f"toString({c('person_id')})", pa.uuid(), nullable=False),
            Column("created_at", c("created_at"), UTC_MICROSECONDS, nullable=False, distinct=True),
            Column("properties", c("properties"), pa.string(), json_object=True, nullable=False, distinct=True),
        ),
        key=(KeyColumn("timestamp", c("timestamp"), CH_TIME), KeyColumn("uuid", c("uuid"), "UUID")),
        filters=filters,
        window=f"toStartOfMonth({c('timestamp')})",  # the table's partition key (schema.py) is the month
        ingested_at=c("created_at"),
    )


def unknown_events(session: Session, table: EventsTable, project_id: int, names: Sequence[str]) -> list[str]:
    """Which of `names` no event of the project has, in the given order (one DISTINCT over the names asked)."""
    c = table.col
    sql = (f"SELECT DISTINCT toString({c('event')}) FROM {table.qualified_name} "
           f"WHERE {c('project_id')} = {{project_id:UInt64}} AND {c('event')} IN {{names:Array(String)}}")
    rows = session.client.query(sql, parameters={"project_id": project_id, "names": list(names)}).result_rows
    seen = {name for (name,) in rows}
    return [name for name in names if name not in seen]
