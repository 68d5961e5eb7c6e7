"""a validation's pre-flight: what its migration host needs to read the source, and its answer

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_COLUMNS = (
    ('host_asked_at', sa.DateTime(timezone=True)),
    ('target_org_id', sa.String(length=24)),
    ('source_org_id', sa.String(length=24)),
    ('source_cluster_name', sa.String(length=255)),
    ('source_username', sa.String(length=255)),
    ('source_password_encrypted', sa.Text()),
    ('source_ca_certificate_path', sa.Text()),
    ('destination_cluster_name', sa.String(length=64)),
    ('migration_host', sa.String(length=255)),
    ('preflight', sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table('live_migration_validations', schema=None) as batch_op:
        for name, kind in _COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
        batch_op.add_column(sa.Column('source_ssl', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('drop_destination_data', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index('ix_live_migration_validations_source_org_id', ['source_org_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('live_migration_validations', schema=None) as batch_op:
        batch_op.drop_index('ix_live_migration_validations_source_org_id')
        for name in ('drop_destination_data', 'source_ssl', *reversed([name for name, _ in _COLUMNS])):
            batch_op.drop_column(name)
