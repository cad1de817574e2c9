"""The export's counted row total (export_requests.row_total), which progress is measured against.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 01:41:48.440042

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('export_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('row_total', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('export_requests', schema=None) as batch_op:
        batch_op.drop_column('row_total')
