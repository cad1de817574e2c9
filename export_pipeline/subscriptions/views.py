"""A subscription's deliveries as JSON, with one outcome per destination (API and CLI)."""

from __future__ import annotations

from export_pipeline.subscriptions.records import Delivery, Subscription
from export_pipeline.subscriptions.store import SubscriptionStore


def outcomes_json(store: SubscriptionStore, subscription: Subscription, delivery: Delivery) -> list[dict]:
    """The delivery's outcome per destination, in the subscription's destination order (then removed ones)."""
    order = {destination.id: index for index, destination in enumerate(subscription.destinations)}
    found = sorted(store.outcomes(delivery.id).values(),
                   key=lambda outcome: (order.get(outcome.destination_id, len(order)), outcome.destination_id))
    known = {destination.id: destination for destination in subscription.destinations}
    return [{"destination_id": o.destination_id,
             "destination": known[o.destination_id].to_json() if o.destination_id in known else None,
             "state": "succeeded" if o.ok else "failed", "detail": o.detail, "error": o.error,
             "attempts": o.attempts} for o in found]


def deliveries_json(store: SubscriptionStore, subscription: Subscription, *, limit: int) -> list[dict]:
    """The latest `limit` deliveries of a subscription, newest slot first, each with its outcomes."""
    return [delivery.to_json(outcomes=outcomes_json(store, subscription, delivery))
            for delivery in store.deliveries(subscription.id, limit=limit)]
