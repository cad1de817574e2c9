"""The app database: members, export requests, insights, subscriptions, batch exports and the rest of the
application's state, in SQLite by default and Postgres in production.

Its tables are declared by domain (accounts.py, exports.py, insights.py, subscriptions.py, people.py,
batch_exports.py, usage.py) on one `metadata`; engine.py opens the database and migrates it
(export_pipeline_migrations/); rows.py holds the helpers every store shares. Stores import all of it from here.
"""

from export_pipeline.db.accounts import access_refusals, access_tokens, project_members, user_emails
from export_pipeline.db.batch_exports import batch_export_destinations, batch_export_runs
from export_pipeline.db.engine import get_engine, upgrade_schema
from export_pipeline.db.exports import export_parts, export_requests
from export_pipeline.db.insights import dashboard_tiles, dashboards, insights, share_links
from export_pipeline.db.metadata import metadata
from export_pipeline.db.people import cohort_people, cohorts, group_types
from export_pipeline.db.rows import delete_rows, project_row
from export_pipeline.db.subscriptions import (
    delivery_outcomes,
    subscription_deliveries,
    subscription_destinations,
    subscriptions,
    unsubscribe_tokens,
)
from export_pipeline.db.usage import api_requests, service_pings

__all__ = [
    "access_refusals", "access_tokens", "api_requests", "batch_export_destinations", "batch_export_runs",
    "cohort_people", "cohorts", "dashboard_tiles", "dashboards", "delete_rows", "delivery_outcomes",
    "export_parts", "export_requests", "get_engine", "group_types", "insights", "metadata", "project_members",
    "project_row", "service_pings", "share_links", "subscription_deliveries", "subscription_destinations",
    "subscriptions", "unsubscribe_tokens", "upgrade_schema", "user_emails",
]
