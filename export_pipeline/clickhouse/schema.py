"""The events table: its default DDL and the mapping onto an existing cluster's table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

from export_pipeline.errors import InvalidRequest
from export_pipeline.settings import Settings

EVENT_COLUMNS = (
    "project_id",
    "uuid",
    "event",
    "timestamp",
    "distinct_id",
    "person_id",
    "properties",
    "created_at",
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_identifier(name: str) -> str:
    """Backtick-quote a configured identifier; anything but a plain name is refused, never escaped."""
    if not _IDENTIFIER.match(name):
        raise InvalidRequest(
            f"{name!r} is not a valid ClickHouse identifier.",
            hint="Use letters, digits and underscores in CLICKHOUSE_DATABASE, CLICKHOUSE_EVENTS_TABLE "
            "and CLICKHOUSE_EVENTS_COLUMNS.",
        )
    return f"`{name}`"


@dataclass(frozen=True)
class EventsTable:
    """Where events live. `columns` maps our logical column names to the table's physical ones."""

    database: str = "analytics"
    table: str = "events"
    columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(EVENT_COLUMNS)
        if unknown:
            raise InvalidRequest(
                f"Unknown event column(s) in CLICKHOUSE_EVENTS_COLUMNS: {sorted(unknown)}.",
                hint=f"Known columns: {', '.join(EVENT_COLUMNS)}.",
            )
        for name in (self.database, self.table, *self.columns.values()):
            quote_identifier(name)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventsTable:
        return cls(settings.clickhouse_database, settings.clickhouse_events_table, settings.clickhouse_events_columns)

    @property
    def qualified_name(self) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(self.table)}"

    def col(self, logical: str) -> str:
        """The quoted physical column for a logical column name."""
        return quote_identifier(self.columns.get(logical, logical))

    def ddl(self) -> list[str]:
        c = self.col
        return [
            f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}",
            f"""CREATE TABLE IF NOT EXISTS {self.qualified_name} (
    {c('project_id')} UInt64,
    {c('uuid')} UUID,
    {c('event')} LowCardinality(String),
    {c('timestamp')} DateTime64(6, 'UTC'),
    {c('distinct_id')} String,
    {c('person_id')} UUID,
    {c('properties')} String CODEC(ZSTD(3)),
    {c('created_at')} DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM({c('timestamp')})
ORDER BY ({c('project_id')}, {c('timestamp')}, {c('uuid')})""",
        ]


def init_schema(client: Client, table: EventsTable) -> None:
    """Create the database and events table if missing (idempotent)."""
    for statement in table.ddl():
        client.command(statement)
