"""The app database: members, export requests, insights, subscriptions, batch exports and the rest of the
application's state, in SQLite by default and Postgres in production.

tables.py declares the tables on one `metadata`; engine.py opens the database and migrates it
(export_pipeline_migrations/); rows.py holds the helpers every store shares. Stores import all of it from here.
"""

from export_pipeline.db.engine import get_engine, upgrade_schema
from export_pipeline.db.rows import delete_rows, project_row
from export_pipeline.db.tables import (
    access_refusals,
    access_tokens,
    api_requests,
    batch_export_destinations,
    batch_export_runs,
    cohort_people,
    cohorts,
    dashboard_tiles,
    dashboards,
    delivery_outcomes,
    export_parts,
    export_requests,
    group_types,
    insights,
    metadata,
    project_members,
    service_pings,
    share_links,
    subscription_deliveries,
    subscription_destinations,
    subscriptions,
    unsubscribe_tokens,
    user_emails,
)

__all__ = [
    "access_refusals", "access_tokens", "api_requests", "batch_export_destinations", "batch_export_runs",
    "cohort_people", "cohorts", "dashboard_tiles", "dashboards", "delete_rows", "delivery_outcomes",
    "export_parts", "export_requests", "get_engine", "group_types", "insights", "metadata", "project_members",
    "project_row", "service_pings", "share_links", "subscription_deliveries", "subscription_destinations",
    "subscriptions", "unsubscribe_tokens", "upgrade_schema", "user_emails",
]
