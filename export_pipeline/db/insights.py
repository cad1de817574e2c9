"""Insights, dashboards and their tiles, and share links to either."""

import sqlalchemy as sa

from export_pipeline.db.metadata import metadata

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
