"""reach: delivery status and failure reasons on the outbox, reach chains, users' phone numbers

An outbox row now says whether the platform delivered or showed the message, and why it failed;
a reminder links to the chains of its messages and is "queued" until one of them was accepted.
Reminders recorded before this revision were counted as sent when queued; they stay as they are.

Revision ID: reach0a1b2c3d
Revises: rec_a_0001
Create Date: 2026-12-01 09:20:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "reach0a1b2c3d"
down_revision = "rec_a_0001"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # users.phone comes with rec_b_user_phone (registration asks for it).
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("failure", TEXT(length=16), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("chain_key", TEXT(length=120), nullable=True))
        batch.add_column(sa.Column("delivered_at", MOMENT(), nullable=True))
        batch.add_column(sa.Column("seen_at", MOMENT(), nullable=True))
    op.create_index("ix_outbox_platform_message", "outbox", ["platform_message_id"])
    with op.batch_alter_table("reminders") as batch:
        batch.add_column(sa.Column("chain_keys", sa.JSON(), nullable=True))
    op.create_table(
        "reach_chains",
        sa.Column("key", TEXT(length=120), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", TEXT(length=16), nullable=False),
        sa.Column("status", TEXT(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("channel", TEXT(length=16), nullable=False),
        sa.Column("outbox_key", TEXT(length=120), nullable=False),
        sa.Column("reason", TEXT(length=16), nullable=False),
        sa.Column("awaiting_since", MOMENT(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("reminders", sa.JSON(), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=True),
        sa.Column("created_at", MOMENT(), nullable=False),
        sa.Column("updated_at", MOMENT(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_reach_chains_user_id", "reach_chains", ["user_id"])
    op.create_index("ix_reach_chains_status_since", "reach_chains", ["status", "awaiting_since"])


def downgrade() -> None:
    op.drop_index("ix_reach_chains_status_since", table_name="reach_chains")
    op.drop_index("ix_reach_chains_user_id", table_name="reach_chains")
    op.drop_table("reach_chains")
    with op.batch_alter_table("reminders") as batch:
        batch.drop_column("chain_keys")
    op.drop_index("ix_outbox_platform_message", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("seen_at")
        batch.drop_column("delivered_at")
        batch.drop_column("chain_key")
        batch.drop_column("failure")

