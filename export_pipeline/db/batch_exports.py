"""Batch exports: recurring copies of a model to a customer's folder or bucket, one run record per interval."""

import sqlalchemy as sa

from export_pipeline.db.metadata import metadata

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
