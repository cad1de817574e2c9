"""The bench's own home and its data: the events table seeded as `export-pipeline seed --events N --projects 1
--seed 1` seeds it, and left as seeded: no OPTIMIZE, so the export reads the many parts a freshly loaded or
continuously written table has."""

from __future__ import annotations

import time
from pathlib import Path

from bench.report import log

PROJECT = 1
SEED = 1


def bench_env(home: Path) -> dict[str, str]:
    """Variables that pin every process of the bench to its own home (embedded chDB, SQLite, Dagster, a folder)."""
    return {
        "EXPORT_PIPELINE_HOME": str(home),
        "CLICKHOUSE_URL": f"chdb://{home / 'clickhouse'}",
        "EXPORT_STORAGE_URL": f"file://{home / 'exports'}",
        "EXPORT_PIPELINE_DATABASE_URL": f"sqlite:///{home / 'app.db'}",
        "DAGSTER_HOME": str(home / "dagster"),
    }


def prepare_data(settings, events: int, *, reuse: bool) -> tuple[str, str]:
    """Make the table hold exactly `events` seeded events of PROJECT; returns (how, ClickHouse version)."""
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable, init_schema
    from export_pipeline.clickhouse.seed import seed_events

    table = EventsTable.from_settings(settings)
    with ClickHouse.from_settings(settings).session("bench seed", merges=True) as session:
        client = session.client
        version = str(client.command("SELECT version()"))
        init_schema(client, table)
        have = int(client.command(f"SELECT count() FROM {table.qualified_name}"))
        if reuse and have == events:
            log(f"reusing {have:,} events")
            return f"{events:,} events reused (seed {SEED})", version
        client.command(f"DROP TABLE IF EXISTS {table.qualified_name} SYNC")
        init_schema(client, table)
        log(f"seeding {events:,} events")
        started = time.monotonic()
        seed_events(client, table, events=events, projects=1, seed=SEED)
        elapsed = time.monotonic() - started
        log(f"seeded in {elapsed:.1f} s")
    return f"{events:,} events seeded in {elapsed:.1f} s (seed {SEED}), not merged", version


def active_parts(settings) -> int:
    """The table's active parts now: what every query of the measurements reads."""
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable

    table = EventsTable.from_settings(settings)
    sql = "SELECT count() FROM system.parts WHERE active AND database = {d:String} AND table = {t:String}"
    with ClickHouse.from_settings(settings).session("bench parts") as session:
        return int(session.client.command(sql, parameters={"d": table.database, "t": table.table}))


def merge_parts(settings) -> float:
    """OPTIMIZE FINAL: only for the --merged comparison, after every figure of the table as seeded."""
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable

    table = EventsTable.from_settings(settings)
    started = time.monotonic()
    with ClickHouse.from_settings(settings).session("bench merge", merges=True) as session:
        session.client.command(f"OPTIMIZE TABLE {table.qualified_name} FINAL", settings={"alter_sync": 2})
    return time.monotonic() - started
