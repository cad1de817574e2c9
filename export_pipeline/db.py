"""Application state (members, access refusals, export requests) in SQLite by default, Postgres in production."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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
    # Ingestion-time snapshot: rows ingested after the request are not exported.
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("row_count", sa.BigInteger, nullable=False, default=0),
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
    sa.Index("ix_export_requests_state", "state", "created_at"),
    sa.Index("ix_export_requests_project", "project_id", "created_at"),
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


@cache
def get_engine(database_url: str) -> Engine:
    """One engine per URL per process; creates the schema on first use (idempotent)."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # The Dagster daemon, runs, CLI and API write concurrently: wait on locks rather than fail.
        engine = sa.create_engine(database_url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_wal)
    else:
        engine = sa.create_engine(database_url, pool_pre_ping=True)
    metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Additive schema changes for databases created by an earlier version: new nullable columns only.

    (Anything beyond adding nullable columns needs a real migration; none has been needed yet.)"""
    inspector = sa.inspect(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present:
                    if not column.nullable:
                        raise RuntimeError(f"{table.name}.{column.name} is new and NOT NULL: write a migration")
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'))


def _sqlite_wal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
