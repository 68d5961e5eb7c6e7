"""sharding: a validation keeps the `sharding` it was asked (its pre-flight checks it), and both a
validation and a migration whether the migration may stop a sharded source's balancer

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stop_source_balancer', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('live_migration_validations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sharding', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('stop_source_balancer', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('live_migration_validations', schema=None) as batch_op:
        batch_op.drop_column('stop_source_balancer')
        batch_op.drop_column('sharding')
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.drop_column('stop_source_balancer')
