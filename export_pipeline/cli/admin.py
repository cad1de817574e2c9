"""Setting up and running the service: init, seed, sweep, api."""

from __future__ import annotations

import time

import click

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clickhouse.schema import EventsTable, init_schema
from export_pipeline.clickhouse.seed import seed_events
from export_pipeline.clickhouse.seed_people import seed_people
from export_pipeline.clock import now_utc
from export_pipeline.db import get_engine
from export_pipeline.defs.instance import dagster_instance, ensure_dagster_home
from export_pipeline.demo.cohorts import seed_app_people
from export_pipeline.deps import AppDeps
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.lifecycle import sweep_expired
from export_pipeline.recordings.blobs import RecordingBlobs
from export_pipeline.recordings.seed import seed_recordings
from export_pipeline.settings import Settings
from export_pipeline.storage import storage_from_url


@click.command()
def init() -> None:
    """Create the ClickHouse schema and the app database.

    Also the Dagster home. Idempotent: what exists is kept."""
    settings = Settings()
    clickhouse = ClickHouse.from_settings(settings)
    table = EventsTable.from_settings(settings)
    with clickhouse.session("init") as session:
        init_schema(session.client, table)
    get_engine(settings.database_url)
    home = ensure_dagster_home(settings)
    click.echo(f"ClickHouse: {clickhouse.display_url} -> {table.qualified_name} ready")
    click.echo(f"App database: {settings.database_url.split('@')[-1]} ready")
    click.echo(f"Dagster home: {home}")


@click.command()
@click.option("--events", type=click.IntRange(min=0), default=100_000, show_default=True)
@click.option("--projects", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seed", "seed_value", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--persons", type=click.IntRange(min=0), default=0, show_default=True,
              help="Persons without events to add (split over the projects), beyond the events' users")
@click.option("--recordings", type=click.IntRange(min=0), default=10, show_default=True,
              help="Sessions per project that get a recording (rrweb snapshots in RECORDINGS_STORAGE_URL)")
@click.option("--if-empty", is_flag=True, help="Only seed when the events table has no rows (re-runnable demo)")
def seed(events: int, projects: int, seed_value: int, persons: int, recordings: int, if_empty: bool) -> None:
    """Load deterministic demo data into ClickHouse.

    Events are generated inside ClickHouse, so seeding a million takes seconds. Persons are the events' users
    (with versions, merges and deletions), organizations those the events' $groups name; each project also
    gets group type names and two demo cohorts in the app database, and a sample of its sessions a recording."""
    settings = Settings()
    clickhouse = ClickHouse.from_settings(settings)
    table = EventsTable.from_settings(settings)
    started = time.monotonic()
    with clickhouse.session("seed", merges=True) as session:
        init_schema(session.client, table)
        existing = int(session.client.command(f"SELECT count() FROM {table.qualified_name}"))
        if if_empty and existing:
            click.echo(f"{table.qualified_name} already holds {existing:,} events; not seeding (--if-empty).")
            return
        inserted = seed_events(session.client, table, events=events, projects=projects, seed=seed_value)
        click.echo(f"Inserted {inserted:,} events into {table.qualified_name} in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        seed_people(session.client, table, projects=projects, seed=seed_value, extra_per_project=-(-persons // projects))
        first_people = {
            project_id: [str(pid) for (pid,) in session.client.query(
                f"SELECT DISTINCT id FROM {table.other('persons')} WHERE project_id = {{p:UInt64}} ORDER BY id LIMIT 25",
                parameters={"p": project_id}).result_rows]
            for project_id in range(1, projects + 1)
        }
        blobs = RecordingBlobs(storage_from_url(settings.recordings_storage_url))
        recorded = sum(seed_recordings(session.client, table, blobs, project_id=project_id, sessions=recordings,
                                       seed=seed_value) for project_id in range(1, projects + 1))
    engine = get_engine(settings.database_url)
    for project_id, people in first_people.items():
        seed_app_people(engine, project_id, static_people=people)
    click.echo(f"Seeded persons, distinct ids, organizations, demo cohorts and {recorded} recordings of "
               f"{projects} project(s) in {time.monotonic() - started:.1f} s")


@click.command()
def sweep() -> None:
    """Delete expired exports now.

    The Dagster schedule does this hourly."""
    settings = Settings()
    deps = ExportDeps.of(AppDeps.from_settings(settings))
    swept = sweep_expired(deps.store, deps.storage, now=now_utc())
    instance = dagster_instance(settings)
    from export_pipeline.defs.exports import drop_partition  # imports Dagster: only here

    for request, deleted in swept:
        drop_partition(instance, request.id)
        click.echo(f"expired {request.id}: {deleted} file(s) deleted")
    click.echo(f"{len(swept)} export(s) expired")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def api(host: str, port: int) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from export_pipeline.api.app import create_app

    ensure_dagster_home(Settings())
    uvicorn.run(create_app(), host=host, port=port, ws="none")  # no websockets served


COMMANDS = [init, seed, sweep, api]
