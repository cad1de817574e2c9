"""Members and their access: project members, refused attempts, users' email addresses, personal access tokens."""

import sqlalchemy as sa

from export_pipeline.db.metadata import metadata

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
