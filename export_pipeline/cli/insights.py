"""Charts and how they are shown: insights, dashboards, share-links."""

from __future__ import annotations

from datetime import timedelta

import click

from export_pipeline.accounts.roles import require_role
from export_pipeline.cli.common import (
    app_database,
    app_deps,
    echo_rows,
    emit,
    json_option,
    project_option,
    say,
    target_options,
)
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.clock import now_utc
from export_pipeline.demo import DEMO_DASHBOARD, demo_dashboard
from export_pipeline.embed.share import ShareLinks, embed_path
from export_pipeline.errors import InvalidRequest
from export_pipeline.insights.queries import compute
from export_pipeline.insights.store import InsightStore

CHANGE_ACTION = "changing insights and dashboards"


@click.group()
def insights() -> None:
    """Insights: charts over a project's events."""


@insights.command("create")
@project_option
@click.option("--user", required=True, help="Who creates it (Maintainer or higher)")
@click.option("--name", required=True)
@click.option("--query", "query_json", required=True, help='JSON, e.g. {"kind": "trends", "events": ["$pageview"], ...}')
@click.option("--description", default="")
def insights_create(project_id: int, user: str, name: str, query_json: str, description: str) -> None:
    """Save an insight and print it as JSON."""
    app = app_deps()
    store = InsightStore(app.engine)
    require_role(app.roles, app.engine, project_id, user, action=CHANGE_ACTION)
    insight = store.create_insight(project_id, name=name, query=json_option(query_json, "query"),
                                   created_by=user, description=description)
    emit(insight.to_json())


@insights.command("list")
@project_option
def insights_list(project_id: int) -> None:
    """A project's insights, one a line: id, kind, name."""
    echo_rows((i.id, i.query.kind, i.name) for i in InsightStore(app_database()).list_insights(project_id))


@insights.command("show")
@project_option
@click.argument("insight_id")
def insights_show(project_id: int, insight_id: str) -> None:
    """Compute an insight and print its table."""
    app = app_deps()
    insight = InsightStore(app.engine).insight(project_id, insight_id)
    with app.clickhouse.session(f"insight {insight_id}") as session:
        result = compute(session, EventsTable.from_settings(app.settings), project_id, insight.query)
    echo_rows([result.columns, *result.rows])


@click.group()
def dashboards() -> None:
    """Dashboards: ordered insight tiles."""


@dashboards.command("create")
@project_option
@click.option("--user", required=True)
@click.option("--name", required=True)
@click.option("--tile", "tiles", multiple=True, help="INSIGHT_ID or INSIGHT_ID:WIDTHxHEIGHT (repeatable, in order)")
def dashboards_create(project_id: int, user: str, name: str, tiles: tuple[str, ...]) -> None:
    """Save a dashboard of existing insights and print it as JSON."""
    app = app_deps()
    store = InsightStore(app.engine)
    require_role(app.roles, app.engine, project_id, user, action=CHANGE_ACTION)
    emit(store.create_dashboard(project_id, name=name, tiles=[_tile(t) for t in tiles], created_by=user).to_json())


@dashboards.command("list")
@project_option
def dashboards_list(project_id: int) -> None:
    """A project's dashboards, one a line: id, number of tiles, name."""
    echo_rows((d.id, f"{len(d.tiles)} tiles", d.name) for d in InsightStore(app_database()).list_dashboards(project_id))


@dashboards.command("demo")
@project_option
@click.option("--user", required=True)
def dashboards_demo(project_id: int, user: str) -> None:
    """Create the demo dashboard over the seeded events.

    Once: re-running keeps the existing one."""
    app = app_deps()
    require_role(app.roles, app.engine, project_id, user, action=CHANGE_ACTION)
    dashboard, created = demo_dashboard(InsightStore(app.engine), project_id, user)
    if created is None:
        say(f"{DEMO_DASHBOARD!r} exists: {dashboard.id}")
        emit({"dashboard_id": dashboard.id})
        return
    say(f"Created {DEMO_DASHBOARD!r} ({dashboard.id}) with {len(created)} insights")
    emit({"dashboard_id": dashboard.id, "insights": {insight.id: insight.name for insight in created}})


def _tile(spec: str) -> dict:
    insight_id, _, size = spec.partition(":")
    if not size:
        return {"insight_id": insight_id}
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise InvalidRequest(f"Tile {spec!r} must be INSIGHT_ID or INSIGHT_ID:WIDTHxHEIGHT.", details={"tile": spec})
    return {"insight_id": insight_id, "width": int(width), "height": int(height)}


@click.group("share-links")
def share_links() -> None:
    """Share links: public views of an insight or dashboard.

    Anyone with the link may view the embed page, until it expires or is revoked."""


@share_links.command("create")
@project_option
@click.option("--user", required=True, help="Who shares it (Maintainer or higher)")
@target_options
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None, help="[default: until revoked]")
def share_links_create(project_id: int, user: str, resource: str, target_id: str, expires_in_days: int | None) -> None:
    """Print the link (shown only now) and its id (to revoke it)."""
    app = app_deps()
    store = InsightStore(app.engine)
    require_role(app.roles, app.engine, project_id, user, action="sharing insights and dashboards")
    (store.insight if resource == "insight" else store.dashboard)(project_id, target_id)
    expires = now_utc() + timedelta(days=expires_in_days) if expires_in_days else None
    token, link = ShareLinks(app.engine).create(project_id, resource, target_id, created_by=user, expires_at=expires)
    emit({**link.to_json(), "url": app.settings.api_base_url.rstrip("/") + embed_path(resource, token)})


@share_links.command("revoke")
@project_option
@click.argument("link_id")
def share_links_revoke(project_id: int, link_id: str) -> None:
    """Stop a share link from working (at once)."""
    emit(ShareLinks(app_database()).revoke(project_id, link_id).to_json())


COMMANDS = [insights, dashboards, share_links]
