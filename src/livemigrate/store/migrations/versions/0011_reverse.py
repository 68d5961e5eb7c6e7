"""a way back: whether a migration may be reversed, the point its reverse starts from, and a reverse
migration's direction and the migration it reverses

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reversible', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('reverse_point', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('direction', sa.String(length=8), nullable=False, server_default='FORWARD'))
        batch_op.add_column(sa.Column('reverse_of', sa.String(length=24), nullable=True))
        batch_op.create_index('ix_live_migrations_reverse_of', ['reverse_of'], unique=False)
    with op.batch_alter_table('live_migration_validations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reversible', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('live_migration_validations', schema=None) as batch_op:
        batch_op.drop_column('reversible')
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.drop_index('ix_live_migrations_reverse_of')
        batch_op.drop_column('reverse_of')
        batch_op.drop_column('direction')
        batch_op.drop_column('reverse_point')
        batch_op.drop_column('reversible')
