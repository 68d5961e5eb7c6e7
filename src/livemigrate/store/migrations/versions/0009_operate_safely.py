"""operating a migration safely: the change capture chosen per migration, the claim on its destination
(unique: one migration writes a destination at a time), and its cancellation

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_capture', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('destination_claim', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancelled_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hosts_stopped_at', sa.DateTime(timezone=True), nullable=True))
    # The running migrations claim their destinations: the newest of each, should two share one already.
    op.execute("UPDATE live_migrations SET destination_claim = project_id || '/' || destination_cluster_name "
               "WHERE status IN ('NEW', 'WORKING') AND id IN (SELECT max(id) FROM live_migrations "
               "WHERE status IN ('NEW', 'WORKING') GROUP BY project_id, destination_cluster_name)")
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.create_index('ix_live_migrations_destination_claim', ['destination_claim'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.drop_index('ix_live_migrations_destination_claim')
        batch_op.drop_column('hosts_stopped_at')
        batch_op.drop_column('cancelled_by')
        batch_op.drop_column('cancelled_at')
        batch_op.drop_column('destination_claim')
        batch_op.drop_column('change_capture')
