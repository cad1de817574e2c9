"""Export requests and the parts each has written so far."""

import sqlalchemy as sa

from export_pipeline.db.metadata import metadata

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
