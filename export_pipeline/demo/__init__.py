"""The demo's dashboard and subscription over the seeded events (`make demo`), each created once per project:
running the demo again finds and reuses them."""

from __future__ import annotations

from export_pipeline.insights.store import Dashboard, Insight, InsightStore
from export_pipeline.subscriptions.records import Subscription
from export_pipeline.subscriptions.store import SubscriptionStore

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
SEEDED_WINDOW = {"date_from": "2026-05-01", "date_to": "2026-10-28"}  # the six months `seed` generates
DEMO_SUBSCRIPTION = "Weekly product metrics"


def demo_dashboard(store: InsightStore, project_id: int, user: str) -> tuple[Dashboard, list[Insight] | None]:
    """The project's demo dashboard, created by `user` unless it exists; its insights (trends full width, the
    others half) are returned only when they were created now."""
    existing = [d for d in store.list_dashboards(project_id) if d.name == DEMO_DASHBOARD]
    if existing:
        return existing[0], None
    created = [
        store.create_insight(project_id, name=name, query={**query, **SEEDED_WINDOW}, created_by=user)
        for name, query in DEMO_INSIGHTS
    ]
    tiles = [{"insight_id": i.id, "width": 12 if i.query.kind == "trends" else 6} for i in created]
    return store.create_dashboard(project_id, name=DEMO_DASHBOARD, tiles=tiles, created_by=user), created


def demo_subscription(store: SubscriptionStore, project_id: int, user: str, dashboard_id: str) -> Subscription:
    """The demo team's weekly subscription to a dashboard (email and Slack), created unless it exists."""
    found = [s for s in store.list(project_id) if s.title == DEMO_SUBSCRIPTION and s.target_id == dashboard_id]
    if found:
        return found[0]
    return store.create(project_id, {
        "resource": "dashboard", "target_id": dashboard_id, "title": DEMO_SUBSCRIPTION,
        "message": "Good morning! Here are our product numbers.",
        "schedule": {"frequency": "weekly", "weekdays": ["MO"], "hour": 9, "timezone": "Europe/Berlin"},
        "destinations": [{"kind": "email", "email": "team@example.com"},
                         {"kind": "slack", "workspace": "demo", "channel": "#weekly-metrics"}],
    }, created_by=user)
