"""Recurring exports to a customer's folder or bucket: the `batch-exports` command group (Maintainer+)."""

from __future__ import annotations

import click

from export_pipeline.accounts.roles import Role, require_role
from export_pipeline.batch_exports.backfill import launch_backfill, parse_range
from export_pipeline.batch_exports.destinations import Destination, RunState
from export_pipeline.batch_exports.records import RunStore
from export_pipeline.batch_exports.run import build_batch_deps
from export_pipeline.batch_exports.store import DestinationStore
from export_pipeline.batch_exports.views import (
    BackfillView,
    BatchExportList,
    IntervalRunList,
    destination_json,
)
from export_pipeline.cli.common import app_deps, emit, project_option, say
from export_pipeline.defs.graphql import DagsterGraphQL
from export_pipeline.deps import AppDeps

user_option = click.option("--user", required=True, help="Who acts (Maintainer or higher on the project)")


def _allowed(project_id: int, user: str) -> AppDeps:
    app = app_deps()
    require_role(app.roles, app.engine, project_id, user, action="managing batch exports", required=Role.MAINTAINER)
    return app


def _show(destination: Destination) -> None:
    emit(destination_json(destination))


def _owned(project_id: int, user: str, destination_id: str) -> DestinationStore:
    """The store, once `user` may manage the project's batch exports and the destination is the project's."""
    store = DestinationStore(_allowed(project_id, user).engine)
    store.require(destination_id, project_id=project_id)
    return store


@click.group("batch-exports")
def batch_exports() -> None:
    """Batch exports: recurring copies to a folder or bucket.

    A project's events, every hour, day or week, to a local folder or an S3 bucket.

    Each interval of ingestion time becomes files plus a manifest; re-running an interval replaces its files,
    so backfills never duplicate rows. The Dagster daemon's batch_export_sensor runs closed intervals."""


@batch_exports.command("create")
@project_option
@user_option
@click.option("--url", required=True, help="file:///folder or s3://bucket/prefix")
@click.option("--start-at", required=True, help="The first interval's start (ISO 8601; naive: in --timezone)")
@click.option("--name", default=None)
@click.option("--model", default="events", show_default=True)
@click.option("--endpoint-url", default=None, help="S3-compatible endpoint (MinIO, R2, ...)")
@click.option("--credentials-ref", default=None,
              help="NAME of the environment variable holding the AWS keys as JSON (never the keys themselves)")
@click.option("--key-template", default=None,
              help="Folder of each interval, from {project_id} {model} {year} {month} {day} {hour} "
                   "{data_interval_start} {data_interval_end}")
@click.option("--format", "fmt", default="ndjson", show_default=True, help="ndjson, csv or parquet")
@click.option("--compression", default=None, help="gzip, zstd or none (default: gzip; Parquet: zstd)")
@click.option("--file-size-bytes", type=int, default=None, help="Start a new file past this size")
@click.option("--split-by-event", is_flag=True, help="One set of files per event name")
@click.option("--interval", default="hour", show_default=True, help="hour, day or week")
@click.option("--timezone", default="UTC", show_default=True, help="Where days and weeks start")
@click.option("--settle-seconds", type=int, default=None, help="Wait this long after an interval ends (900)")
@click.option("--max-failures", type=int, default=None, help="Pause after this many failed intervals in a row (3)")
@click.option("--notify-email", default=None, help="Where the pause email goes (default: the user's address)")
@click.option("--slack", default=None, help="WORKSPACE:CHANNEL told when the destination pauses")
@click.option("--probe", is_flag=True,
              help="First write and delete a test object there from this machine; create nothing if that fails")
def create(project_id: int, user: str, fmt: str, slack: str | None, probe: bool, **fields) -> None:
    """Create a destination and print it as JSON."""
    _allowed(project_id, user)
    workspace, _, channel = (slack or "").partition(":")
    fields |= {"format": fmt, "slack_workspace": workspace or None, "slack_channel": channel or None}
    destination = DestinationStore(app_deps().engine).create(project_id, user, fields, probe=probe)
    say(f"Created {destination.id}; the batch_export_sensor exports its intervals once they close.")
    _show(destination)


@batch_exports.command("list")
@project_option
@user_option
def list_(project_id: int, user: str) -> None:
    """The project's destinations as JSON, as the API answers them."""
    app = _allowed(project_id, user)
    emit(BatchExportList.of(DestinationStore(app.engine).list(project_id)).model_dump(mode="json"))


@batch_exports.command("show")
@project_option
@user_option
@click.argument("destination_id")
def show(project_id: int, user: str, destination_id: str) -> None:
    """One destination as JSON."""
    _show(_owned(project_id, user, destination_id).require(destination_id))


@batch_exports.command("pause")
@project_option
@user_option
@click.argument("destination_id")
def pause(project_id: int, user: str, destination_id: str) -> None:
    """Stop requesting intervals (a running one finishes)."""
    _show(_owned(project_id, user, destination_id).set_paused(destination_id, True, f"Paused by {user}."))


@batch_exports.command("resume")
@project_option
@user_option
@click.argument("destination_id")
def resume(project_id: int, user: str, destination_id: str) -> None:
    """Run again: failed intervals first, then new ones."""
    _show(_owned(project_id, user, destination_id).set_paused(destination_id, False))


@batch_exports.command("delete")
@project_option
@user_option
@click.argument("destination_id")
def delete(project_id: int, user: str, destination_id: str) -> None:
    """Forget a destination and its runs (files stay)."""
    _owned(project_id, user, destination_id).delete(destination_id)
    emit({"deleted": destination_id})


@batch_exports.command("runs")
@project_option
@user_option
@click.argument("destination_id")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in RunState]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True)
def runs(project_id: int, user: str, destination_id: str, states: tuple[str, ...], limit: int) -> None:
    """Per-interval records as JSON: state, rows, bytes, files, error."""
    found = RunStore(_owned(project_id, user, destination_id).engine).list(destination_id, states=[RunState(s) for s in states], limit=limit)
    emit(IntervalRunList.of(found).model_dump(mode="json"))


@batch_exports.command("backfill")
@project_option
@user_option
@click.argument("destination_id")
@click.option("--start", required=True, help="ISO 8601, inclusive (naive: UTC)")
@click.option("--end", required=True, help="ISO 8601, exclusive")
def backfill(project_id: int, user: str, destination_id: str, start: str, end: str) -> None:
    """Export a range again as a Dagster backfill.

    Through the GraphQL API at DAGSTER_WEBSERVER_URL; empty intervals are skipped at once."""
    app = _allowed(project_id, user)
    DestinationStore(app.engine).require(destination_id, project_id=project_id)
    first, last = parse_range(start, end)
    batch = build_batch_deps(app.settings, app.engine, app.clickhouse)
    launched = launch_backfill(DagsterGraphQL(app.settings.dagster_url), batch, destination_id, first, last,
                               requested_by=user)
    if launched.backfill_id:
        say(f"Backfill {launched.backfill_id}: {len(launched.intervals)} interval(s); watch it in the Dagster UI "
            f"under Overview > Backfills.")
    else:
        say("Every interval of the range is empty: nothing to run.")
    emit(BackfillView.of(launched).model_dump(mode="json"))


COMMANDS = [batch_exports]
