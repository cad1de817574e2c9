"""What an interval reads: a model's rows of one project ingested in [start, end), optionally of one event
name, through the export path's keyset pagination (`ExportQuery`, `iter_chunks`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from export_pipeline.batch_exports.destinations import Destination
from export_pipeline.batch_exports.intervals import Interval, IntervalUnit
from export_pipeline.clickhouse.connection import Session
from export_pipeline.clock import as_utc, ch_time
from export_pipeline.engine.extract import EVERY_ROW, QUERY_SETTINGS, ExportQuery, Window
from export_pipeline.engine.model import ExportModel
from export_pipeline.engine.spec import ExportSpec


@dataclass(frozen=True, kw_only=True)
class IntervalQuery(ExportQuery):
    """The model's own filters (project, and rows ingested by the interval's end), narrowed to the rows
    ingested in [start, end), and to `key_range` on the first key column once it is known: the same rows,
    but the primary key then prunes every chunk's read to the interval's rows."""

    start: datetime
    end: datetime
    key_range: tuple[object, object] | None = None

    def where(self, *, after: tuple | None, window: Window = EVERY_ROW) -> tuple[str, dict]:
        where, params = super().where(after=after, window=window)
        clauses, interval_params = self.model.ingested_between(self.start, self.end)
        if self.key_range is not None:
            first = self.model.key[0]
            low, high = (ch_time(as_utc(v)) if isinstance(v, datetime) else v for v in self.key_range)
            clauses = [*clauses, f"{first.sql} >= {{key_low:{first.type}}}", f"{first.sql} <= {{key_high:{first.type}}}"]
            interval_params = {**interval_params, "key_low": low, "key_high": high}
        return " AND ".join([where, *clauses]), {**params, **interval_params}

    def bounded(self, session: Session) -> tuple[int, IntervalQuery]:
        """The row count, and this query narrowed to the first key column's range over those rows (one scan
        of the ingestion column; without it each chunk would scan the project from its first key)."""
        where, params = self.where(after=None)
        first = self.model.key[0]
        sql = f"SELECT count(), min({first.sql}), max({first.sql}) FROM {self.model.source} WHERE {where}"
        count, low, high = session.client.query(sql, parameters=params, settings=QUERY_SETTINGS).result_rows[0]
        return int(count), (replace(self, key_range=(low, high)) if count else self)


def interval_query(model: ExportModel, destination: Destination, interval: Interval,
                   event: str | None = None, *, escape_formulas: bool = True) -> IntervalQuery:
    spec = ExportSpec(project_id=destination.project_id, requested_by=destination.created_by,
                      format=destination.format, compression=destination.compression,
                      events=(event,) if event is not None else (), resource=destination.model)
    return IntervalQuery(model, spec, interval.end, escape_formulas=escape_formulas, start=interval.start,
                         end=interval.end)


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
    query = IntervalQuery(model, spec, end, start=start, end=end)
    where, params = query.where(after=None)
    sql = (f"SELECT {bucket_sql(model.ingested_at, destination.interval)} AS bucket FROM {model.source} "
           f"WHERE {where} GROUP BY bucket ORDER BY bucket")
    params = {**params, "zone": destination.timezone}
    rows = session.client.query(sql, parameters=params, settings=QUERY_SETTINGS).result_rows
    return [int(bucket) for (bucket,) in rows]

