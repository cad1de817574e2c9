"""The bench's own home and its data: each project seeded with exactly the events a measurement wants."""

from __future__ import annotations

import time
from pathlib import Path

from bench.report import log

MAIN_PROJECT = 1  # N events
SMALL_PROJECT = 2  # 1M events, for --rss-check


def bench_env(home: Path) -> dict[str, str]:
    """Variables that pin every process of the bench to its own home (embedded chDB, SQLite, a folder)."""
    return {
        "EXPORT_PIPELINE_HOME": str(home),
        "CLICKHOUSE_URL": f"chdb://{home / 'clickhouse'}",
        "EXPORT_STORAGE_URL": f"file://{home / 'exports'}",
        "EXPORT_PIPELINE_DATABASE_URL": f"sqlite:///{home / 'app.db'}",
    }


def _count(client, table, project: int) -> int:
    sql = f"SELECT count() FROM {table.qualified_name} WHERE {table.col('project_id')} = {{p:UInt64}}"
    return int(client.command(sql, parameters={"p": project}))


def _seed_project(client, table, project: int, events: int) -> None:
    """`events` rows in `project`. seed_events numbers projects from 1, so other projects go via a staging
    table whose rows are copied over with the project id replaced."""
    from export_pipeline.clickhouse.schema import EVENT_COLUMNS, EventsTable, init_schema
    from export_pipeline.clickhouse.seed import seed_events

    if project == 1:
        seed_events(client, table, events=events, projects=1, seed=0)
        return
    staging = EventsTable(table.database, f"{table.table}_bench_staging", table.columns)
    client.command(f"DROP TABLE IF EXISTS {staging.qualified_name}")
    init_schema(client, staging)
    try:
        seed_events(client, staging, events=events, projects=1, seed=project)
        columns = ", ".join(table.col(name) for name in EVENT_COLUMNS)
        rest = ", ".join(staging.col(name) for name in EVENT_COLUMNS[1:])
        client.command(
            f"INSERT INTO {table.qualified_name} ({columns}) "
            f"SELECT toUInt64({{p:UInt64}}), {rest} FROM {staging.qualified_name}",
            parameters={"p": project},
        )
    finally:
        client.command(f"DROP TABLE IF EXISTS {staging.qualified_name}")


def prepare_data(settings, wanted: dict[int, int], *, reuse: bool) -> tuple[str, str]:
    """Make each project hold exactly its wanted rows; returns (description for the report, CH version)."""
    from export_pipeline.clickhouse.connection import ClickHouse
    from export_pipeline.clickhouse.schema import EventsTable, init_schema

    clickhouse = ClickHouse.from_settings(settings)
    table = EventsTable.from_settings(settings)
    notes: list[str] = []
    with clickhouse.session("bench seed") as session:
        client = session.client
        version = str(client.command("SELECT version()"))
        if not reuse:
            client.command(f"DROP TABLE IF EXISTS {table.qualified_name} SYNC")
        init_schema(client, table)
        seeded = False
        for project, events in wanted.items():
            have = _count(client, table, project)
            if reuse and have == events:
                log(f"project {project}: reusing {have:,} events")
                notes.append(f"project {project}: {events:,} events reused")
                continue
            if have:
                log(f"project {project}: has {have:,} events, wanted {events:,}: deleting them")
                client.command(
                    f"ALTER TABLE {table.qualified_name} DELETE WHERE {table.col('project_id')} = {{p:UInt64}}",
                    parameters={"p": project},
                    settings={"mutations_sync": 2},
                )
            log(f"project {project}: seeding {events:,} events")
            started = time.monotonic()
            _seed_project(client, table, project, events)
            elapsed = time.monotonic() - started
            log(f"project {project}: seeded in {elapsed:.1f} s")
            notes.append(f"project {project}: {events:,} events seeded in {elapsed:.1f} s")
            seeded = True
        if seeded or _unmerged(client, table):
            started = time.monotonic()
            # One part per partition: no background merge competes with a measurement later.
            client.command(
                f"OPTIMIZE TABLE {table.qualified_name} FINAL",
                settings={"optimize_skip_merged_partitions": 1, "alter_sync": 2},
            )
            elapsed = time.monotonic() - started
            log(f"OPTIMIZE FINAL in {elapsed:.1f} s")
            notes.append(f"OPTIMIZE FINAL {elapsed:.1f} s")
    return "; ".join(notes), version


def _unmerged(client, table) -> bool:
    sql = (
        "SELECT count() > 0 FROM (SELECT partition FROM system.parts WHERE active AND database = {d:String} "
        "AND table = {t:String} GROUP BY partition HAVING count() > 1)"
    )
    return bool(int(client.command(sql, parameters={"d": table.database, "t": table.table})))

