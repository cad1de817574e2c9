"""Usage: API requests counted, and the service pings recorded (and where they went)."""

import sqlalchemy as sa

from export_pipeline.db.metadata import metadata

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
