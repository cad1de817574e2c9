"""Scheduled reports: the `subscriptions` command group."""

from __future__ import annotations

import sys
import time

import click

from export_pipeline.accounts.roles import Role, require_role
from export_pipeline.cli.common import (
    app_database,
    app_deps,
    emit,
    job_loader,
    json_option,
    project_option,
    say,
    target_options,
)
from export_pipeline.clock import now_utc
from export_pipeline.defs.instance import add_partition, run_unless_daemon
from export_pipeline.defs.names import DELIVERY_JOB
from export_pipeline.demo import demo_subscription
from export_pipeline.errors import InvalidRequest
from export_pipeline.insights.store import InsightStore
from export_pipeline.subscriptions.records import FINISHED_STATES
from export_pipeline.subscriptions.store import SubscriptionStore
from export_pipeline.subscriptions.views import deliveries_json

DAEMON_DELIVERY_WAIT_SECONDS = 1800


def _store() -> SubscriptionStore:
    return SubscriptionStore(app_database())


@click.group()
def subscriptions() -> None:
    """Subscriptions: reports sent on a schedule.

    An insight or dashboard, sent to email addresses and Slack channels."""


@subscriptions.command("create")
@project_option
@click.option("--user", required=True, help="Who subscribes (any member; it is their subscription)")
@target_options
@click.option("--title", required=True)
@click.option("--message", default=None, help="Text shown above the report")
@click.option("--schedule", "schedule_json", required=True,
              help='JSON, e.g. {"frequency": "weekly", "weekdays": ["MO"], "hour": 9, "timezone": "Europe/Berlin"}')
@click.option("--email", "emails", multiple=True, help="Send to this address (repeatable)")
@click.option("--slack", "slacks", multiple=True, help="Send to WORKSPACE:CHANNEL (repeatable)")
def subscriptions_create(project_id: int, user: str, resource: str, target_id: str, title: str,
                         message: str | None, schedule_json: str, emails: tuple[str, ...],
                         slacks: tuple[str, ...]) -> None:
    """Subscribe to an insight or dashboard and print it as JSON."""
    app = app_deps()
    insights = InsightStore(app.engine)
    require_role(app.roles, app.engine, project_id, user, action="subscribing to reports", required=Role.GUEST)
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
    created = SubscriptionStore(app.engine).create(project_id, {
        "resource": resource, "target_id": target_id, "title": title, "message": message,
        "schedule": json_option(schedule_json, "schedule"), "destinations": destinations,
    }, created_by=user)
    emit(created.to_json())


@subscriptions.command("list")
@project_option
def subscriptions_list(project_id: int) -> None:
    """A project's subscriptions as JSON."""
    emit({"data": [subscription.to_json() for subscription in _store().list(project_id)]})


@subscriptions.command("show")
@project_option
@click.option("--deliveries", "limit", type=click.IntRange(1, 50), default=10, show_default=True,
              help="How many of the latest deliveries to show")
@click.argument("subscription_id")
def subscriptions_show(project_id: int, limit: int, subscription_id: str) -> None:
    """Show a subscription and its latest deliveries as JSON.

    Each delivery lists every destination's outcome."""
    store = _store()
    subscription = store.get(project_id, subscription_id)
    emit({**subscription.to_json(), "deliveries": deliveries_json(store, subscription, limit=limit)})


def _switch_command(enabled: bool, help_text: str) -> click.Command:
    @click.command("enable" if enabled else "disable", help=help_text)
    @project_option
    @click.argument("subscription_id")
    def switch(project_id: int, subscription_id: str) -> None:
        emit(_store().update(project_id, subscription_id, {"enabled": enabled}).to_json())

    return switch


subscriptions.add_command(_switch_command(False, "Stop sending until it is enabled again."))
subscriptions.add_command(_switch_command(True, "Resume sending (slots missed while disabled are not sent late)."))


@subscriptions.command("send-now")
@project_option
@click.argument("subscription_id")
def subscriptions_send_now(project_id: int, subscription_id: str) -> None:
    """Deliver now and print the outcome per destination.

    The delivery is the one for this minute. It runs in this process when no Dagster daemon runs (recorded in
    the same instance, so the UI shows it)."""
    from export_pipeline.defs.subscriptions import DELIVERY_PARTITIONS  # imports Dagster: only here

    app = app_deps()
    store = SubscriptionStore(app.engine)
    subscription = store.get(project_id, subscription_id)
    delivery = store.request_delivery(subscription, now_utc().replace(second=0, microsecond=0))
    instance = add_partition(app.settings, DELIVERY_PARTITIONS, delivery.id)
    runner = run_unless_daemon(instance, job_loader(DELIVERY_JOB), delivery.id, label=f"Delivery {delivery.id}",
                               doing="delivering", say=say, in_background=False)
    if runner is None:
        deadline = time.monotonic() + DAEMON_DELIVERY_WAIT_SECONDS
        while (current := store.delivery(delivery.id)) is not None and current.state not in FINISHED_STATES:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    [shown] = [d for d in deliveries_json(store, subscription, limit=50) if d["id"] == delivery.id]
    emit(shown)
    if shown["state"] != "succeeded":
        sys.exit(1)


@subscriptions.command("demo")
@project_option
@click.option("--user", required=True)
@click.option("--dashboard-id", required=True)
def subscriptions_demo(project_id: int, user: str, dashboard_id: str) -> None:
    """Subscribe the demo team to a dashboard (once).

    By email and Slack; without credentials both go to the outbox."""
    emit(demo_subscription(_store(), project_id, user, dashboard_id).to_json())


@subscriptions.command("delete")
@project_option
@click.argument("subscription_id")
def subscriptions_delete(project_id: int, subscription_id: str) -> None:
    """Delete a subscription: nothing more is sent.

    Its destinations are deleted with it."""
    _store().delete(project_id, subscription_id)
    emit({"id": subscription_id, "deleted": True})


COMMANDS = [subscriptions]
