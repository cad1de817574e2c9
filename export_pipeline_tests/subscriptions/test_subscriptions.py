"""Subscription deliveries end to end: real insights computed in chDB, PNGs drawn by Debian's Chromium, Slack
through the fake Slack Web API and email through a fake SendGrid v3, both on loopback, asserting the exact
requests. Exactly-once under retried ticks and runs, one destination down, 429s, revoked tokens, stale runs,
missed slots, and the scheduler sensor and the delivery asset on a Dagster instance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from export_pipeline.accounts.emails import set_user_email
from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.db import subscriptions as subscriptions_table
from export_pipeline.defs.resources import (
    AppDatabaseResource,
    AppSettingsResource,
    ClickHouseResource,
    build_resources,
)
from export_pipeline.defs.subscriptions import (
    DELIVERY_PARTITIONS,
    subscription_delivery,
    subscription_scheduler,
)
from export_pipeline.deps import AppDeps
from export_pipeline.insights.store import InsightStore
from export_pipeline.render.browser import PngRenderer
from export_pipeline.render.capture import png_size
from export_pipeline.subscriptions.deliver import build_subscription_deps, run_delivery
from export_pipeline.subscriptions.records import DeliveryState
from export_pipeline.subscriptions.store import SubscriptionStore
from export_pipeline.subscriptions.unsubscribe import resolve_unsubscribe
from export_pipeline_tests.fakes.exportdata import insert_events
from export_pipeline_tests.fakes.sendgridapi import FakeSendGrid, fake_sendgrid
from export_pipeline_tests.fakes.slackapi import FakeSlack

PROJECT = 9960
ACME, COMMUNITY = "xoxb-acme-9960", "xoxb-community-9960"
KEY = "SG.test-key-subscriptions"
RANGE = {"date_from": "2026-03-01", "date_to": "2026-03-04"}
WEEKLY = {"frequency": "weekly", "weekdays": ["MO"], "hour": 9, "timezone": "Europe/Berlin", "start": "2026-11-01T00:00"}


@pytest.fixture(scope="module")
def world(clickhouse, events_table, store):
    person = uuid.uuid5(uuid.NAMESPACE_DNS, "subscriber")
    insert_events(clickhouse, events_table, [
        [PROJECT, uuid.uuid4(), event, datetime(2026, 3, 2, 10, tzinfo=UTC) + timedelta(seconds=i), "d", person, "{}"]
        for event, count in {"alpha": 40, "beta": 20, "gamma": 10}.items() for i in range(count)
    ])
    add_member(store.engine, PROJECT, "sam", Role.MAINTAINER)
    set_user_email(store.engine, "sam", "sam@example.com")
    book = InsightStore(store.engine)
    top = book.create_insight(PROJECT, name="Top events", created_by="sam", query={"kind": "table", **RANGE})
    total = book.create_insight(PROJECT, name="Events", created_by="sam", query={"kind": "number", **RANGE})
    board = book.create_dashboard(PROJECT, name="Everything", created_by="sam",
                                  tiles=[{"insight_id": (top if i % 2 == 0 else total).id} for i in range(20)])
    return {"top": top, "board": board}


@pytest.fixture(scope="module")
def renderer(settings) -> Iterator[PngRenderer]:
    with PngRenderer(executable_path=settings.chromium_executable, max_concurrency=settings.render_concurrency,
                     timeout_seconds=settings.render_timeout_seconds) as renderer:
        yield renderer


def scheduler_resources(settings) -> dict:
    return {"app_db": AppDatabaseResource(url=settings.database_url),
            "app_settings": AppSettingsResource(ttl_hours=settings.ttl_hours,
                                                delivery_stale_minutes=settings.delivery_stale_minutes)}


def subscription_deps(settings, renderer, **options):
    app = AppDeps.from_settings(settings)
    return build_subscription_deps(app.settings, app.engine, app.clickhouse, renderer=lambda: renderer, **options)


@pytest.fixture()
def slack() -> Iterator[FakeSlack]:
    with FakeSlack({ACME: {"general": "C0GENERAL"}, COMMUNITY: {"general": "C1GENERAL", "news": "C1NEWS"}}) as fake:
        yield fake


@pytest.fixture()
def sendgrid() -> Iterator[FakeSendGrid]:
    with fake_sendgrid(KEY) as fake:
        yield fake


@pytest.fixture()
def sleeps() -> list[float]:
    return []


@pytest.fixture()
def deps(settings, slack, sendgrid, sleeps, world, renderer):
    configured = settings.model_copy(update={
        "slack_bot_tokens": {"acme": SecretStr(ACME), "community": SecretStr(COMMUNITY)},
        "slack_api_url": slack.api_url, "sendgrid_api_key": SecretStr(KEY), "sendgrid_api_host": sendgrid.url,
        "email_retry_base_seconds": 0.0, "api_base_url": "https://analytics.example.com",
    })
    return subscription_deps(configured, renderer, sleep=sleeps.append)


def subscribe(deps, world, *, resource="dashboard", destinations=None, schedule=WEEKLY, title="Weekly numbers",
              target=None):
    store: SubscriptionStore = deps.subscriptions
    target = target or (world["board"].id if resource == "dashboard" else world["top"].id)
    subscription = store.create(PROJECT, {
        "resource": resource, "target_id": target, "title": title, "message": "Have a good week",
        "schedule": schedule, "destinations": destinations or [
            {"kind": "email", "email": "ana@example.com"}, {"kind": "email", "email": "bo@example.com"},
            {"kind": "slack", "workspace": "acme", "channel": "#general"},
            {"kind": "slack", "workspace": "community", "channel": "general"},
        ],
    }, created_by="sam")
    # Created on Sunday 2026-11-15; "now" is Monday 2026-11-16 09:05 Berlin: one slot (08:00Z) is due.
    with store.engine.begin() as conn:
        conn.execute(subscriptions_table.update().where(subscriptions_table.c.id == subscription.id)
                     .values(created_at=datetime(2026, 11, 15, 12, tzinfo=UTC)))
    queued, skipped = store.plan(datetime(2026, 11, 16, 8, 5, tzinfo=UTC))
    assert skipped == [] and [d.id for d in queued if d.subscription_id == subscription.id] == [
        f"{subscription.id}-20261116T0800Z"]
    return store.find(subscription.id), f"{subscription.id}-20261116T0800Z"


def deliver(deps, delivery_id, **options):
    return run_delivery(delivery_id, deps, run_id=options.pop("run_id", "run-1"), **options)


# ---------------------------------------------------------------------------------------------- deliveries


def test_a_20_tile_dashboard_is_delivered_whole_to_every_destination(deps, world, slack, sendgrid):
    subscription, delivery_id = subscribe(deps, world)
    result = deliver(deps, delivery_id)

    assert result.delivery.state is DeliveryState.SUCCEEDED and result.images == 20
    # Slack: in each workspace one message, then the 20 images in its thread (2 batches of 10), in tile order.
    for token, channel in ((ACME, "C0GENERAL"), (COMMUNITY, "C1GENERAL")):
        messages = [m for m in slack.messages if m.token == token]
        assert len(messages) == 1 and messages[0].channel_id == channel and messages[0].thread_ts is None
        assert "Weekly numbers" in messages[0].text
        files = [f for f in slack.shared_files() if f.channel_id == channel]
        assert [f.title for f in files] == ["Top events", "Events"] * 10
        assert {f.thread_ts for f in files} == {messages[0].ts}
        assert all(png_size(f.data) == (1600, png_size(f.data)[1]) for f in files)
    # Email: one mail per address, every tile inline by CID, a link to the shared page and a personal unsubscribe.
    for address in ("ana@example.com", "bo@example.com"):
        [mail] = sendgrid.to(address)
        assert [a["content_id"] for a in mail["attachments"]] == [f"tile-{i:02d}" for i in range(1, 21)]
        html = next(c["value"] for c in mail["content"] if c["type"] == "text/html")
        assert all(f'src="cid:tile-{i:02d}"' in html for i in range(1, 21))
        # The period the charts cover, from the insights' date range (date_to exclusive), once, above the charts.
        text = next(c["value"] for c in mail["content"] if c["type"] == "text/plain")
        assert text.splitlines()[:3] == ["Weekly numbers", "", "These charts cover 1 Mar 2026 – 3 Mar 2026 (UTC)."]
        assert html.count("These charts cover 1 Mar 2026 – 3 Mar 2026 (UTC).") == 1
        assert html.index("These charts cover") < html.index('src="cid:tile-01"')
        unsubscribe = mail["headers"]["List-Unsubscribe"].strip("<>")
        claim = resolve_unsubscribe(deps.subscriptions.engine, unsubscribe.rsplit("/", 1)[1])
        assert (claim.subscription_id, claim.email, claim.version) == (subscription.id, address, 1)
    share_link = f"https://analytics.example.com/embed/dashboards/{deps.subscriptions.find(subscription.id).share_token}"
    assert share_link in next(c["value"] for c in sendgrid.to("ana@example.com")[0]["content"])
    outcomes = deps.subscriptions.outcomes(delivery_id)
    assert len(outcomes) == 4 and all(o.ok for o in outcomes.values())


def test_two_weekly_slots_render_the_ranges_as_of_their_slots_and_link_each_chart(deps, world, slack, sendgrid):
    book = deps.insights
    week = book.create_insight(PROJECT, name="Last 7 days", created_by="sam",
                               query={"kind": "table", "date_range": "-7d", "timezone": "Europe/Berlin"})
    before = book.create_insight(PROJECT, name="Previous week", created_by="sam",
                                 query={"kind": "number", "date_range": "previous_week", "timezone": "Europe/Berlin"})
    board = book.create_dashboard(PROJECT, name="Moving", created_by="sam",
                                  tiles=[{"insight_id": week.id}, {"insight_id": before.id}])
    subscription, first = subscribe(deps, world, target=board.id, destinations=[
        {"kind": "email", "email": "ana@example.com"}, {"kind": "slack", "workspace": "acme", "channel": "general"}])
    queued, _ = deps.subscriptions.plan(datetime(2026, 11, 23, 8, 1, tzinfo=UTC))
    [second] = [d.id for d in queued if d.subscription_id == subscription.id]
    assert second == f"{subscription.id}-20261123T0800Z"
    links = [f"https://analytics.example.com/projects/{PROJECT}/embed/insights/{insight.id}" for insight in (week, before)]

    def delivered(delivery_id: str, **options) -> tuple[list[str], str, list[dict]]:
        """The email's period and chart lines, its HTML, and the Slack message's blocks."""
        assert deliver(deps, delivery_id, **options).delivery.state is DeliveryState.SUCCEEDED
        text, html = (c["value"] for c in sendgrid.to("ana@example.com")[-1]["content"])
        lines = text.splitlines()
        return [lines[2], *lines[lines.index("Charts (shown as images in the HTML version of this email):") + 1:][:4]], \
            html, slack.messages[-1].blocks

    # Monday 16 Nov, 09:00 in Berlin: the week before it, and the 7 days before it plus its first nine hours.
    lines, html, blocks = delivered(first)
    assert lines == [
        "These charts cover 9 Nov 2026 00:00 – 16 Nov 2026 09:00 (Europe/Berlin); each chart's own period is named "
        "with it.",
        "1. Last 7 days — 9 Nov 2026 00:00 – 16 Nov 2026 09:00 (Europe/Berlin)", f"   {links[0]}",
        "2. Previous week — 9 Nov 2026 – 15 Nov 2026 (Europe/Berlin)", f"   {links[1]}",
    ]
    for number, link in enumerate(links, start=1):
        assert f'<a href="{link}" style="display:block;border:0"><img src="cid:tile-{number:02d}"' in html
    assert blocks[1] == {"type": "context", "elements": [{"type": "plain_text", "text": lines[0]}]}
    assert blocks[-1] == {"type": "section", "text": {
        "type": "mrkdwn", "text": f"1. <{links[0]}|Last 7 days>\n2. <{links[1]}|Previous week>"}}

    # The next Monday's slot moves with it.
    lines, _, blocks = delivered(second)
    assert lines[0] == ("These charts cover 16 Nov 2026 00:00 – 23 Nov 2026 09:00 (Europe/Berlin); each chart's "
                        "own period is named with it.")
    assert lines[1] == "1. Last 7 days — 16 Nov 2026 00:00 – 23 Nov 2026 09:00 (Europe/Berlin)"
    assert lines[3] == "2. Previous week — 16 Nov 2026 – 22 Nov 2026 (Europe/Berlin)"
    assert blocks[1]["elements"][0]["text"] == lines[0]

    # Re-sent later, the first slot still shows the range as of its own slot.
    lines, _, _ = delivered(first, run_id="run-again", resend=True)
    assert lines[0].startswith("These charts cover 9 Nov 2026 00:00 – 16 Nov 2026 09:00 (Europe/Berlin);")


def test_retried_runs_send_exactly_once_and_only_to_destinations_not_reached(deps, world, slack, sendgrid):
    _, delivery_id = subscribe(deps, world, resource="insight")
    # The community workspace is down for this whole run; the other three destinations succeed.
    slack.fail("chat.postMessage", times=4, status=503, token=COMMUNITY)
    first = deliver(deps, delivery_id, run_id="run-1")
    assert first.delivery.state is DeliveryState.PARTIALLY_FAILED
    assert [r.destination.label for r in first.failed] == ["slack community general"]
    assert "community" in first.delivery.error and len(sendgrid.received) == 2

    # A retried run: only the community workspace is sent to; nobody else gets a second copy.
    second = deliver(deps, delivery_id, run_id="run-2")
    assert second.delivery.state is DeliveryState.SUCCEEDED
    assert len(sendgrid.received) == 2
    assert [m.token for m in slack.messages] == [ACME, COMMUNITY]
    assert sorted(r.already for r in second.results) == [False, True, True, True]

    # Once succeeded, a third run sends nothing; `resend` (an operator's re-send) sends to everyone again.
    third = deliver(deps, delivery_id, run_id="run-3")
    assert third.already_done and len(sendgrid.received) == 2 and len(slack.messages) == 2
    deliver(deps, delivery_id, run_id="run-4", resend=True)
    assert len(sendgrid.received) == 4 and len(slack.messages) == 4


def test_slack_429_is_waited_out_then_delivered(deps, world, slack, sleeps):
    _, delivery_id = subscribe(deps, world, resource="insight",
                               destinations=[{"kind": "slack", "workspace": "acme", "channel": "general"}])
    slack.rate_limit("chat.postMessage", times=1, retry_after=3)
    result = deliver(deps, delivery_id)
    assert result.delivery.state is DeliveryState.SUCCEEDED
    assert sleeps == [3]
    assert [r.status for r in slack.requests_for("chat.postMessage")] == [429, 200]
    assert len(slack.messages) == 1 and len(slack.shared_files()) == 1


def test_a_revoked_slack_token_disables_that_destination_and_tells_the_creator(deps, world, slack, sendgrid):
    subscription, delivery_id = subscribe(deps, world, resource="insight", destinations=[
        {"kind": "slack", "workspace": "acme", "channel": "general"},
        {"kind": "slack", "workspace": "community", "channel": "news"},
        {"kind": "email", "email": "ana@example.com"},
    ])
    slack.revoke(ACME)
    result = deliver(deps, delivery_id)

    assert result.delivery.state is DeliveryState.PARTIALLY_FAILED
    destinations = {d.label: d for d in deps.subscriptions.find(subscription.id).destinations}
    acme = destinations["slack acme general"]
    assert not acme.enabled and "token_revoked" in acme.disabled_reason
    assert destinations["slack community news"].enabled and destinations["ana@example.com"].enabled
    assert [m.channel_id for m in slack.messages] == ["C1NEWS"]
    [notice] = sendgrid.to("sam@example.com")
    assert notice["subject"] == "Subscription 'Weekly numbers': slack acme general was disabled"
    assert "token_revoked" in notice["content"][0]["value"] and ACME not in notice["content"][0]["value"]
    assert len(sendgrid.to("ana@example.com")) == 1

    # The next delivery no longer tries the disabled destination and succeeds.
    queued, _ = deps.subscriptions.plan(datetime(2026, 11, 23, 8, 1, tzinfo=UTC))
    [following] = [d for d in queued if d.subscription_id == subscription.id]
    assert deliver(deps, following.id).delivery.state is DeliveryState.SUCCEEDED
    assert [m.channel_id for m in slack.messages] == ["C1NEWS", "C1NEWS"]


def test_without_credentials_reports_go_to_the_outbox(settings, world, renderer):
    home = settings.model_copy(update={"slack_bot_tokens": {}, "sendgrid_api_key": None})
    deps = subscription_deps(home, renderer, sleep=lambda _: None)
    _, delivery_id = subscribe(deps, world, resource="insight", destinations=[
        {"kind": "slack", "workspace": "acme", "channel": "general"}, {"kind": "email", "email": "ana@example.com"}])
    result = deliver(deps, delivery_id)
    assert result.delivery.state is DeliveryState.SUCCEEDED
    assert all("outbox" in (r.detail or "") for r in result.results), [r.detail for r in result.results]
    [to_slack] = [r for r in result.results if r.destination.kind == "slack"]
    folder = settings.outbox_dir / "slack" / f"{delivery_id}-{to_slack.destination.id}-acme-general"
    assert to_slack.detail == f"outbox {folder}"
    assert sorted(p.name for p in folder.iterdir()) == ["message.json", "tile-01-top-events.png"]


# ------------------------------------------------------------------------------------------ states, stale


def test_a_delivery_whose_run_died_is_failed_and_does_not_block_the_next(deps, world):
    store = deps.subscriptions
    subscription, delivery_id = subscribe(deps, world, resource="insight")
    store.start(delivery_id, "run-that-crashed")
    now = datetime.now(UTC)
    assert store.fail_stale(now, stale_after=timedelta(hours=1), run_finished=lambda _: False) == []
    assert store.fail_stale(now, stale_after=timedelta(hours=1), run_finished=lambda run: run == "run-that-crashed") \
        == [delivery_id]
    failed = store.delivery(delivery_id)
    assert failed.state is DeliveryState.FAILED and "its run run-that-crashed ended" in failed.error
    # Silent for too long (the run's process vanished without Dagster noticing) is failed too.
    store.start(delivery_id, "run-silent")
    later = datetime.now(UTC) + timedelta(minutes=61)
    assert store.fail_stale(later, stale_after=timedelta(hours=1), run_finished=lambda _: False) == [delivery_id]
    queued, _ = store.plan(datetime(2026, 11, 23, 8, 1, tzinfo=UTC))
    assert f"{subscription.id}-20261123T0800Z" in [d.id for d in queued]


def test_missed_slots_send_the_latest_and_skip_the_others(deps, world):
    store = deps.subscriptions
    subscription = store.create(PROJECT, {
        "resource": "insight", "target_id": world["top"].id, "title": "Daily",
        "schedule": {"frequency": "daily", "hour": 7, "timezone": "America/New_York", "start": "2026-11-01T00:00"},
        "destinations": [{"kind": "email", "email": "ana@example.com"}]}, created_by="sam")
    with store.engine.begin() as conn:
        conn.execute(subscriptions_table.update().where(subscriptions_table.c.id == subscription.id)
                     .values(created_at=datetime(2026, 11, 15, 13, tzinfo=UTC)))
    # Nothing ticked for three days: only the latest slot is sent, the two before it are skipped.
    queued, skipped = store.plan(datetime(2026, 11, 19, 1, 0, tzinfo=UTC))
    assert [d.scheduled_for for d in queued if d.subscription_id == subscription.id] == [
        datetime(2026, 11, 18, 12, tzinfo=UTC)]  # 07:00 EST
    assert [d.scheduled_for for d in skipped if d.subscription_id == subscription.id] == [
        datetime(2026, 11, 16, 12, tzinfo=UTC), datetime(2026, 11, 17, 12, tzinfo=UTC)]
    skipped_one = store.delivery(f"{subscription.id}-20261117T1200Z")
    assert skipped_one.state is DeliveryState.SKIPPED and "only the latest missed slot" in skipped_one.error
    again_queued, again_skipped = store.plan(datetime(2026, 11, 19, 1, 0, tzinfo=UTC))  # a retried tick
    assert subscription.id not in {d.subscription_id for d in [*again_queued, *again_skipped]}


# --------------------------------------------------------------------------------------------- Dagster


def test_the_scheduler_sensor_requests_one_run_per_due_delivery_with_its_run_key(settings, world, store):
    subscriptions = SubscriptionStore(store.engine)
    subscription = subscriptions.create(PROJECT, {
        "resource": "insight", "target_id": world["top"].id, "title": "Hourly-ish",
        "schedule": {"frequency": "daily", "hour": 0, "timezone": "UTC", "start": "2026-01-01T00:00"},
        "destinations": [{"kind": "email", "email": "ana@example.com"}]}, created_by="sam")
    with store.engine.begin() as conn:  # created three days ago: two missed midnights, the latest due
        conn.execute(subscriptions_table.update().where(subscriptions_table.c.id == subscription.id)
                     .values(created_at=datetime.now(UTC) - timedelta(days=3)))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    key = f"{subscription.id}-{today:%Y%m%dT%H%MZ}"
    with dg.instance_for_test() as instance:
        resources = scheduler_resources(settings)
        first = subscription_scheduler(dg.build_sensor_context(instance=instance, resources=resources))
        mine = [r for r in first.run_requests if r.run_key.startswith(subscription.id)]
        assert [(r.run_key, r.partition_key) for r in mine] == [(key, key)]
        added = first.dynamic_partitions_requests[0]
        assert added.partitions_def_name == DELIVERY_PARTITIONS.name
        assert {k for k in added.partition_keys if k.startswith(subscription.id)} == {
            key, *(f"{subscription.id}-{today - timedelta(days=d):%Y%m%dT%H%MZ}" for d in (1, 2))}
        # Each skipped slot is observed with its reason, so the partition is not a bare "Missing" in Dagster.
        skipped = {f"{subscription.id}-{today - timedelta(days=d):%Y%m%dT%H%MZ}" for d in (1, 2)}
        observed = {o.partition: o for o in first.asset_events if o.partition in skipped}
        assert set(observed) == skipped
        reason = subscriptions.delivery(min(skipped)).error
        assert reason.startswith("Not sent: the scheduler was not running at this time")
        assert observed[min(skipped)].description == f"Skipped: {reason}"
        assert observed[min(skipped)].metadata["reason"] == dg.MetadataValue.text(reason)
        assert observed[min(skipped)].metadata["state"].value == "skipped"
        instance.add_dynamic_partitions(DELIVERY_PARTITIONS.name, list(added.partition_keys))
        # A retried tick: the same run key again (Dagster launches a run key once), nothing planned twice.
        second = subscription_scheduler(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.run_key for r in second.run_requests if r.run_key.startswith(subscription.id)] == [key]
        assert not [k for r in second.dynamic_partitions_requests for k in r.partition_keys
                    if k.startswith(subscription.id)]
        assert [d.state for d in subscriptions.deliveries(subscription.id)] == [
            DeliveryState.QUEUED, DeliveryState.SKIPPED, DeliveryState.SKIPPED]


def test_the_delivery_asset_runs_a_partition_and_reports_outcomes(settings, world, store):
    subscriptions = SubscriptionStore(store.engine)
    subscription = subscriptions.create(PROJECT, {
        "resource": "insight", "target_id": world["top"].id, "title": "From Dagster",
        "schedule": {"frequency": "daily", "hour": 0, "timezone": "UTC"},
        "destinations": [{"kind": "email", "email": "ana@example.com"}]}, created_by="sam")
    delivery = subscriptions.request_delivery(subscription, datetime(2026, 11, 20, tzinfo=UTC))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DELIVERY_PARTITIONS.name, [delivery.id])
        result = dg.materialize(
            [subscription_delivery], instance=instance, partition_key=delivery.id,
            resources={**build_resources(settings), "clickhouse": ClickHouseResource(url=settings.clickhouse_url),
                       "app_db": AppDatabaseResource(url=settings.database_url)},
        )
        assert result.success
        [materialization] = result.asset_materializations_for_node("subscription_delivery")
        assert materialization.metadata["state"].value == "succeeded"
        assert materialization.metadata["images"].value == 1
        assert "ana@example.com: reached" in materialization.metadata["destinations"].value
    assert subscriptions.delivery(delivery.id).state is DeliveryState.SUCCEEDED


def test_an_unknown_partition_fails_with_a_clear_message(deps):
    with pytest.raises(Exception, match="There is no delivery 'nope-20261116T0800Z'"):
        deliver(deps, "nope-20261116T0800Z")


def test_deliveries_of_a_deleted_subscription_fail_without_sending(deps, world, sendgrid):
    subscription, delivery_id = subscribe(deps, world, resource="insight")
    deps.subscriptions.delete(PROJECT, subscription.id)
    result = deliver(deps, delivery_id)
    assert result.delivery.state is DeliveryState.FAILED and "deleted" in result.delivery.error
    assert sendgrid.received == []
    with deps.subscriptions.engine.connect() as conn:
        assert conn.execute(sa.select(subscriptions_table.c.id).where(
            subscriptions_table.c.id == subscription.id)).first() is None


def test_a_queued_delivery_whose_run_ended_before_starting_is_failed(settings, world, store):
    from export_pipeline.defs.subscriptions import DELIVERY_TAG

    RUN_ID = str(uuid.uuid4())  # noqa: N806

    subscriptions = SubscriptionStore(store.engine)
    subscription = subscriptions.create(PROJECT, {
        "resource": "insight", "target_id": world["top"].id, "title": "Never started",
        "schedule": {"frequency": "daily", "hour": 0, "timezone": "UTC", "start": "2026-01-01T00:00"},
        "destinations": [{"kind": "email", "email": "ana@example.com"}]}, created_by="sam")
    delivery = subscriptions.request_delivery(subscription, datetime(2026, 11, 21, tzinfo=UTC))
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("nothing").to_job(), run_id=RUN_ID,
                                          tags={DELIVERY_TAG: delivery.id}, status=dg.DagsterRunStatus.CANCELED)
        result = subscription_scheduler(dg.build_sensor_context(
            instance=instance, resources=scheduler_resources(settings)))
        assert delivery.id not in [r.run_key for r in result.run_requests]
    failed = subscriptions.delivery(delivery.id)
    assert failed.state is DeliveryState.FAILED and failed.run_id == run.run_id
    assert failed.error == (f"Its run {RUN_ID} ended (CANCELED) before the delivery started. "
                            "Re-run the partition to deliver it.")


def test_a_second_run_never_sends_while_another_live_run_delivers(deps, world, sendgrid):
    from export_pipeline.subscriptions.records import DeliveryBusy

    _, delivery_id = subscribe(deps, world, resource="insight",
                               destinations=[{"kind": "email", "email": "ana@example.com"}])
    deps.subscriptions.start(delivery_id, "run-a")
    with pytest.raises(DeliveryBusy, match="is being delivered by run run-a"):
        run_delivery(delivery_id, deps, run_id="run-b", run_is_active=lambda run: run == "run-a")
    assert sendgrid.received == []
    # Once run-a is known dead, a new run takes the delivery over.
    result = run_delivery(delivery_id, deps, run_id="run-c", run_is_active=lambda run: False)
    assert result.delivery.state is DeliveryState.SUCCEEDED and len(sendgrid.received) == 1
