"""several migration hosts per live migration: the whole list, beside the first in migration_host;
and the leases by which they share it

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
    op.create_table(
        'job_leases',
        sa.Column('job_id', sa.String(length=24), nullable=False),
        sa.Column('name', sa.String(length=512), nullable=False),
        sa.Column('project_id', sa.String(length=24), nullable=False),
        sa.Column('holder', sa.String(length=255), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'name'),
    )
    with op.batch_alter_table('job_leases', schema=None) as batch_op:
        batch_op.create_index('ix_job_leases_project_id', ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job_leases', schema=None) as batch_op:
        batch_op.drop_index('ix_job_leases_project_id')
    op.drop_table('job_leases')
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.drop_column('migration_hosts')
