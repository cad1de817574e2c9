"""The analytics tables: events (with the mapping onto an existing cluster's table), persons, their distinct
ids, groups and session recordings' metadata; their default DDL."""

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

# The tables beside events, by logical name; `CLICKHOUSE_TABLES` renames them (same database, our columns).
OTHER_TABLES = ("persons", "person_distinct_ids", "groups", "session_replay_events")

# Granules of at most 1 MiB of data (ClickHouse's default is 10 MiB). A wide `properties` granule is one
# compressed block, and reading in key order holds one decompressed block per part: at 10M events, a month of
# 10 parts streamed in order peaked 215 MB above the engine with 4.4 MB granules, 81 MB with 1 MiB ones, for
# the same compressed size and time (docs/benchmarks.md).
GRANULES = "SETTINGS index_granularity_bytes = 1048576"

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
    # Physical names of the other tables (OTHER_TABLES) where they differ from the logical ones.
    tables: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(EVENT_COLUMNS)
        if unknown:
            raise InvalidRequest(
                f"Unknown event column(s) in CLICKHOUSE_EVENTS_COLUMNS: {sorted(unknown)}.",
                hint=f"Known columns: {', '.join(EVENT_COLUMNS)}.",
            )
        unknown = set(self.tables) - set(OTHER_TABLES)
        if unknown:
            raise InvalidRequest(
                f"Unknown table(s) in CLICKHOUSE_TABLES: {sorted(unknown)}.", hint=f"Known tables: {', '.join(OTHER_TABLES)}."
            )
        for name in (self.database, self.table, *self.columns.values(), *self.tables.values()):
            quote_identifier(name)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventsTable:
        return cls(settings.clickhouse_database, settings.clickhouse_events_table, settings.clickhouse_events_columns,
                   settings.clickhouse_tables)

    def other(self, logical: str) -> str:
        """The qualified name of one of OTHER_TABLES."""
        return f"{quote_identifier(self.database)}.{quote_identifier(self.tables.get(logical, logical))}"

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
ORDER BY ({c('project_id')}, {c('timestamp')}, {c('uuid')})
{GRANULES}""",
            *self._other_ddl(),
        ]

    def _other_ddl(self) -> list[str]:
        time = "DateTime64(6, 'UTC')"
        return [
            # The highest version is the person; the version's is_deleted says whether it still exists.
            f"""CREATE TABLE IF NOT EXISTS {self.other('persons')} (
    project_id UInt64, id UUID, created_at {time}, properties String CODEC(ZSTD(3)),
    is_identified UInt8, is_deleted UInt8, version UInt64, _timestamp {time}
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, id)
{GRANULES}""",
            # Each distinct id belongs to the person of its highest version: ids move when people merge.
            f"""CREATE TABLE IF NOT EXISTS {self.other('person_distinct_ids')} (
    project_id UInt64, distinct_id String, person_id UUID, is_deleted UInt8, version UInt64, _timestamp {time}
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, distinct_id)""",
            f"""CREATE TABLE IF NOT EXISTS {self.other('groups')} (
    project_id UInt64, group_type_index UInt8, group_key String, created_at {time},
    properties String CODEC(ZSTD(3)), _timestamp {time}
)
ENGINE = ReplacingMergeTree(_timestamp)
ORDER BY (project_id, group_type_index, group_key)
{GRANULES}""",
            # One row per session or several (summed on read, as PostHog's aggregating table), so a plain
            # MergeTree; snapshots are blobs in object storage (recordings/blobs.py), not here.
            f"""CREATE TABLE IF NOT EXISTS {self.other('session_replay_events')} (
    project_id UInt64, session_id String, distinct_id String, first_timestamp {time}, last_timestamp {time},
    first_url Nullable(String), click_count Int64, keypress_count Int64, mouse_activity_count Int64,
    active_milliseconds Int64, console_log_count Int64, console_warn_count Int64, console_error_count Int64,
    size Int64, event_count Int64, _timestamp {time}
)
ENGINE = MergeTree
ORDER BY (project_id, session_id)""",
        ]


def init_schema(client: Client, table: EventsTable) -> None:
    """Create the database and the analytics tables if missing (idempotent)."""
    for statement in table.ddl():
        client.command(statement)
