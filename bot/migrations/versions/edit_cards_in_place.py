"""edit cards in place: the outbox row of a replaced card

A reply can replace the card whose button was tapped (Telegram editMessageText, the simulator)
instead of arriving as a new message: `edit_of` is the platform message it edits, `edit_result`
what happened (edited | unchanged | resent, when the card was gone and a new message went).
Rows queued before this revision are new messages (empty in both).

Revision ID: edit_cards_0001
Revises: perf_lanes_0001
Create Date: 2026-12-01 12:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "edit_cards_0001"
down_revision = "perf_lanes_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("edit_of", sa.String(length=64), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("edit_result", sa.String(length=16), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("edit_result")
        batch.drop_column("edit_of")
