"""Insight definitions and the ClickHouse queries that compute them.

Four kinds, each a typed definition validated by pydantic: *trends* (event counts or unique users per
interval, optionally broken down by event or by a property), *funnel* (ordered steps within a conversion
window, ClickHouse `windowFunnel`), *table* (top values of a property, or top events) and *number* (one
aggregate with the change against the previous period of the same length).

Every value in the SQL, property keys included, is a bound parameter; only fixed SQL fragments chosen by
the definition's enums and the configured (validated) table and column names are formatted in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from export_pipeline.clickhouse.connection import Session
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import as_utc, ch_time, iso_utc

CH_TIME = "DateTime64(6, 'UTC')"
INTERVALS = {"hour": "toStartOfHour", "day": "toStartOfDay", "week": "toMonday", "month": "toStartOfMonth"}
EventName = Annotated[str, Field(min_length=1, max_length=400)]
PropertyKey = Annotated[str, Field(min_length=1, max_length=200)]


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date_from: datetime
    date_to: datetime

    @model_validator(mode="after")
    def _range(self):
        for name in ("date_from", "date_to"):
            setattr(self, name, as_utc(getattr(self, name)))
        if self.date_from >= self.date_to:
            raise ValueError("date_to must be after date_from")
        return self


class _ByEventOrProperty(BaseModel):
    """Grouping by a property names its key; grouping by event takes none."""

    grouping: ClassVar[str]
    by: Literal["event", "property"]
    key: PropertyKey | None = None

    @model_validator(mode="after")
    def _key(self):
        if (self.by == "property") != (self.key is not None):
            raise ValueError(f"a {self.grouping} by property needs a key, a {self.grouping} by event takes none")
        return self


class Breakdown(_ByEventOrProperty):
    model_config = ConfigDict(extra="forbid")
    grouping = "breakdown"

    limit: int = Field(10, ge=1, le=50)


class TrendsQuery(_Query):
    kind: Literal["trends"] = "trends"
    events: list[EventName] = Field(min_length=1, max_length=20)
    math: Literal["total", "unique_users"] = "total"
    interval: Literal["hour", "day", "week", "month"] = "day"
    breakdown: Breakdown | None = None


class FunnelQuery(_Query):
    kind: Literal["funnel"] = "funnel"
    steps: list[EventName] = Field(min_length=2, max_length=10)
    window_seconds: int = Field(14 * 86_400, ge=1, le=90 * 86_400)


class TableQuery(_ByEventOrProperty, _Query):
    grouping = "table"

    kind: Literal["table"] = "table"
    by: Literal["event", "property"] = "event"
    math: Literal["total", "unique_users"] = "total"
    limit: int = Field(20, ge=1, le=100)


class NumberQuery(_Query):
    kind: Literal["number"] = "number"
    event: EventName | None = None
    math: Literal["total", "unique_users"] = "total"


InsightQuery = Annotated[TrendsQuery | FunnelQuery | TableQuery | NumberQuery, Field(discriminator="kind")]


@dataclass(frozen=True)
class InsightResult:
    """A computed insight as a table: `columns`, then `rows` of values (also what CSV/XLSX/JSON exports hold)."""

    kind: str
    columns: tuple[str, ...]
    rows: list[tuple]



def _base_filter(table: EventsTable, project_id: int, date_from: datetime, date_to: datetime) -> tuple[str, dict]:
    c = table.col
    where = (
        f"{c('project_id')} = {{project_id:UInt64}} AND {c('timestamp')} >= {{date_from:{CH_TIME}}} "
        f"AND {c('timestamp')} < {{date_to:{CH_TIME}}}"
    )
    return where, {"project_id": project_id, "date_from": ch_time(date_from), "date_to": ch_time(date_to)}


def _measure(table: EventsTable, math: str) -> str:
    return f"uniqExact({table.col('person_id')})" if math == "unique_users" else "count()"


def compute(session: Session, table: EventsTable, project_id: int, query: _Query) -> InsightResult:
    if isinstance(query, TrendsQuery):
        return _trends(session, table, project_id, query)
    if isinstance(query, FunnelQuery):
        return _funnel(session, table, project_id, query)
    if isinstance(query, TableQuery):
        return _table(session, table, project_id, query)
    assert isinstance(query, NumberQuery)
    return _number(session, table, project_id, query)


def _trends(session: Session, table: EventsTable, project_id: int, query: TrendsQuery) -> InsightResult:
    c = table.col
    where, params = _base_filter(table, project_id, query.date_from, query.date_to)
    params["events"] = list(query.events)
    bucket = f"{INTERVALS[query.interval]}({c('timestamp')})"
    if query.breakdown is not None and query.breakdown.by == "property":
        series = f"JSONExtractString({c('properties')}, {{breakdown_key:String}})"
        params["breakdown_key"] = query.breakdown.key
    else:  # no breakdown: one series per event
        series = f"toString({c('event')})"
    top = ""
    if query.breakdown is not None:
        # Only the biggest series; the rest would make an unreadable chart.
        params["breakdown_limit"] = query.breakdown.limit
        top = (
            f" AND {series} IN (SELECT {series} FROM {table.qualified_name} WHERE {where} "
            f"AND {c('event')} IN {{events:Array(String)}} GROUP BY {series} "
            f"ORDER BY count() DESC, {series} LIMIT {{breakdown_limit:UInt32}})"
        )
    sql = (
        f"SELECT {bucket} AS bucket, {series} AS series, {_measure(table, query.math)} AS value "
        f"FROM {table.qualified_name} WHERE {where} AND {c('event')} IN {{events:Array(String)}}{top} "
        f"GROUP BY bucket, series ORDER BY bucket, series"
    )
    rows = session.client.query(sql, parameters=params).result_rows
    return InsightResult("trends", ("bucket", "series", "value"), [(_day(b), s, int(v)) for b, s, v in rows])


def _day(value) -> str:
    """Buckets as ISO 8601: dates as is (week, month), times in UTC with `Z` (chDB may drop the zone)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    return value.isoformat()


def _funnel(session: Session, table: EventsTable, project_id: int, query: FunnelQuery) -> InsightResult:
    c = table.col
    where, params = _base_filter(table, project_id, query.date_from, query.date_to)
    conditions = ", ".join(f"{c('event')} = {{step_{i}:String}}" for i in range(len(query.steps)))
    params.update({f"step_{i}": step for i, step in enumerate(query.steps)})
    params["window"] = query.window_seconds
    sql = (
        f"SELECT level, count() AS users FROM (SELECT {c('person_id')}, "
        f"windowFunnel({{window:UInt64}})(toDateTime({c('timestamp')}), {conditions}) AS level "
        f"FROM {table.qualified_name} WHERE {where} GROUP BY {c('person_id')}) WHERE level > 0 GROUP BY level"
    )
    reached = dict(session.client.query(sql, parameters=params).result_rows)
    rows = []
    for index, step in enumerate(query.steps, start=1):
        users = sum(count for level, count in reached.items() if level >= index)
        rows.append((index, step, users))
    first = rows[0][2] or 1
    return InsightResult(
        "funnel", ("step", "event", "users", "conversion"),
        [(i, step, users, round(users / first, 4)) for i, step, users in rows],
    )


def _table(session: Session, table: EventsTable, project_id: int, query: TableQuery) -> InsightResult:
    c = table.col
    where, params = _base_filter(table, project_id, query.date_from, query.date_to)
    if query.by == "event":
        key = f"toString({c('event')})"
    else:
        key = f"JSONExtractString({c('properties')}, {{key:String}})"
        params["key"] = query.key
    params["limit"] = query.limit
    sql = (
        f"SELECT {key} AS value, {_measure(table, query.math)} AS measure FROM {table.qualified_name} "
        f"WHERE {where} GROUP BY value ORDER BY measure DESC, value LIMIT {{limit:UInt32}}"
    )
    rows = session.client.query(sql, parameters=params).result_rows
    return InsightResult("table", ("value", "count"), [(value, int(measure)) for value, measure in rows])


def _number(session: Session, table: EventsTable, project_id: int, query: NumberQuery) -> InsightResult:
    length = query.date_to - query.date_from
    current = _aggregate(session, table, project_id, query, query.date_from, query.date_to)
    previous = _aggregate(session, table, project_id, query, query.date_from - length, query.date_from)
    change = round((current - previous) / previous, 4) if previous else None
    return InsightResult("number", ("value", "previous", "change"), [(current, previous, change)])


def _aggregate(session: Session, table: EventsTable, project_id: int, query: NumberQuery,
               start: datetime, end: datetime) -> int:
    where, params = _base_filter(table, project_id, start, end)
    if query.event:
        where += f" AND {table.col('event')} = {{event:String}}"
        params["event"] = query.event
    sql = f"SELECT {_measure(table, query.math)} FROM {table.qualified_name} WHERE {where}"
    return int(session.client.command(sql, parameters=params))
