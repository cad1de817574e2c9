"""Insight definitions and the ClickHouse queries that compute them.

Four kinds, each a typed definition validated by pydantic: *trends* (event counts or unique users per
interval, optionally broken down by event or by a property), *funnel* (ordered steps within a conversion
window, ClickHouse `windowFunnel`), *table* (top values of a property, or top events) and *number* (one
aggregate with the change against the previous period of the same length).

Every kind covers a date range (`date_range.py`): absolute (`date_from`, `date_to`) or relative (`date_range`,
e.g. `-7d`), in the insight's `timezone` (IANA, default UTC), which also cuts trends' days, weeks and months.
A query is computed "as of" a moment (now, or a subscription's slot); a trends series whose range runs up to
that moment gets a fourth column, `incomplete`, true for the bucket still filling up.

Every value in the SQL, property keys included, is a bound parameter; only fixed SQL fragments chosen by
the definition's enums and the configured (validated) table and column names are formatted in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from export_pipeline.clickhouse.connection import Session
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import TimeZoneName, as_utc, ch_time, iso_utc, now_utc, wall_to_utc
from export_pipeline.insights.date_range import AbsoluteRange, DateRange, RelativeRange, Unit, unit_start
from export_pipeline.insights.period import UTC_NAME, Period

CH_TIME = "DateTime64(6, 'UTC')"
INTERVALS = {"hour": "toStartOfHour", "day": "toStartOfDay", "week": "toMonday", "month": "toStartOfMonth"}
EventName = Annotated[str, Field(min_length=1, max_length=400)]
PropertyKey = Annotated[str, Field(min_length=1, max_length=200)]


class _Query(BaseModel):
    """The range every kind covers: `date_from` (inclusive) and `date_to` (exclusive), naive meaning wall time
    in `timezone`; or `date_range`, relative to the moment the insight is drawn."""

    model_config = ConfigDict(extra="forbid")

    date_from: datetime | None = None
    date_to: datetime | None = None
    date_range: str | None = Field(None, max_length=20)
    timezone: TimeZoneName = UTC_NAME

    @field_validator("date_range")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        return None if value is None else RelativeRange.parse(value).text

    @model_validator(mode="after")
    def _range(self):
        if self.date_range is not None:
            if self.date_from is not None or self.date_to is not None:
                raise ValueError("give either date_range (relative, e.g. -7d) or date_from and date_to "
                                 "(absolute), not both")
            return self
        if self.date_from is None or self.date_to is None:
            raise ValueError("give date_from and date_to (an absolute range), or date_range (relative to the "
                             "moment it is drawn: e.g. -7d, -4w, mtd, previous_month)")
        zone = ZoneInfo(self.timezone)
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            setattr(self, name, wall_to_utc(value, zone) if value.tzinfo is None else as_utc(value))
        if self.date_from >= self.date_to:
            raise ValueError("date_to must be after date_from")
        return self

    @model_serializer(mode="wrap")
    def _written(self, handler) -> dict[str, Any]:
        """Only the range fields in use, and the time zone unless it is UTC: an insight saved before relative
        ranges and time zones existed reads exactly as it did."""
        data = handler(self)
        for name in ("date_from", "date_to", "date_range"):
            if data.get(name) is None:
                data.pop(name, None)
        if data.get("timezone") == UTC_NAME:
            data.pop("timezone")
        return data

    @property
    def range(self) -> DateRange:
        if self.date_range is not None:
            return RelativeRange.parse(self.date_range)
        assert self.date_from is not None and self.date_to is not None  # checked by _range
        return AbsoluteRange(self.date_from, self.date_to)

    def period(self, as_of: datetime) -> Period:
        """The range as [start, end) instants, resolved as of `as_of` in the insight's time zone."""
        return self.range.resolve(as_of, ZoneInfo(self.timezone))


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
    interval: Unit = "day"
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


def _base_filter(table: EventsTable, project_id: int, period: Period) -> tuple[str, dict]:
    c = table.col
    where = (
        f"{c('project_id')} = {{project_id:UInt64}} AND {c('timestamp')} >= {{date_from:{CH_TIME}}} "
        f"AND {c('timestamp')} < {{date_to:{CH_TIME}}}"
    )
    return where, {"project_id": project_id, "date_from": ch_time(period.start), "date_to": ch_time(period.end)}


def _measure(table: EventsTable, math: str) -> str:
    return f"uniqExact({table.col('person_id')})" if math == "unique_users" else "count()"


def compute(session: Session, table: EventsTable, project_id: int, query: _Query, *,
            as_of: datetime | None = None) -> InsightResult:
    """The insight's table, its range resolved as of `as_of` (default: now)."""
    moment = now_utc() if as_of is None else as_utc(as_of)
    period = query.period(moment)
    if isinstance(query, TrendsQuery):
        return _trends(session, table, project_id, query, period, moment)
    if isinstance(query, FunnelQuery):
        return _funnel(session, table, project_id, query, period)
    if isinstance(query, TableQuery):
        return _table(session, table, project_id, query, period)
    assert isinstance(query, NumberQuery)
    return _number(session, table, project_id, query, period)


def _trends(session: Session, table: EventsTable, project_id: int, query: TrendsQuery, period: Period,
            as_of: datetime) -> InsightResult:
    c = table.col
    where, params = _base_filter(table, project_id, period)
    params["events"] = list(query.events)
    params["timezone"] = query.timezone
    bucket = f"{INTERVALS[query.interval]}({c('timestamp')}, {{timezone:String}})"
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
    zone = ZoneInfo(query.timezone)
    rows = [(_bucket(b, zone), s, int(v)) for b, s, v in session.client.query(sql, parameters=params).result_rows]
    if not period.start <= as_of <= period.end:
        return InsightResult("trends", ("bucket", "series", "value"), rows)
    # The range runs up to "as of": the bucket holding it is still filling up, and is drawn and exported so.
    current = _current_bucket(query.interval, as_of, zone)
    return InsightResult("trends", ("bucket", "series", "value", "incomplete"),
                         [(*row, row[0] == current) for row in rows])


def _current_bucket(interval: Unit, as_of: datetime, zone: ZoneInfo) -> str:
    """The label of the trends bucket holding `as_of`, as `_bucket` writes the bucket ClickHouse returns."""
    start = unit_start(interval, as_of, zone)
    return _bucket(start.astimezone(zone).date() if interval in ("week", "month") else start, zone)


def _bucket(value, zone: ZoneInfo) -> str:
    """Buckets as ISO 8601: dates as is (week, month); times in UTC with `Z` (chDB may drop the zone), or with
    the offset of the insight's own time zone."""
    if not isinstance(value, datetime):
        return value.isoformat()
    return iso_utc(value) if zone.key == UTC_NAME else as_utc(value).astimezone(zone).isoformat()


def _funnel(session: Session, table: EventsTable, project_id: int, query: FunnelQuery,
            period: Period) -> InsightResult:
    c = table.col
    where, params = _base_filter(table, project_id, period)
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


def _table(session: Session, table: EventsTable, project_id: int, query: TableQuery,
           period: Period) -> InsightResult:
    c = table.col
    where, params = _base_filter(table, project_id, period)
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


def _number(session: Session, table: EventsTable, project_id: int, query: NumberQuery,
            period: Period) -> InsightResult:
    length = period.end - period.start
    current = _aggregate(session, table, project_id, query, period)
    previous = _aggregate(session, table, project_id, query, Period(period.start - length, period.start))
    change = round((current - previous) / previous, 4) if previous else None
    return InsightResult("number", ("value", "previous", "change"), [(current, previous, change)])


def _aggregate(session: Session, table: EventsTable, project_id: int, query: NumberQuery,
               period: Period) -> int:
    where, params = _base_filter(table, project_id, period)
    if query.event:
        where += f" AND {table.col('event')} = {{event:String}}"
        params["event"] = query.event
    sql = f"SELECT {_measure(table, query.math)} FROM {table.qualified_name} WHERE {where}"
    return int(session.client.command(sql, parameters=params))
