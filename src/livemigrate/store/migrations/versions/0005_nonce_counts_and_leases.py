"""what replicas share: digest nonce counts, and the leases of the background loops

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('digest_nonce_counts',
                    sa.Column('nonce', sa.String(length=64), nullable=False),
                    sa.Column('nonce_count', sa.BigInteger(), nullable=False),
                    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('nonce', 'nonce_count'))
    with op.batch_alter_table('digest_nonce_counts', schema=None) as batch_op:
        batch_op.create_index('ix_digest_nonce_counts_expires_at', ['expires_at'], unique=False)
    op.create_table('leases',
                    sa.Column('name', sa.String(length=64), nullable=False),
                    sa.Column('holder', sa.String(length=64), nullable=False),
                    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('name'))


def downgrade() -> None:
    op.drop_table('leases')
    with op.batch_alter_table('digest_nonce_counts', schema=None) as batch_op:
        batch_op.drop_index('ix_digest_nonce_counts_expires_at')
    op.drop_table('digest_nonce_counts')
