"""dashboard: one-time login links sent in chat, browser sessions (hashes only), and an
index that answers a period's counts without reading the occurrences table

Revision ID: d4sh0b0a4d01
Revises: rec_b_user_phone
Create Date: 2026-12-01 08:58:54.835103
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'd4sh0b0a4d01'
down_revision = 'rec_b_user_phone'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('web_login_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('web_login_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_login_links_user_id'), ['user_id'], unique=False)

    op.create_table('web_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('ended_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('ended_reason', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_user_id'), ['user_id'], unique=False)

    op.create_index(
        "ix_occurrences_due_cover", "occurrences", ["due_at", "unit_id", "task_key", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_occurrences_due_cover", table_name="occurrences")
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_sessions_user_id'))

    op.drop_table('web_sessions')
    with op.batch_alter_table('web_login_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_login_links_user_id'))

    op.drop_table('web_login_links')
