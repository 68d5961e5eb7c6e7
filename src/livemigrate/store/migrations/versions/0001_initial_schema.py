"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from livemigrate.store.models import UtcDateTime

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organizations',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('api_access_list_required', sa.Boolean(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organizations_side'), ['side'], unique=False)

    op.create_table('api_keys',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('org_id', sa.String(length=24), nullable=False),
    sa.Column('public_key', sa.String(length=32), nullable=False),
    sa.Column('ha1_md5', sa.String(length=32), nullable=False),
    sa.Column('ha1_sha256', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=250), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_key')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_org_id'), ['org_id'], unique=False)

    op.create_table('projects',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('org_id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id', 'name')
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_projects_org_id'), ['org_id'], unique=False)

    op.create_table('source_links',
    sa.Column('source_org_id', sa.String(length=24), nullable=False),
    sa.Column('target_org_id', sa.String(length=24), nullable=False),
    sa.Column('target_base_url', sa.Text(), nullable=False),
    sa.Column('link_public_key', sa.String(length=32), nullable=False),
    sa.Column('link_private_key_encrypted', sa.Text(), nullable=False),
    sa.Column('token_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_synced_at', UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_sync_error', sa.Text(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['source_org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('source_org_id')
    )
    op.create_table('api_key_access_list',
    sa.Column('api_key_id', sa.String(length=24), nullable=False),
    sa.Column('cidr_block', sa.String(length=64), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('api_key_id', 'cidr_block')
    )
    op.create_table('link_tokens',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('org_id', sa.String(length=24), nullable=False),
    sa.Column('api_key_id', sa.String(length=24), nullable=False),
    sa.Column('access_list_ips', sa.JSON(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('api_key_id')
    )
    with op.batch_alter_table('link_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_tokens_org_id'), ['org_id'], unique=False)

    op.create_table('target_links',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('target_org_id', sa.String(length=24), nullable=False),
    sa.Column('source_org_id', sa.String(length=24), nullable=False),
    sa.Column('link_token_id', sa.String(length=24), nullable=False),
    sa.Column('inventory', sa.JSON(), nullable=False),
    sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_synced_at', UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['link_token_id'], ['link_tokens.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_org_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('target_org_id', 'source_org_id')
    )
    with op.batch_alter_table('target_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_target_links_link_token_id'), ['link_token_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_target_links_target_org_id'), ['target_org_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('target_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_target_links_target_org_id'))
        batch_op.drop_index(batch_op.f('ix_target_links_link_token_id'))

    op.drop_table('target_links')
    with op.batch_alter_table('link_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_tokens_org_id'))

    op.drop_table('link_tokens')
    op.drop_table('api_key_access_list')
    op.drop_table('source_links')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projects_org_id'))

    op.drop_table('projects')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_org_id'))

    op.drop_table('api_keys')
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organizations_side'))

    op.drop_table('organizations')
