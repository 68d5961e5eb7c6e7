"""source hosts, migration hosts, agent keys

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from livemigrate.store.models import UtcDateTime

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('migration_hosts',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('project_id', sa.String(length=24), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('agent_version', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_heartbeat_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'hostname')
    )
    with op.batch_alter_table('migration_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_migration_hosts_project_id'), ['project_id'], unique=False)

    op.create_table('source_hosts',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('project_id', sa.String(length=24), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=True),
    sa.Column('password_encrypted', sa.Text(), nullable=True),
    sa.Column('auth_mechanism', sa.String(length=32), nullable=False),
    sa.Column('ssl_enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.Column('cluster_name', sa.String(length=255), nullable=True),
    sa.Column('replica_set_name', sa.String(length=255), nullable=True),
    sa.Column('version', sa.String(length=64), nullable=True),
    sa.Column('feature_compatibility_version', sa.String(length=32), nullable=True),
    sa.Column('sharded', sa.Boolean(), nullable=False),
    sa.Column('data_size_bytes', sa.Integer(), nullable=True),
    sa.Column('oplog_size_mb', sa.Float(), nullable=True),
    sa.Column('last_ping_at', UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'hostname', 'port')
    )
    with op.batch_alter_table('source_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_source_hosts_project_id'), ['project_id'], unique=False)

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', sa.String(length=24), nullable=True))
        batch_op.create_foreign_key('fk_api_keys_project_id', 'projects', ['project_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint('fk_api_keys_project_id', type_='foreignkey')
        batch_op.drop_column('project_id')

    with op.batch_alter_table('source_hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_source_hosts_project_id'))

    op.drop_table('source_hosts')
    with op.batch_alter_table('migration_hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_migration_hosts_project_id'))

    op.drop_table('migration_hosts')
