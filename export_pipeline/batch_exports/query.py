"""What an interval reads: a model's rows of one project ingested in [start, end), optionally of one event
name, through the export path's keyset pagination (`ExportQuery`, `iter_chunks`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.batch_exports.intervals import Interval, IntervalUnit
from export_pipeline.clickhouse.connection import Session
from export_pipeline.exports.extract import QUERY_SETTINGS, ExportQuery
from export_pipeline.exports.spec import ExportSpec
from export_pipeline.models.base import ExportModel


@dataclass(frozen=True)
class IntervalQuery(ExportQuery):
    """The model's own filters (project, and rows ingested by the interval's end), narrowed to the rows
    ingested in [start, end)."""

    start: datetime
    end: datetime

    def where(self, *, after: tuple | None) -> tuple[str, dict]:
        where, params = super().where(after=after)
        clauses, interval_params = self.model.ingested_between(self.start, self.end)
        return " AND ".join([where, *clauses]), {**params, **interval_params}


def interval_query(model: ExportModel, destination: Destination, interval: Interval,
                   event: str | None = None) -> IntervalQuery:
    spec = ExportSpec(project_id=destination.project_id, requested_by=destination.created_by,
                      format=destination.format, compression=destination.compression,
                      events=(event,) if event is not None else (), resource=destination.model)
    return IntervalQuery(model, spec, interval.end, interval.start, interval.end)


def count_rows(session: Session, query: IntervalQuery) -> int:
    sql, params = query.count_sql()
    return int(session.client.command(sql, parameters=params, settings=QUERY_SETTINGS))


def event_names(session: Session, query: IntervalQuery, column_sql: str) -> list[str]:
    where, params = query.where(after=None)
    sql = f"SELECT DISTINCT toString({column_sql}) AS name FROM {query.model.source} WHERE {where} ORDER BY name"
    return [name for (name,) in session.client.query(sql, parameters=params, settings=QUERY_SETTINGS).result_rows]


def bucket_sql(ingested_at: str, unit: IntervalUnit) -> str:
    """The UNIX second an ingestion time's interval starts at, in the time zone bound as {zone:String}."""
    if unit is IntervalUnit.HOUR:
        return f"toUnixTimestamp(toStartOfHour({ingested_at}))"
    if unit is IntervalUnit.DAY:
        return f"toUnixTimestamp(toStartOfDay({ingested_at}, {{zone:String}}))"
    return f"toUnixTimestamp(toDateTime(toMonday({ingested_at}, {{zone:String}}), {{zone:String}}))"


def non_empty_starts(session: Session, model: ExportModel, destination: Destination,
                     start: datetime, end: datetime) -> Sequence[int]:
    """The UNIX seconds of the interval starts in [start, end) that hold rows: one grouped count over the
    project's ingestion range, however many intervals it spans (an empty year costs one query)."""
    assert model.ingested_at is not None
    spec = ExportSpec(project_id=destination.project_id, requested_by=destination.created_by,
                      format=destination.format, compression=destination.compression, resource=destination.model)
    query = IntervalQuery(model, spec, end, start, end)
    where, params = query.where(after=None)
    sql = (f"SELECT {bucket_sql(model.ingested_at, destination.interval)} AS bucket FROM {model.source} "
           f"WHERE {where} GROUP BY bucket ORDER BY bucket")
    params = {**params, "zone": destination.timezone}
    rows = session.client.query(sql, parameters=params, settings=QUERY_SETTINGS).result_rows
    return [int(bucket) for (bucket,) in rows]

