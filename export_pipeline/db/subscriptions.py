"""Subscriptions: scheduled reports of an insight or dashboard to email addresses and Slack channels, the
unsubscribe links sent and each scheduled delivery's outcomes."""

import sqlalchemy as sa

from export_pipeline.db.metadata import metadata

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
