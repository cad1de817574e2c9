"""`export-pipeline`: set up, seed, manage members, request exports and follow them.

Exit codes: 0 success, 1 the export (or command) failed, 2 invalid input or refused access.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import click
import zstandard

from export_pipeline.accounts.emails import get_user_email, is_email, optional_email, set_user_email
from export_pipeline.accounts.roles import (
    Role,
    add_member,
    list_members,
    remove_member,
    require_role,
    role_source,
)
from export_pipeline.accounts.tokens import create_token, list_tokens, revoke_token
from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clickhouse.schema import EventsTable, init_schema
from export_pipeline.clickhouse.seed import seed_events
from export_pipeline.clock import now_utc
from export_pipeline.db import get_engine
from export_pipeline.embed.share import ShareLinks, embed_path
from export_pipeline.errors import AccessDenied, ExportPipelineError, InvalidRequest, NotFound
from export_pipeline.exports.deps import ExportDeps, build_deps
from export_pipeline.exports.lifecycle import sweep_expired
from export_pipeline.exports.requests import ExportRequest, ExportState, ExportStore
from export_pipeline.exports.run import describe
from export_pipeline.exports.spec import parse_spec
from export_pipeline.insights.queries import compute
from export_pipeline.insights.store import InsightStore
from export_pipeline.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAEMON_HEARTBEAT_FRESH_SECONDS = 60


def _deps(settings: Settings) -> ExportDeps:
    return build_deps(settings)


def _emit(payload: dict) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False))


class _Cli(click.Group):
    """Print errors we can explain as one clear message (and the hint), never as a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ExportPipelineError as error:
            click.secho(f"error: {error.message}", fg="red", err=True)
            if error.hint:
                click.echo(f"hint: {error.hint}", err=True)
            ctx.exit(2 if isinstance(error, (InvalidRequest, AccessDenied)) else 1)


@click.group(cls=_Cli)
def main() -> None:
    """Export product-analytics events from ClickHouse to files, through Dagster."""


@main.command()
def init() -> None:
    """Create the ClickHouse schema, the app database and the Dagster home (idempotent)."""
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


@main.command()
@click.option("--events", type=click.IntRange(min=0), default=100_000, show_default=True)
@click.option("--projects", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seed", "seed_value", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--if-empty", is_flag=True, help="Only seed when the events table has no rows (re-runnable demo)")
def seed(events: int, projects: int, seed_value: int, if_empty: bool) -> None:
    """Load deterministic demo events into ClickHouse (generated inside ClickHouse)."""
    settings = Settings()
    clickhouse = ClickHouse.from_settings(settings)
    table = EventsTable.from_settings(settings)
    started = time.monotonic()
    with clickhouse.session("seed") as session:
        init_schema(session.client, table)
        existing = int(session.client.command(f"SELECT count() FROM {table.qualified_name}"))
        if if_empty and existing:
            click.echo(f"{table.qualified_name} already holds {existing:,} events; not seeding (--if-empty).")
            return
        inserted = seed_events(session.client, table, events=events, projects=projects, seed=seed_value)
    click.echo(f"Inserted {inserted:,} events into {table.qualified_name} in {time.monotonic() - started:.1f} s")


@main.group()
def members() -> None:
    """Project members and their GitLab access levels."""


@members.command("add")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--user", required=True)
@click.option("--role", required=True, help="guest, planner, reporter, developer, maintainer or owner")
def members_add(project_id: int, user: str, role: str) -> None:
    parsed = Role.parse(role)
    add_member(get_engine(Settings().database_url), project_id, user, parsed)
    click.echo(f"{user} is now {parsed.label} on project {project_id}")


@members.command("remove")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--user", required=True)
def members_remove(project_id: int, user: str) -> None:
    remove_member(get_engine(Settings().database_url), project_id, user)
    click.echo(f"{user} removed from project {project_id}")


@members.command("list")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
def members_list(project_id: int) -> None:
    for user, role in list_members(get_engine(Settings().database_url), project_id):
        click.echo(f"{user}\t{role.name.lower()}\t{int(role)}")


@main.command()
@click.option("--project-id", required=True)
@click.option("--requested-by", required=True)
@click.option("--resource", default="events", show_default=True, help="events, insight or dashboard")
@click.option("--target-id", default=None, help="The insight or dashboard id (for those resources)")
@click.option("--format", "fmt", default="ndjson", show_default=True,
              help="events: ndjson, json, csv, parquet; insight/dashboard: png, csv, xlsx, json")
@click.option("--width", type=click.IntRange(400, 3000), default=None,
              help="PNG width in pixels [default: 800 for an insight, 1920 for a dashboard]")
@click.option("--compression", default=None, help="gzip, zstd or none [default: gzip; zstd for parquet]")
@click.option("--date-from", default=None, help="ISO 8601 date or datetime, inclusive (UTC if no zone)")
@click.option("--date-to", default=None, help="ISO 8601; exclusive, but a bare date includes that day")
@click.option("--event", "events", multiple=True, help="Only these event names (repeatable)")
@click.option("--notify-email", default=None, help="Email the result here [default: the requester's stored address]")
@click.option("--wait", is_flag=True, help="Wait for the export and print its result")
def export(
    project_id: str,
    requested_by: str,
    resource: str,
    target_id: str | None,
    fmt: str,
    width: int | None,
    compression: str | None,
    date_from: str | None,
    date_to: str | None,
    events: tuple[str, ...],
    notify_email: str | None,
    wait: bool,
) -> None:
    """Request an export of a project's events; it runs as a partition of Dagster's export_job."""
    settings = Settings()
    deps = _deps(settings)
    notify = optional_email(notify_email, field="notify_email")
    spec = parse_spec(
        project_id=project_id,
        requested_by=requested_by,
        format=fmt,
        compression=compression,
        date_from=date_from,
        date_to=date_to,
        events=events,
        resource=resource,
        target_id=target_id,
        width=width,
    )
    try:
        require_role(deps.roles, deps.store.engine, spec.project_id, spec.requested_by,
                     action=f"exporting {spec.resource}")
    except AccessDenied as denied:
        _emit({"export_id": None, "status": "refused", "error": {"code": denied.code, "message": str(denied)}})
        raise
    request = deps.store.create(spec, source="cli", notify_email=notify)
    instance = dagster_instance(settings)
    from export_pipeline.defs.exports import EXPORT_PARTITIONS

    instance.add_dynamic_partitions(EXPORT_PARTITIONS.name, [request.id])  # type: ignore[arg-type]
    if not wait:
        _emit({**describe(request, deps), "note": "Queued: the Dagster daemon's sensor will run it (make dev)."})
        return
    if daemon_is_running(instance):
        click.echo(f"Export {request.id} queued; the Dagster daemon will run it.", err=True)
    else:
        click.echo(f"Export {request.id}: no Dagster daemon running, exporting in this process.", err=True)
        _run_in_process(instance, request.id)
    final = _follow(deps.store, request)
    _emit(describe(final, deps))
    if final.state is not ExportState.SUCCEEDED:
        sys.exit(1)


def _run_in_process(instance, export_id: str) -> None:
    """Execute the partition's run on a thread (recorded in the same Dagster instance, so the UI shows it)."""
    from export_pipeline.definitions import defs

    job = defs.resolve_job_def("export_job")

    def execute() -> None:
        # The CLI prints progress itself; the run's full log is in the Dagster UI.
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        job.execute_in_process(instance=instance, partition_key=export_id, run_config=quiet, raise_on_error=False)

    threading.Thread(target=execute, name="export-run", daemon=True).start()


def _follow(store: ExportStore, request: ExportRequest) -> ExportRequest:
    """Poll the request until it finishes, printing progress to stderr."""
    shown = None
    while True:
        current = store.require(request.id)
        line = f"{current.state.value}: {current.row_count:,} rows, {current.byte_count / 1e6:,.1f} MB"
        if line != shown:
            click.echo(line, err=True)
            shown = line
        if current.is_terminal:
            return current
        time.sleep(0.5)


@main.command()
@click.argument("export_id")
def status(export_id: str) -> None:
    """Print an export's state, files and download links as JSON."""
    deps = _deps(Settings())
    _emit(describe(deps.store.require(export_id), deps))


@main.command()
@click.argument("export_id")
@click.option("--lines", type=click.IntRange(min=1), default=3, show_default=True)
def preview(export_id: str, lines: int) -> None:
    """Print the first lines of an export's first file (decompressed)."""
    deps = _deps(Settings())
    request = deps.store.require(export_id)
    if request.state is not ExportState.SUCCEEDED or not request.manifest_key:
        raise InvalidRequest(f"Export {export_id} is {request.state.value}, not succeeded: nothing to preview.")
    manifest = json.loads(deps.storage.read_bytes(request.manifest_key))
    first = manifest["files"][0]["name"]
    if first.endswith(".parquet"):
        import polars as pl

        frame = pl.read_parquet(io.BytesIO(deps.storage.read_bytes(f"{request.storage_prefix}/{first}")))
        click.echo(frame.head(lines))
        return
    raw = deps.storage.open_reader(f"{request.storage_prefix}/{first}")
    if first.endswith(".gz"):
        raw = gzip.GzipFile(fileobj=raw)
    elif first.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(raw)
    text = io.TextIOWrapper(raw, encoding="utf-8")
    for _ in range(lines):
        line = text.readline()
        if not line:
            break
        click.echo(line[:400] + (" …" if len(line) > 400 else ""), nl=not line.endswith("\n") or len(line) > 400)


@main.command()
def sweep() -> None:
    """Delete expired exports now (the Dagster schedule does this hourly)."""
    settings = Settings()
    deps = _deps(settings)
    swept = sweep_expired(deps.store, deps.storage, now=now_utc())
    instance = dagster_instance(settings)
    from export_pipeline.defs.exports import drop_partition

    for request, deleted in swept:
        drop_partition(instance, request.id)
        click.echo(f"expired {request.id}: {deleted} file(s) deleted")
    click.echo(f"{len(swept)} export(s) expired")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def api(host: str, port: int) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from export_pipeline.api.app import create_app

    ensure_dagster_home(Settings())
    uvicorn.run(create_app(), host=host, port=port, ws="none")  # no websockets served


@main.group()
def users() -> None:
    """Users' email addresses, where finished-export emails go."""


@users.command("set-email")
@click.option("--user", required=True)
@click.option("--email", required=True)
def users_set_email(user: str, email: str) -> None:
    """Email this user's finished exports here (unless a request names its own address)."""
    stored = set_user_email(get_engine(Settings().database_url), user, email)
    click.echo(f"{stored.user}\t{stored.email}")


@users.command("show")
@click.option("--user", required=True)
def users_show(user: str) -> None:
    """Where this user's finished-export emails go."""
    stored = get_user_email(get_engine(Settings().database_url), user)
    if stored is not None:
        click.echo(f"{stored.user}\t{stored.email}\tset {stored.updated_at:%Y-%m-%dT%H:%M:%SZ}")
    elif is_email(user):
        click.echo(f"{user}\t{user}\tthe user name (no address stored)")
    else:
        raise NotFound(
            f"No email address for {user!r}: their exports send no email unless a request names one.",
            hint=f"export-pipeline users set-email --user {user} --email ADDRESS",
        )


@main.group()
def tokens() -> None:
    """Personal access tokens for the HTTP API."""


@tokens.command("create")
@click.option("--user", required=True)
@click.option("--name", default="cli", show_default=True)
@click.option("--expires-in-days", type=click.IntRange(min=1), default=90, show_default=True)
def tokens_create(user: str, name: str, expires_in_days: int) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    token, info = create_token(get_engine(Settings().database_url), user, name=name, expires_in_days=expires_in_days)
    click.echo(token)
    click.echo(f"token {info.id} for {info.user}, expires {info.expires_at:%Y-%m-%d}; it is not shown again", err=True)


@tokens.command("list")
@click.option("--user", required=True)
def tokens_list(user: str) -> None:
    for info in list_tokens(get_engine(Settings().database_url), user):
        state = "revoked" if info.revoked_at else "active"
        click.echo(f"{info.id}\t{info.name}\t{state}\texpires {info.expires_at or 'never'}")


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    revoke_token(get_engine(Settings().database_url), token_id)
    click.echo(f"token {token_id} revoked")


@main.group()
def insights() -> None:
    """Insights: charts over a project's events."""


@insights.command("create")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--user", required=True, help="Who creates it (Maintainer or higher)")
@click.option("--name", required=True)
@click.option("--query", "query_json", required=True, help='JSON, e.g. {"kind": "trends", "events": ["$pageview"], ...}')
@click.option("--description", default="")
def insights_create(project_id: int, user: str, name: str, query_json: str, description: str) -> None:
    store, roles = _insight_store()
    require_role(roles, store.engine, project_id, user, action="changing insights and dashboards")
    insight = store.create_insight(project_id, name=name, query=_json_option(query_json, "query"),
                                   created_by=user, description=description)
    _emit(insight.to_json())


@insights.command("list")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
def insights_list(project_id: int) -> None:
    store, _ = _insight_store()
    for insight in store.list_insights(project_id):
        click.echo(f"{insight.id}\t{insight.query.kind}\t{insight.name}")


@insights.command("show")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.argument("insight_id")
def insights_show(project_id: int, insight_id: str) -> None:
    """Compute an insight and print its table."""
    settings = Settings()
    store, _ = _insight_store()
    insight = store.insight(project_id, insight_id)
    with ClickHouse.from_settings(settings).session(f"insight {insight_id}") as session:
        result = compute(session, EventsTable.from_settings(settings), project_id, insight.query)
    click.echo("\t".join(result.columns))
    for row in result.rows:
        click.echo("\t".join(str(value) for value in row))


@main.group("share-links")
def share_links_group() -> None:
    """Share links: anyone with the link may view an insight's or dashboard's embed page."""


@share_links_group.command("create")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--user", required=True, help="Who shares it (Maintainer or higher)")
@click.option("--resource", type=click.Choice(["insight", "dashboard"]), required=True)
@click.option("--target-id", required=True, help="The insight or dashboard id")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None, help="[default: until revoked]")
def share_links_create(project_id: int, user: str, resource: str, target_id: str, expires_in_days: int | None) -> None:
    """Print the link (shown only now) and its id (to revoke it)."""
    settings = Settings()
    store, roles = _insight_store()
    require_role(roles, store.engine, project_id, user, action="sharing insights and dashboards")
    (store.insight if resource == "insight" else store.dashboard)(project_id, target_id)
    expires = now_utc() + timedelta(days=expires_in_days) if expires_in_days else None
    token, link = ShareLinks(store.engine).create(project_id, resource, target_id, created_by=user, expires_at=expires)
    _emit({**link.to_json(), "url": settings.api_base_url.rstrip("/") + embed_path(resource, token)})


@share_links_group.command("revoke")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.argument("link_id")
def share_links_revoke(project_id: int, link_id: str) -> None:
    store, _ = _insight_store()
    _emit(ShareLinks(store.engine).revoke(project_id, link_id).to_json())


@main.group("subscriptions")
def subscriptions_group() -> None:
    """Subscriptions: an insight or dashboard sent on a schedule to email addresses and Slack channels."""


@subscriptions_group.command("create")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--user", required=True, help="Who subscribes (any member; it is their subscription)")
@click.option("--resource", type=click.Choice(["insight", "dashboard"]), required=True)
@click.option("--target-id", required=True, help="The insight or dashboard id")
@click.option("--title", required=True)
@click.option("--message", default=None, help="Text shown above the report")
@click.option("--schedule", "schedule_json", required=True,
              help='JSON, e.g. {"frequency": "weekly", "weekdays": ["MO"], "hour": 9, "timezone": "Europe/Berlin"}')
@click.option("--email", "emails", multiple=True, help="Send to this address (repeatable)")
@click.option("--slack", "slacks", multiple=True, help="Send to WORKSPACE:CHANNEL (repeatable)")
def subscriptions_create(project_id: int, user: str, resource: str, target_id: str, title: str,
                         message: str | None, schedule_json: str, emails: tuple[str, ...],
                         slacks: tuple[str, ...]) -> None:
    store, insights, roles = _subscription_stores()
    require_role(roles, store.engine, project_id, user, action="subscribing to reports", required=Role.GUEST)
    (insights.insight if resource == "insight" else insights.dashboard)(project_id, target_id)
    if not emails and not slacks:
        raise InvalidRequest("A subscription needs at least one destination.", hint="Give --email or --slack.",
                             details={"destinations": "none given"})
    destinations = [{"kind": "email", "email": email} for email in emails]
    for spec in slacks:
        workspace, _, channel = spec.partition(":")
        if not workspace.strip() or not channel.strip():
            raise InvalidRequest(f"--slack {spec!r} must be WORKSPACE:CHANNEL, e.g. acme:#reports.",
                                 details={"slack": spec})
        destinations.append({"kind": "slack", "workspace": workspace.strip(), "channel": channel.strip()})
    created = store.create(project_id, {
        "resource": resource, "target_id": target_id, "title": title, "message": message,
        "schedule": _json_option(schedule_json, "schedule"), "destinations": destinations,
    }, created_by=user)
    _emit(created.to_json())


@subscriptions_group.command("list")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
def subscriptions_list(project_id: int) -> None:
    store, _, _ = _subscription_stores()
    _emit({"data": [subscription.to_json() for subscription in store.list(project_id)]})


@subscriptions_group.command("show")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--deliveries", "limit", type=click.IntRange(1, 50), default=10, show_default=True,
              help="How many of the latest deliveries to show")
@click.argument("subscription_id")
def subscriptions_show(project_id: int, limit: int, subscription_id: str) -> None:
    """The subscription and its latest deliveries, with each destination's outcome."""
    from export_pipeline.subscriptions.views import deliveries_json

    store, _, _ = _subscription_stores()
    subscription = store.get(project_id, subscription_id)
    _emit({**subscription.to_json(), "deliveries": deliveries_json(store, subscription, limit=limit)})


@subscriptions_group.command("disable")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.argument("subscription_id")
def subscriptions_disable(project_id: int, subscription_id: str) -> None:
    store, _, _ = _subscription_stores()
    _emit(store.update(project_id, subscription_id, {"enabled": False}).to_json())


@subscriptions_group.command("enable")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.argument("subscription_id")
def subscriptions_enable(project_id: int, subscription_id: str) -> None:
    """Resume sending (slots missed while disabled are not sent late)."""
    store, _, _ = _subscription_stores()
    _emit(store.update(project_id, subscription_id, {"enabled": True}).to_json())


@subscriptions_group.command("send-now")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.argument("subscription_id")
def subscriptions_send_now(project_id: int, subscription_id: str) -> None:
    """Deliver the subscription now (a delivery for this minute), and print the outcome per destination.

    Runs in this process when no Dagster daemon runs (recorded in the same instance, so the UI shows it)."""
    from export_pipeline.defs.subscriptions import DELIVERY_PARTITIONS
    from export_pipeline.subscriptions.records import FINISHED_STATES
    from export_pipeline.subscriptions.views import deliveries_json

    settings = Settings()
    store, _, _ = _subscription_stores()
    subscription = store.get(project_id, subscription_id)
    delivery = store.request_delivery(subscription, now_utc().replace(second=0, microsecond=0))
    instance = dagster_instance(settings)
    instance.add_dynamic_partitions(DELIVERY_PARTITIONS.name, [delivery.id])  # type: ignore[arg-type]
    if not daemon_is_running(instance):
        click.echo(f"Delivery {delivery.id}: no Dagster daemon running, delivering in this process.", err=True)
        from export_pipeline.definitions import defs

        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        defs.resolve_job_def("subscription_delivery_job").execute_in_process(
            instance=instance, partition_key=delivery.id, run_config=quiet, raise_on_error=False)
    else:
        click.echo(f"Delivery {delivery.id} queued; the Dagster daemon will run it.", err=True)
        deadline = time.monotonic() + 1800
        while (current := store.delivery(delivery.id)) is not None and current.state not in FINISHED_STATES:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    [shown] = [d for d in deliveries_json(store, subscription, limit=50) if d["id"] == delivery.id]
    _emit(shown)
    if shown["state"] != "succeeded":
        sys.exit(1)


@subscriptions_group.command("demo")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--user", required=True)
@click.option("--dashboard-id", required=True)
def subscriptions_demo(project_id: int, user: str, dashboard_id: str) -> None:
    """Subscribe the demo team (email and Slack; the outbox without credentials) to a dashboard, once."""
    store, _, _ = _subscription_stores()
    found = [s for s in store.list(project_id) if s.title == DEMO_SUBSCRIPTION and s.target_id == dashboard_id]
    subscription = found[0] if found else store.create(project_id, {
        "resource": "dashboard", "target_id": dashboard_id, "title": DEMO_SUBSCRIPTION,
        "message": "Good morning! Here is last week in numbers.",
        "schedule": {"frequency": "weekly", "weekdays": ["MO"], "hour": 9, "timezone": "Europe/Berlin"},
        "destinations": [{"kind": "email", "email": "team@example.com"},
                         {"kind": "slack", "workspace": "demo", "channel": "#weekly-metrics"}],
    }, created_by=user)
    _emit(subscription.to_json())


DEMO_SUBSCRIPTION = "Weekly product metrics"


@subscriptions_group.command("delete")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.argument("subscription_id")
def subscriptions_delete(project_id: int, subscription_id: str) -> None:
    store, _, _ = _subscription_stores()
    store.delete(project_id, subscription_id)
    _emit({"id": subscription_id, "deleted": True})


def _subscription_stores():
    from export_pipeline.subscriptions.store import SubscriptionStore

    insights, roles = _insight_store()
    return SubscriptionStore(insights.engine), insights, roles


@main.group()
def dashboards() -> None:
    """Dashboards: ordered insight tiles."""


@dashboards.command("create")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--user", required=True)
@click.option("--name", required=True)
@click.option("--tile", "tiles", multiple=True, help="INSIGHT_ID or INSIGHT_ID:WIDTHxHEIGHT (repeatable, in order)")
def dashboards_create(project_id: int, user: str, name: str, tiles: tuple[str, ...]) -> None:
    store, roles = _insight_store()
    require_role(roles, store.engine, project_id, user, action="changing insights and dashboards")
    _emit(store.create_dashboard(project_id, name=name, tiles=[_tile(t) for t in tiles], created_by=user).to_json())


@dashboards.command("list")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
def dashboards_list(project_id: int) -> None:
    store, _ = _insight_store()
    for dashboard in store.list_dashboards(project_id):
        click.echo(f"{dashboard.id}\t{len(dashboard.tiles)} tiles\t{dashboard.name}")


@dashboards.command("demo")
@click.option("--project-id", type=click.IntRange(min=1), required=True)
@click.option("--user", required=True)
def dashboards_demo(project_id: int, user: str) -> None:
    """Create the demo dashboard over the seeded events (once: re-running keeps the existing one)."""
    store, roles = _insight_store()
    require_role(roles, store.engine, project_id, user, action="changing insights and dashboards")
    existing = [d for d in store.list_dashboards(project_id) if d.name == DEMO_DASHBOARD]
    if existing:
        click.echo(f"{DEMO_DASHBOARD!r} exists: {existing[0].id}", err=True)
        _emit({"dashboard_id": existing[0].id})
        return
    window = {"date_from": "2026-05-01", "date_to": "2026-10-28"}  # the seeded six months
    created = [
        store.create_insight(project_id, name=name, query={**query, **window}, created_by=user)
        for name, query in DEMO_INSIGHTS
    ]
    tiles = [{"insight_id": i.id, "width": 12 if i.query.kind == "trends" else 6} for i in created]
    dashboard = store.create_dashboard(project_id, name=DEMO_DASHBOARD, tiles=tiles, created_by=user)
    click.echo(f"Created {DEMO_DASHBOARD!r} ({dashboard.id}) with {len(tiles)} insights", err=True)
    _emit({"dashboard_id": dashboard.id, "insights": {insight.id: insight.name for insight in created}})


DEMO_DASHBOARD = "Demo dashboard"
DEMO_INSIGHTS = [
    ("Weekly pageviews and sign-ups", {"kind": "trends", "events": ["$pageview", "signed_up"], "interval": "week"}),
    ("Weekly active users by browser", {"kind": "trends", "events": ["$pageview"], "math": "unique_users",
                                         "interval": "week", "breakdown": {"by": "property", "key": "$browser"}}),
    ("Sign-up to subscription", {"kind": "funnel", "steps": ["signed_up", "subscription_started"],
                                 "window_seconds": 14 * 86_400}),
    ("Top events", {"kind": "table", "by": "event"}),
    ("Sign-ups", {"kind": "number", "event": "signed_up"}),
]


def _insight_store():
    settings = Settings()
    engine = get_engine(settings.database_url)
    return InsightStore(engine), role_source(settings, engine)


def _json_option(text: str, field: str) -> object:
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidRequest(f"--{field} is not valid JSON: {error}.", details={field: "invalid JSON"}) from None


def _tile(spec: str) -> dict:
    insight_id, _, size = spec.partition(":")
    if not size:
        return {"insight_id": insight_id}
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise InvalidRequest(f"Tile {spec!r} must be INSIGHT_ID or INSIGHT_ID:WIDTHxHEIGHT.", details={"tile": spec})
    return {"insight_id": insight_id, "width": int(width), "height": int(height)}


def ensure_dagster_home(settings: Settings) -> Path:
    """Default DAGSTER_HOME to <data folder>/dagster with the project's dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and (PROJECT_ROOT / "dagster.yaml").exists():
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", config)
    return home


def dagster_instance(settings: Settings):
    from dagster import DagsterInstance

    ensure_dagster_home(settings)
    return DagsterInstance.get()


def daemon_is_running(instance) -> bool:
    """Whether a Dagster daemon (with its sensor loop) has reported in recently."""
    heartbeats = instance.get_daemon_heartbeats()
    sensor = heartbeats.get("SENSOR")
    return bool(sensor and time.time() - sensor.timestamp < DAEMON_HEARTBEAT_FRESH_SECONDS)


if __name__ == "__main__":
    main()
