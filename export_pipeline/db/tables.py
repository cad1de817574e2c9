"""The app database's tables (SQLAlchemy Core), all on one `metadata`, in the order Alembic compares them:
members and access, export requests, usage, insights, subscriptions, groups and cohorts, batch exports."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

project_members = sa.Table(
    "project_members",
    metadata,
    sa.Column("project_id", sa.BigInteger, primary_key=True),
    sa.Column("user_name", sa.String(255), primary_key=True),
    sa.Column("access_level", sa.Integer, nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)

access_refusals = sa.Table(
    "access_refusals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.BigInteger, nullable=False),
    sa.Column("user_name", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("access_level", sa.Integer, nullable=True),
    sa.Column("required_level", sa.Integer, nullable=False),
    sa.Column("export_id", sa.String(64), nullable=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_access_refusals_project", "project_id", "occurred_at"),
)

export_requests = sa.Table(
    "export_requests",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.BigInteger, nullable=False),
    sa.Column("requested_by", sa.String(255), nullable=False),
    sa.Column("resource", sa.String(32), nullable=False),
    sa.Column("target_id", sa.String(32), nullable=True),  # insight or dashboard id
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("width", sa.Integer, nullable=True),  # PNG exports
    sa.Column("compression", sa.String(16), nullable=False),
    sa.Column("date_from", sa.DateTime(timezone=True), nullable=True),
    sa.Column("date_to", sa.DateTime(timezone=True), nullable=True),
    sa.Column("events", sa.JSON, nullable=False),
    # Persons, groups and cohort exports: property filters, cohort id, group type and what the request
    # resolved in this database (ExportSpec.model_filters). NULL for events, insights and dashboards.
    sa.Column("model_filters", sa.JSON, nullable=True),
    # Ingestion-time snapshot: rows ingested after the request are not exported.
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("row_count", sa.BigInteger, nullable=False, default=0),
    # What the run counted before writing: the total that progress (CLI bar, export page) is measured against.
    sa.Column("row_total", sa.BigInteger, nullable=True),
    sa.Column("byte_count", sa.BigInteger, nullable=False, default=0),
    sa.Column("file_count", sa.Integer, nullable=False, default=0),
    sa.Column("manifest_key", sa.String(512), nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    # Email when the export finishes: the requested address, and the outcome of the last notification.
    sa.Column("notify_email", sa.String(320), nullable=True),
    sa.Column("notified_to", sa.String(320), nullable=True),
    sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("notify_error", sa.Text, nullable=True),
    # Written every few seconds by the process running the export: the reconciler fails a `running` request
    # whose heartbeat went silent (its process died without a word).
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
    # Set when removing a failed attempt's files failed (storage down): the reconciler retries until it works.
    sa.Column("cleanup_error", sa.Text, nullable=True),
    sa.Index("ix_export_requests_state", "state", "created_at"),
    sa.Index("ix_export_requests_project", "project_id", "created_at"),
)

# The parts of an export completed so far, recorded as each is finished: a retry after a crash keeps them
# and continues after `last_key` (JSON) instead of starting over. Gone with the request's files.
export_parts = sa.Table(
    "export_parts",
    metadata,
    sa.Column("export_id", sa.String(64), sa.ForeignKey("export_requests.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("last_key", sa.JSON, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

# Where a user's export notifications go when a request names no address (`users set-email`).
user_emails = sa.Table(
    "user_emails",
    metadata,
    sa.Column("user_name", sa.String(255), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


access_tokens = sa.Table(
    "access_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_name", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    # SHA-256 of the token: tokens are 256-bit random, so a fast hash is enough and lookups are exact.
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
)


api_requests = sa.Table(
    "api_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("endpoint", sa.String(128), nullable=False),  # "GET /api/v1/projects/{project_id}/events"
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("user_name", sa.String(255), nullable=True),
    sa.Index("ix_api_requests_time", "occurred_at"),
)

service_pings = sa.Table(
    "service_pings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("sent_to", sa.String(512), nullable=True),
    sa.Column("send_error", sa.Text, nullable=True),
)


insights = sa.Table(
    "insights",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("query", sa.JSON, nullable=False),  # a validated InsightQuery
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

dashboards = sa.Table(
    "dashboards",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

dashboard_tiles = sa.Table(
    "dashboard_tiles",
    metadata,
    sa.Column("dashboard_id", sa.String(32), sa.ForeignKey("dashboards.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("insight_id", sa.String(32), sa.ForeignKey("insights.id"), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),  # grid columns of 12
    sa.Column("height", sa.Integer, nullable=False),  # grid rows
)

# Share links of insights and dashboards: anyone with the token may view the embed page, until it is revoked
# or expires. Only the token's SHA-256 is stored (tokens are 256-bit random, as for access tokens).
share_links = sa.Table(
    "share_links",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", sa.BigInteger, nullable=False),
    sa.Column("resource", sa.String(16), nullable=False),  # insight | dashboard
    sa.Column("target_id", sa.String(32), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_share_links_target", "project_id", "resource", "target_id"),
)


# Subscriptions: scheduled reports of an insight or dashboard to email addresses and Slack channels.
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("resource", sa.String(16), nullable=False),  # insight | dashboard
    sa.Column("target_id", sa.String(32), nullable=False),
    sa.Column("title", sa.String(255), nullable=False),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("rrule", sa.Text, nullable=False),  # RFC 5545 DTSTART;TZID=… + RRULE
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    # The latest scheduled slot already handed to a delivery (sent or skipped): slots up to it are never due again.
    sa.Column("last_slot", sa.DateTime(timezone=True), nullable=True),
    # Bumped to revoke every unsubscribe link sent so far.
    sa.Column("unsubscribe_version", sa.Integer, nullable=False),
    # The share link the reports point to (its token, so that every delivery can link to it).
    sa.Column("share_link_id", sa.String(32), nullable=True),
    sa.Column("share_token", sa.String(128), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

subscription_destinations = sa.Table(
    "subscription_destinations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("subscription_id", sa.String(32), sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("kind", sa.String(8), nullable=False),  # email | slack
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("workspace", sa.String(255), nullable=True),
    sa.Column("channel", sa.String(255), nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
)

# The unsubscribe links sent: a random token per link, stored only as its SHA-256 (subscriptions/unsubscribe.py).
unsubscribe_tokens = sa.Table(
    "unsubscribe_tokens",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    # No foreign key: a deleted subscription's links still answer "nothing to unsubscribe from".
    sa.Column("subscription_id", sa.String(32), nullable=False, index=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per scheduled slot of a subscription (also the Dagster partition key); skipped slots included.
subscription_deliveries = sa.Table(
    "subscription_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("subscription_id", sa.String(32), nullable=False),
    sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),  # also the heartbeat of a running delivery
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_subscription_deliveries_sub", "subscription_id", "scheduled_for"),
    sa.Index("ix_subscription_deliveries_state", "state"),
)

delivery_outcomes = sa.Table(
    "delivery_outcomes",
    metadata,
    sa.Column("delivery_id", sa.String(64), primary_key=True),
    sa.Column("destination_id", sa.String(32), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # succeeded | failed
    sa.Column("detail", sa.Text, nullable=True),  # where it went (Slack ts, SendGrid, outbox path)
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


# Group type names per project (PostHog's group type mapping): index 0-4 in ClickHouse's groups table.
group_types = sa.Table(
    "group_types",
    metadata,
    sa.Column("project_id", sa.BigInteger, primary_key=True),
    sa.Column("group_type_index", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.UniqueConstraint("project_id", "name", name="uq_group_types_name"),
)

# Cohorts: a static list of person ids (cohort_people) or a dynamic definition evaluated in ClickHouse.
cohorts = sa.Table(
    "cohorts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # static | dynamic
    sa.Column("definition", sa.JSON, nullable=True),  # dynamic: cohorts/definition.py
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

cohort_people = sa.Table(
    "cohort_people",
    metadata,
    sa.Column("cohort_id", sa.Integer, sa.ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("person_id", sa.String(36), primary_key=True),
)

# Batch exports: recurring copies of a model to a customer's folder or bucket, one run record per interval.
batch_export_destinations = sa.Table(
    "batch_export_destinations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("model", sa.String(32), nullable=False),
    sa.Column("url", sa.String(1024), nullable=False),  # file:///folder or s3://bucket/prefix, never credentials
    sa.Column("endpoint_url", sa.String(1024), nullable=True),
    sa.Column("credentials_ref", sa.String(255), nullable=True),  # the NAME of the secret, never its value
    sa.Column("key_template", sa.String(512), nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("compression", sa.String(16), nullable=False),
    sa.Column("file_size_bytes", sa.BigInteger, nullable=False),
    sa.Column("split_by_event", sa.Boolean, nullable=False),
    sa.Column("interval", sa.String(8), nullable=False),  # hour | day | week
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("settle_seconds", sa.Integer, nullable=False),
    sa.Column("max_failures", sa.Integer, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("paused_reason", sa.Text, nullable=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False),
    # The next interval the live sensor will request (backfills never move it).
    sa.Column("live_cursor", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("notify_email", sa.String(320), nullable=True),
    sa.Column("slack_workspace", sa.String(255), nullable=True),
    sa.Column("slack_channel", sa.String(255), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

batch_export_runs = sa.Table(
    "batch_export_runs",
    metadata,
    sa.Column("destination_id", sa.String(32), primary_key=True),
    sa.Column("interval_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # queued | running | succeeded | skipped | failed
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("files", sa.Integer, nullable=False),
    sa.Column("manifest_key", sa.String(1024), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_batch_export_runs_state", "destination_id", "state"),
)
