"""One delivery of a subscription: render every tile, then send to each destination independently.

Exactly once per destination: each destination's outcome is recorded as soon as it is known, and a delivery
that runs again (a retried run, a re-executed partition) sends only to the destinations not yet reached. A
delivery that already succeeded is not sent again unless `resend` is asked for (an operator's re-send).

A Slack destination that fails for good (revoked token, missing channel) is disabled and the subscription's
creator is told by email; the other destinations are unaffected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from export_pipeline.accounts.emails import recipient_for
from export_pipeline.channels.email import Email, EmailSender
from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.embed.images import render_view
from export_pipeline.embed.page import PageView, compute_view
from export_pipeline.embed.share import ShareLinks, embed_path, member_path
from export_pipeline.errors import ExportPipelineError, NotFound, ShareLinkGone
from export_pipeline.insights.store import InsightStore, file_slug
from export_pipeline.render.browser import INSIGHT_WIDTH, PngRenderer
from export_pipeline.settings import Settings
from export_pipeline.subscriptions.mail import ReportMailer
from export_pipeline.subscriptions.records import Delivery, DeliveryState, Destination, Subscription
from export_pipeline.subscriptions.report import Report, ReportImage
from export_pipeline.subscriptions.slack import SlackDeliverer
from export_pipeline.subscriptions.store import SubscriptionStore
from export_pipeline.subscriptions.unsubscribe import issue_unsubscribe, unsubscribe_url

logger = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class SubscriptionDeps:
    settings: Settings
    engine: Engine  # the app database: members' email addresses
    clickhouse: ClickHouse
    table: EventsTable
    subscriptions: SubscriptionStore
    insights: InsightStore
    share_links: ShareLinks
    slack: SlackDeliverer
    mail: ReportMailer
    notices: EmailSender
    renderer: Callable[[], PngRenderer]  # called only when a delivery draws, so Chromium starts only then


def build_subscription_deps(settings: Settings, engine: Engine, clickhouse: ClickHouse, *,
                            renderer: Callable[[], PngRenderer],
                            sleep: Callable[[float], None] = time.sleep) -> SubscriptionDeps:
    """From the app's connections (`AppDeps` or its parts: a delivery never touches export storage)."""
    notices = EmailSender.from_settings(settings, sleep=sleep)
    return SubscriptionDeps(
        settings=settings,
        engine=engine,
        clickhouse=clickhouse,
        table=EventsTable.from_settings(settings),
        subscriptions=SubscriptionStore(engine),
        insights=InsightStore(engine),
        share_links=ShareLinks(engine),
        slack=SlackDeliverer(settings, sleep=sleep),
        mail=ReportMailer(notices),
        notices=notices,
        renderer=renderer,
    )


@dataclass(frozen=True)
class DestinationResult:
    destination: Destination
    ok: bool
    detail: str | None
    error: str | None
    already: bool = False  # reached by an earlier run of this delivery


@dataclass(frozen=True)
class DeliveryResult:
    delivery: Delivery
    images: int = 0
    results: list[DestinationResult] = field(default_factory=list)
    already_done: bool = False

    @property
    def failed(self) -> list[DestinationResult]:
        return [r for r in self.results if not r.ok]


def run_delivery(delivery_id: str, deps: SubscriptionDeps, *, run_id: str, resend: bool = False,
                 run_is_active: Callable[[str], bool] = lambda _: False, log: Logger = logger) -> DeliveryResult:
    """Deliver one slot. `run_is_active(run_id)` tells whether another run that holds the delivery is still
    going (then this run refuses with DeliveryBusy rather than send a second copy)."""
    store = deps.subscriptions
    delivery = store.delivery(delivery_id)
    if delivery is None:
        raise NotFound(f"There is no delivery {delivery_id!r}.",
                       hint="Delivery partitions are created by the subscription_scheduler sensor; pick one of those.")
    subscription = store.find(delivery.subscription_id)
    if subscription is None:
        store.set_state(delivery_id, DeliveryState.FAILED, run_id=run_id,
                        error="The subscription was deleted before this delivery ran.")
        log.warning("Delivery %s: its subscription was deleted; nothing sent.", delivery_id)
        return DeliveryResult(store.delivery(delivery_id))  # type: ignore[arg-type]
    if delivery.state is DeliveryState.SUCCEEDED and not resend:
        log.info("Delivery %s already succeeded (run %s); not sending again. Launch with resend: true to re-send.",
                 delivery_id, delivery.run_id)
        return DeliveryResult(delivery, already_done=True)

    reached = {} if resend else {k: o for k, o in store.outcomes(delivery_id).items() if o.ok}
    store.start(delivery_id, run_id, run_is_active=run_is_active)
    try:
        link = _shared_link(subscription, deps)
        images = _render_images(subscription, deps, delivery, log)
        store.set_state(delivery_id, DeliveryState.DELIVERING)
        report = Report(subscription.title, subscription.message, link, images)
        results = []
        for destination in subscription.destinations:
            if not destination.enabled:
                continue
            if destination.id in reached:
                results.append(DestinationResult(destination, True, reached[destination.id].detail, None, already=True))
                continue
            results.append(_deliver_to(destination, subscription, report, delivery_id, deps, log))
    except BaseException as error:
        message = str(error) if isinstance(error, ExportPipelineError) else f"{type(error).__name__}: {error}"
        store.set_state(delivery_id, DeliveryState.FAILED, error=message)
        raise
    succeeded = [r for r in results if r.ok]
    if not results:
        state, error = DeliveryState.FAILED, "No enabled destination: every address unsubscribed or was disabled."
    elif len(succeeded) == len(results):
        state, error = DeliveryState.SUCCEEDED, None
    else:
        state = DeliveryState.PARTIALLY_FAILED if succeeded else DeliveryState.FAILED
        error = "; ".join(f"{r.destination.label}: {r.error}" for r in results if not r.ok)
    store.set_state(delivery_id, state, error=error)
    log.info("Delivery %s %s: %s of %s destination(s) reached, %s image(s).", delivery_id, state.value,
             len(succeeded), len(results), len(images))
    return DeliveryResult(store.delivery(delivery_id), len(images), results)  # type: ignore[arg-type]


def _shared_link(subscription: Subscription, deps: SubscriptionDeps) -> str:
    """The page the report links to: the subscription's share link (made again if it was revoked), or the
    members' page when sharing is off."""
    settings = deps.settings
    base = settings.api_base_url.rstrip("/")
    if not settings.sharing_enabled:
        return base + member_path(subscription.project_id, subscription.resource, subscription.target_id)
    links = deps.share_links
    token = subscription.share_token
    if token:
        try:
            links.resolve(subscription.resource, token)
        except (NotFound, ShareLinkGone):
            token = None
    if not token:
        token, link = links.create(subscription.project_id, subscription.resource, subscription.target_id,
                                   created_by=subscription.created_by)
        deps.subscriptions.set_share_link(subscription.id, link.id, token)
    return base + embed_path(subscription.resource, token)


def _render_images(subscription: Subscription, deps: SubscriptionDeps, delivery: Delivery,
                   log: Logger) -> list[ReportImage]:
    """One PNG per tile, every tile (no cap), drawn concurrently by the process's reused Chromium. Date ranges
    are resolved as of the delivery's slot, so a late or re-sent delivery shows what its slot would have."""
    delivery_id = delivery.id
    with deps.clickhouse.session(f"delivery {delivery_id}") as session:
        view = compute_view(session, deps.table, deps.insights, subscription.project_id,
                            subscription.resource, subscription.target_id, as_of=delivery.scheduled_for)
    pages: list[PageView] = [view] if view.resource == "insight" else [view.tile(i) for i in range(len(view.tiles))]
    renderer = deps.renderer()
    started = time.monotonic()

    def draw(index: int) -> bytes:
        item = f"tile {index + 1} of {subscription.resource} {subscription.target_id} {pages[index].title!r}"
        return render_view(pages[index], renderer, width=INSIGHT_WIDTH, item=item)

    with ThreadPoolExecutor(max_workers=renderer.max_concurrency, thread_name_prefix="render") as pool:
        pngs = list(pool.map(draw, range(len(pages))))
    log.info("Delivery %s: rendered %s image(s) in %.1f s.", delivery_id, len(pngs), time.monotonic() - started)
    base = deps.settings.api_base_url.rstrip("/")

    def image(index: int, page: PageView, png: bytes) -> ReportImage:
        tile = page.tiles[0]  # a page per tile
        # Each chart links to its insight's own page (members'), whatever the report links to.
        link = base + member_path(subscription.project_id, "insight", tile.insight_id) if tile.insight_id else None
        return ReportImage(f"tile-{index + 1:02d}-{file_slug(page.title)}.png", page.title, png, tile.period, link)

    return [image(i, page, png) for i, (page, png) in enumerate(zip(pages, pngs, strict=True))]


def _deliver_to(destination: Destination, subscription: Subscription, report: Report, delivery_id: str,
                deps: SubscriptionDeps, log: Logger) -> DestinationResult:
    key = f"{delivery_id}-{destination.id}"
    store = deps.subscriptions
    if destination.kind == "email":
        assert destination.email is not None
        token = issue_unsubscribe(store.engine, subscription_id=subscription.id, email=destination.email,
                                  version=subscription.unsubscribe_version)
        sent = deps.mail.send(report, to=destination.email, subscription_id=subscription.id, key=key, log=log,
                              unsubscribe_url=unsubscribe_url(deps.settings.api_base_url, token))
        result = DestinationResult(destination, sent.sent_at is not None, sent.where, sent.error)
        attempts = sent.attempts
    else:
        assert destination.workspace is not None and destination.channel is not None
        outcome = deps.slack.deliver(destination.workspace, destination.channel, report, key=key, log=log)
        result = DestinationResult(destination, outcome.ok, outcome.where, outcome.error)
        attempts = outcome.attempts
        if outcome.permanent:
            store.disable_destination(destination.id, outcome.error or "Slack refused the delivery")
            _tell_creator(subscription, destination, outcome.error or "", deps, log)
    store.record_outcome(delivery_id, destination.id, ok=result.ok, detail=result.detail, error=result.error,
                         attempts=attempts)
    if result.ok:
        log.info("Delivery %s: %s reached (%s).", delivery_id, destination.label, result.detail)
    else:
        log.error("Delivery %s: %s failed: %s", delivery_id, destination.label, result.error)
    return result


def _tell_creator(subscription: Subscription, destination: Destination, reason: str, deps: SubscriptionDeps,
                  log: Logger) -> None:
    """Email the subscription's creator that a destination was disabled. Never raises."""
    try:
        recipient = recipient_for(deps.engine, subscription.created_by, None)
        if recipient is None:
            log.warning("Destination %s disabled; %r has no email address to be told at.", destination.label,
                        subscription.created_by)
            return
        subject = f"Subscription '{subscription.title}': {destination.label} was disabled"
        text = (
            f"Your subscription '{subscription.title}' (project {subscription.project_id}) could not be delivered to "
            f"{destination.label}, which has been disabled so that it is not tried again:\n\n{reason}\n\n"
            "The other destinations of the subscription still receive it. Once the cause is fixed, enable the "
            f"destination again (PATCH /api/v1/projects/{subscription.project_id}/subscriptions/{subscription.id}).\n"
        )
        email = Email(to=recipient.email, subject=subject, text=text)
        sent = deps.notices.send(email, f"notice-{subscription.id}-{destination.id}", log=log)
        if sent.error:
            log.error("Telling %s that %s was disabled failed: %s", recipient.email, destination.label, sent.error)
    except Exception:
        log.exception("Telling the creator of subscription %s about %s failed.", subscription.id, destination.label)

