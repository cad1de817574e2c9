"""Baseline: the schema as it stood when migrations were introduced.

A database created before that (by `metadata.create_all`, with nullable columns added on start) has these
tables already, maybe without the newest nullable columns: this migration creates only what is missing, so it
brings both a new database and any earlier one to the same schema, then stamps it.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create_or_complete(name: str, *elements, **kw) -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(name):
        op.create_table(name, *elements, **kw)
        return
    present = {column["name"] for column in inspector.get_columns(name)}
    for column in elements:
        if isinstance(column, sa.Column) and column.name not in present:
            if not column.nullable:
                raise RuntimeError(f"{name}.{column.name} is missing and NOT NULL: this database needs a hand migration")
            op.add_column(name, column)


def _create_index(name: str, table: str, columns: list[str], **kw) -> None:
    if name not in {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, columns, **kw)


def upgrade() -> None:
    """Create what is missing: every table, index and column of the first schema."""
    _create_or_complete('access_refusals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('user_name', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('access_level', sa.Integer(), nullable=True),
    sa.Column('required_level', sa.Integer(), nullable=False),
    sa.Column('export_id', sa.String(length=64), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    _create_index('ix_access_refusals_project', 'access_refusals', ['project_id', 'occurred_at'], unique=False)
    _create_or_complete('access_tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_name', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_sha256')
    )
    _create_or_complete('api_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('endpoint', sa.String(length=128), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('user_name', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    _create_index('ix_api_requests_time', 'api_requests', ['occurred_at'], unique=False)
    _create_or_complete('dashboards',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    _create_index(op.f('ix_dashboards_project_id'), 'dashboards', ['project_id'], unique=False)
    _create_or_complete('delivery_outcomes',
    sa.Column('delivery_id', sa.String(length=64), nullable=False),
    sa.Column('destination_id', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('delivery_id', 'destination_id')
    )
    _create_or_complete('export_requests',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('requested_by', sa.String(length=255), nullable=False),
    sa.Column('resource', sa.String(length=32), nullable=False),
    sa.Column('target_id', sa.String(length=32), nullable=True),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('compression', sa.String(length=16), nullable=False),
    sa.Column('date_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('date_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('row_count', sa.BigInteger(), nullable=False),
    sa.Column('byte_count', sa.BigInteger(), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('manifest_key', sa.String(length=512), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notify_email', sa.String(length=320), nullable=True),
    sa.Column('notified_to', sa.String(length=320), nullable=True),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notify_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    _create_index('ix_export_requests_project', 'export_requests', ['project_id', 'created_at'], unique=False)
    _create_index('ix_export_requests_state', 'export_requests', ['state', 'created_at'], unique=False)
    _create_or_complete('insights',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('query', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    _create_index(op.f('ix_insights_project_id'), 'insights', ['project_id'], unique=False)
    _create_or_complete('project_members',
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('user_name', sa.String(length=255), nullable=False),
    sa.Column('access_level', sa.Integer(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('project_id', 'user_name')
    )
    _create_or_complete('service_pings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('sent_to', sa.String(length=512), nullable=True),
    sa.Column('send_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    _create_or_complete('share_links',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('resource', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.String(length=32), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_sha256')
    )
    _create_index('ix_share_links_target', 'share_links', ['project_id', 'resource', 'target_id'], unique=False)
    _create_or_complete('subscription_deliveries',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('subscription_id', sa.String(length=32), nullable=False),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    _create_index('ix_subscription_deliveries_state', 'subscription_deliveries', ['state'], unique=False)
    _create_index('ix_subscription_deliveries_sub', 'subscription_deliveries', ['subscription_id', 'scheduled_for'], unique=False)
    _create_or_complete('subscriptions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('resource', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('rrule', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('last_slot', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unsubscribe_version', sa.Integer(), nullable=False),
    sa.Column('share_link_id', sa.String(length=32), nullable=True),
    sa.Column('share_token', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    _create_index(op.f('ix_subscriptions_project_id'), 'subscriptions', ['project_id'], unique=False)
    _create_or_complete('user_emails',
    sa.Column('user_name', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_name')
    )
    _create_or_complete('dashboard_tiles',
    sa.Column('dashboard_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('insight_id', sa.String(length=32), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dashboard_id'], ['dashboards.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['insight_id'], ['insights.id'], ),
    sa.PrimaryKeyConstraint('dashboard_id', 'position')
    )
    _create_or_complete('subscription_destinations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('subscription_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('workspace', sa.String(length=255), nullable=True),
    sa.Column('channel', sa.String(length=255), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    _create_index(op.f('ix_subscription_destinations_subscription_id'), 'subscription_destinations', ['subscription_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_subscription_destinations_subscription_id'), table_name='subscription_destinations')
    op.drop_table('subscription_destinations')
    op.drop_table('dashboard_tiles')
    op.drop_table('user_emails')
    op.drop_index(op.f('ix_subscriptions_project_id'), table_name='subscriptions')
    op.drop_table('subscriptions')
    op.drop_index('ix_subscription_deliveries_sub', table_name='subscription_deliveries')
    op.drop_index('ix_subscription_deliveries_state', table_name='subscription_deliveries')
    op.drop_table('subscription_deliveries')
    op.drop_index('ix_share_links_target', table_name='share_links')
    op.drop_table('share_links')
    op.drop_table('service_pings')
    op.drop_table('project_members')
    op.drop_index(op.f('ix_insights_project_id'), table_name='insights')
    op.drop_table('insights')
    op.drop_index('ix_export_requests_state', table_name='export_requests')
    op.drop_index('ix_export_requests_project', table_name='export_requests')
    op.drop_table('export_requests')
    op.drop_table('delivery_outcomes')
    op.drop_index(op.f('ix_dashboards_project_id'), table_name='dashboards')
    op.drop_table('dashboards')
    op.drop_index('ix_api_requests_time', table_name='api_requests')
    op.drop_table('api_requests')
    op.drop_table('access_tokens')
    op.drop_index('ix_access_refusals_project', table_name='access_refusals')
    op.drop_table('access_refusals')
