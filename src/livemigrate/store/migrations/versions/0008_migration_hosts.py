"""several migration hosts per live migration: the whole list, beside the first in migration_host

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('migration_hosts', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.drop_column('migration_hosts')
