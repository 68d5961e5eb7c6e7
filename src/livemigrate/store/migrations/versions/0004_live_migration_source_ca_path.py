"""live migrations: the source's CA certificate path

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_ca_certificate_path', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.drop_column('source_ca_certificate_path')
