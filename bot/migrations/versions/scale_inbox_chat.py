"""scale: the inbox knows each update's chat

Several workers on PostgreSQL share the inbox and keep each chat's order: an update is handled
only when no earlier update of its chat waits (bot/core/inbox.py). Rows still waiting at the
upgrade get their chat from their stored payload.

Revision ID: scale_inbox_chat_0001
Revises: edit_cards_0001
Create Date: 2026-12-01 12:20:00
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "scale_inbox_chat_0001"
down_revision = "edit_cards_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_updates") as batch:
        batch.add_column(sa.Column("chat_key", sa.String(length=96), nullable=True))
    connection = op.get_bind()
    waiting = connection.execute(
        sa.text("SELECT id, channel, payload FROM inbound_updates WHERE handled_at IS NULL")
    ).all()
    for row_id, channel, payload in waiting:
        try:
            external_id = json.loads(payload or "")["external_id"]
        except (ValueError, TypeError, KeyError):
            continue  # unreadable: the inbox drops it anyway
        connection.execute(
            sa.text("UPDATE inbound_updates SET chat_key = :chat WHERE id = :id"),
            {"chat": f"{channel}:{external_id}"[:96], "id": row_id},
        )
    op.create_index(
        "ix_inbound_updates_chat_pending",
        "inbound_updates",
        ["chat_key", "id"],
        sqlite_where=sa.text("handled_at IS NULL"),
        postgresql_where=sa.text("handled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_updates_chat_pending", table_name="inbound_updates")
    with op.batch_alter_table("inbound_updates") as batch:
        batch.drop_column("chat_key")
