"""perf: priority lanes in the outbox

The sender drains the reply to the person who is talking before news for other people, before
reminders, before digests (bot/channels/sender.py). Rows queued before this revision get their
lane from their key, as new rows do (bot/core/services/outbox.py: lane_for).

Revision ID: perf_lanes_0001
Revises: reach0a1b2c3d
Create Date: 2026-12-01 10:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "perf_lanes_0001"
down_revision = "reach0a1b2c3d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lane", sa.Integer(), nullable=False, server_default="1"))
    op.execute(
        "UPDATE outbox SET lane = CASE"
        " WHEN idempotency_key LIKE 'reply:%' THEN 0"
        " WHEN idempotency_key LIKE 'remind:%' OR chain_key IS NOT NULL THEN 2"
        " WHEN idempotency_key LIKE 'digest:%' OR idempotency_key LIKE 'evidence:%' THEN 3"
        " ELSE 1 END"
    )
    op.create_index("ix_outbox_status_lane", "outbox", ["status", "lane", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_status_lane", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lane")
