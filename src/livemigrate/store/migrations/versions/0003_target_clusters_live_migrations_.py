"""target clusters, live migrations, validations

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from livemigrate.store.models import UtcDateTime

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('live_migration_validations',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('project_id', sa.String(length=24), nullable=False),
    sa.Column('source_project_id', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('live_migration_validations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_migration_validations_project_id'), ['project_id'], unique=False)

    op.create_table('live_migrations',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('project_id', sa.String(length=24), nullable=False),
    sa.Column('target_org_id', sa.String(length=24), nullable=False),
    sa.Column('source_org_id', sa.String(length=24), nullable=False),
    sa.Column('source_project_id', sa.String(length=24), nullable=False),
    sa.Column('source_cluster_name', sa.String(length=255), nullable=False),
    sa.Column('source_username', sa.String(length=255), nullable=True),
    sa.Column('source_password_encrypted', sa.Text(), nullable=True),
    sa.Column('source_ssl', sa.Boolean(), nullable=False),
    sa.Column('destination_cluster_name', sa.String(length=64), nullable=False),
    sa.Column('hostname_schema_type', sa.String(length=16), nullable=False),
    sa.Column('migration_host', sa.String(length=255), nullable=False),
    sa.Column('drop_destination_data', sa.Boolean(), nullable=False),
    sa.Column('sharding', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=32), nullable=True),
    sa.Column('lag_time_seconds', sa.Float(), nullable=True),
    sa.Column('ready_for_cutover', sa.Boolean(), nullable=False),
    sa.Column('ready_since', UtcDateTime(timezone=True), nullable=True),
    sa.Column('cutover_requested_at', UtcDateTime(timezone=True), nullable=True),
    sa.Column('copied_documents', sa.Integer(), nullable=False),
    sa.Column('total_documents', sa.Integer(), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_migrations_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_migrations_source_org_id'), ['source_org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_migrations_target_org_id'), ['target_org_id'], unique=False)

    op.create_table('target_clusters',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('project_id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('uri_encrypted', sa.Text(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'name')
    )
    with op.batch_alter_table('target_clusters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_target_clusters_project_id'), ['project_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('target_clusters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_target_clusters_project_id'))

    op.drop_table('target_clusters')
    with op.batch_alter_table('live_migrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_migrations_target_org_id'))
        batch_op.drop_index(batch_op.f('ix_live_migrations_source_org_id'))
        batch_op.drop_index(batch_op.f('ix_live_migrations_project_id'))

    op.drop_table('live_migrations')
    with op.batch_alter_table('live_migration_validations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_migration_validations_project_id'))

    op.drop_table('live_migration_validations')
