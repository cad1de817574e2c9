"""Subscriptions over HTTP, and the unsubscribe pages that work without logging in.

- `/api/v1/projects/{project_id}/subscriptions[/{id}]`: list, get and create are for every member (Guest or
  higher; a subscription is its creator's own); update and delete are for the subscription's creator, or a
  Maintainer or higher for anyone's. `.../{id}/deliveries` lists the latest deliveries with one outcome per
  destination; `.../{id}/unsubscribe_links/revoke` (creator or Maintainer+) makes every unsubscribe link sent
  so far stop working.
- `/unsubscribe/{token}`: the opaque link of one address (subscriptions/unsubscribe.py). GET only shows a page
  with a button (mail scanners open links: opening one must not unsubscribe); POST unsubscribes, from that
  button or from a mail app's RFC 8058 one-click request (`List-Unsubscribe=One-Click`). Both are HTML pages.
"""

import html
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from export_pipeline.accounts.roles import Role
from export_pipeline.api.dependencies import Caller, Deps, Insights, ProjectId, require, require_project_role
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.reports import (
    DELIVERY_LIST,
    REVOKED_LINKS,
    SUBSCRIPTION,
    SUBSCRIPTION_BODY,
    SUBSCRIPTION_LIST,
    SUBSCRIPTION_PATCH,
    UNSUBSCRIBED_PAGE,
)
from export_pipeline.api.responses import MEMBER_ERRORS, error_responses
from export_pipeline.api.subscription_schemas import (
    DeliveryList,
    RevokedLinks,
    SubscriptionList,
    SubscriptionOut,
)
from export_pipeline.deps import AppDeps
from export_pipeline.insights.store import InsightStore
from export_pipeline.subscriptions.records import Subscription, SubscriptionIn, SubscriptionPatch, validated
from export_pipeline.subscriptions.store import SubscriptionStore
from export_pipeline.subscriptions.unsubscribe import (
    InvalidUnsubscribeToken,
    UnsubscribeClaim,
    resolve_unsubscribe,
)
from export_pipeline.subscriptions.views import deliveries_json

SubscriptionId = Annotated[str, Path(min_length=1, max_length=64, examples=["50e54c2560ca6949"])]

# Headers of the unsubscribe pages: the form may post back to this site only, and no site may frame the page
# (a framed unsubscribe button invites clickjacking). The token is in the URL: never send it elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}


api = APIRouter(tags=["subscriptions"], responses=error_responses(*MEMBER_ERRORS))
pages = APIRouter()
BASE = "/api/v1/projects/{project_id}/subscriptions"
Member = Annotated[Caller, require(Role.GUEST, action="subscribing to reports")]


async def subscription_store(deps: Deps) -> SubscriptionStore:
    return SubscriptionStore(deps.engine)


Subscriptions = Annotated[SubscriptionStore, Depends(subscription_store)]


def _manageable(deps: AppDeps, store: SubscriptionStore, project_id: int, subscription_id: str, user: str,
                action: str) -> Subscription:
    """The subscription, when `user` (a member) may change it: their own, or anyone's from Maintainer up."""
    subscription = store.get(project_id, subscription_id)
    if subscription.created_by != user:
        require_project_role(deps, project_id, user, required=Role.MAINTAINER,
                             action=f"{action} another member's subscription")
    return subscription


def _check_target(insights: InsightStore, project_id: int, resource: str, target_id: str) -> None:
    if resource == "insight":
        insights.insight(project_id, target_id)  # NotFound for another project's insight
    else:
        insights.dashboard(project_id, target_id)


@api.get(BASE, response_model=SubscriptionList, summary="List subscriptions",
         openapi_extra=examples(response=SUBSCRIPTION_LIST))
def list_subscriptions(project_id: ProjectId, who: Member, store: Subscriptions) -> dict:
    """Every subscription of the project (members see them all)."""
    return {"data": [subscription.to_json() for subscription in store.list(project_id)]}


@api.post(BASE, status_code=201, response_model=SubscriptionOut, summary="Subscribe to a report",
          openapi_extra=examples(request=SUBSCRIPTION_BODY, response=SUBSCRIPTION, status=201))
def create_subscription(project_id: ProjectId, who: Member, store: Subscriptions, insights: Insights,
                        body: Annotated[dict, Body(description="resource, target_id, title, message, "
                                                   "schedule, destinations, enabled")]) -> dict:
    """Subscribe to an insight or dashboard of this project; the caller owns the subscription."""
    parsed: SubscriptionIn = validated(SubscriptionIn, body, "subscription")
    _check_target(insights, project_id, parsed.resource, parsed.target_id)  # after the fields: reported first
    return store.create(project_id, parsed, created_by=who.user).to_json()


@api.get(f"{BASE}/{{subscription_id}}", response_model=SubscriptionOut, summary="Get a subscription",
         openapi_extra=examples(response=SUBSCRIPTION))
def get_subscription(project_id: ProjectId, subscription_id: SubscriptionId, who: Member,
                     store: Subscriptions) -> dict:
    """One subscription with its schedule (also as an RFC 5545 rule and in words), its next delivery and its
    destinations; for every member."""
    return store.get(project_id, subscription_id).to_json()


@api.patch(f"{BASE}/{{subscription_id}}", response_model=SubscriptionOut, summary="Change a subscription",
           openapi_extra=examples(request=SUBSCRIPTION_PATCH, response={**SUBSCRIPTION, **SUBSCRIPTION_PATCH}))
def update_subscription(project_id: ProjectId, subscription_id: SubscriptionId, who: Member, deps: Deps,
                        store: Subscriptions,
                        body: Annotated[dict, Body(description="title, message, schedule, destinations, "
                                                   "enabled")]) -> dict:
    """Change a subscription: your own, or anyone's as a Maintainer or higher."""
    _manageable(deps, store, project_id, subscription_id, who.user, "changing")
    patch: SubscriptionPatch = validated(SubscriptionPatch, body, "subscription")
    return store.update(project_id, subscription_id, patch).to_json()


@api.delete(f"{BASE}/{{subscription_id}}", status_code=204, summary="Delete a subscription")
def delete_subscription(project_id: ProjectId, subscription_id: SubscriptionId, who: Member, deps: Deps,
                        store: Subscriptions) -> Response:
    """Delete a subscription: your own, or anyone's as a Maintainer or higher."""
    _manageable(deps, store, project_id, subscription_id, who.user, "deleting")
    store.delete(project_id, subscription_id)
    return Response(status_code=204)


@api.get(f"{BASE}/{{subscription_id}}/deliveries", response_model=DeliveryList, summary="List deliveries",
         openapi_extra=examples(response=DELIVERY_LIST))
def list_deliveries(project_id: ProjectId, subscription_id: SubscriptionId, who: Member, store: Subscriptions,
                    limit: Annotated[int, Query(ge=1, le=50)] = 20) -> dict:
    """The latest deliveries (newest slot first), each with its outcome per destination."""
    subscription = store.get(project_id, subscription_id)
    return {"data": deliveries_json(store, subscription, limit=limit)}


@api.post(f"{BASE}/{{subscription_id}}/unsubscribe_links/revoke", response_model=RevokedLinks,
          summary="Revoke the unsubscribe links", openapi_extra=examples(response=REVOKED_LINKS))
def revoke_unsubscribe_links(project_id: ProjectId, subscription_id: SubscriptionId, who: Member, deps: Deps,
                             store: Subscriptions) -> dict:
    """Every unsubscribe link sent so far stops working; the next emails carry new ones."""
    _manageable(deps, store, project_id, subscription_id, who.user, "revoking the unsubscribe links of")
    revoked = store.revoke_unsubscribe_links(project_id, subscription_id)
    return {**revoked.to_json(), "unsubscribe_version": revoked.unsubscribe_version}


# --- unsubscribe pages (no login: the token we sent is the proof) -----------------------------------


def _claim_and_subscription(deps: AppDeps, store: SubscriptionStore,
                            token: str) -> tuple[UnsubscribeClaim, Subscription] | HTMLResponse:
    """The token's claim and its subscription, or the page to answer with: why the link fails, or that the
    subscription was deleted (nothing to do)."""
    try:
        claim = resolve_unsubscribe(deps.engine, token)
    except InvalidUnsubscribeToken as error:
        return unsubscribe_page("Invalid unsubscribe link", [f"{error.message} {error.hint}"], status=400)
    subscription = store.find(claim.subscription_id)
    if subscription is None:
        return _nothing_to_do(claim)
    if claim.version != subscription.unsubscribe_version:
        return unsubscribe_page("Link no longer valid", [
            "This link was revoked; use the link in the latest email.",
            f"The unsubscribe links of “{subscription.title}” were replaced by new ones. The unsubscribe link "
            "at the bottom of the latest report email works.",
        ], status=410)
    return claim, subscription


def _receives(subscription: Subscription, email: str) -> bool:
    return any(d.kind == "email" and d.enabled and (d.email or "").strip().lower() == email
               for d in subscription.destinations)


def _nothing_to_do(claim: UnsubscribeClaim) -> HTMLResponse:
    return unsubscribe_page("Nothing to unsubscribe from", [
        f"This subscription was deleted, so nothing is sent to {claim.email} any more. "
        "There is nothing to unsubscribe from."])


# A page, not API (and GET+HEAD on one route would give OpenAPI a duplicate operation id).
@pages.api_route("/unsubscribe/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse,
                  include_in_schema=False)
def unsubscribe_form(request: Request, token: str, deps: Deps, store: Subscriptions) -> HTMLResponse:
    """A page asking to confirm. It does not unsubscribe: mail scanners open links before people do."""
    checked = _claim_and_subscription(deps, store, token)
    if isinstance(checked, HTMLResponse):
        return checked
    claim, subscription = checked
    if not _receives(subscription, claim.email):
        return unsubscribe_page("Already unsubscribed", [
            f"You are already unsubscribed: “{subscription.title}” is no longer sent to {claim.email}."])
    return unsubscribe_page("Unsubscribe?", [
        f"Stop sending “{subscription.title}” to {claim.email}?",
    ], form_action=request.url.path)


@pages.post("/unsubscribe/{token}", response_class=HTMLResponse, tags=["unsubscribe"], responses={
    "4XX": {"description": "A page saying why the link does not work (400 invalid, 410 revoked)",
            "content": {"text/html": {}}}}, summary="Unsubscribe an address",
            openapi_extra=examples(response=UNSUBSCRIBED_PAGE, response_type="text/html"))
def unsubscribe(token: str, deps: Deps, store: Subscriptions) -> HTMLResponse:
    """Unsubscribe the link's address: the page's button, or a mail app's RFC 8058 one-click POST
    (`List-Unsubscribe=One-Click`). Unsubscribing again is fine."""
    checked = _claim_and_subscription(deps, store, token)
    if isinstance(checked, HTMLResponse):
        return checked
    claim, subscription = checked
    was_receiving = _receives(subscription, claim.email)
    subscription, emptied = store.unsubscribe(subscription.id, claim.email)
    if not was_receiving:
        return unsubscribe_page("Already unsubscribed", [
            f"You are already unsubscribed: you no longer receive “{subscription.title}” at {claim.email}."])
    lines = [f"You will no longer receive “{subscription.title}” at {claim.email}."]
    if emptied:
        lines.append("That was its last recipient, so the subscription is now disabled.")
    return unsubscribe_page("Unsubscribed", lines)


def unsubscribe_page(title: str, paragraphs: list[str], *, status: int = 200,
                     form_action: str | None = None) -> HTMLResponse:
    """A small standalone page; every text is escaped (titles and addresses are user input)."""
    esc = html.escape
    body = "".join(f"<p>{esc(text)}</p>" for text in paragraphs)
    if form_action is not None:
        body += (f'<form method="post" action="{esc(form_action)}">'
                 '<button type="submit">Unsubscribe</button></form>')
    page = f"""<!doctype html>
<html lang="en" class="theme-light">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{esc(title)}</title>
<link rel="stylesheet" href="/embed/static/embed.css"></head>
<body><main class="page-error"><h1>{esc(title)}</h1>{body}</main></body>
</html>
"""
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


router = APIRouter()
router.include_router(api)
router.include_router(pages)
