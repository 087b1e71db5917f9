"""inbox: inbound updates are recorded first and handled by a worker

Revision ID: 7c1e5a9d2b40
Revises: 425434154573
Create Date: 2026-11-27 19:40:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "7c1e5a9d2b40"
down_revision = "425434154573"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_updates") as batch:
        batch.add_column(sa.Column("handled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("payload", sa.Text(), nullable=True))
    # Every update recorded so far was handled in the transaction that recorded it.
    op.execute("UPDATE inbound_updates SET handled_at = received_at")
    op.create_index(
        "ix_inbound_updates_pending",
        "inbound_updates",
        ["id"],
        sqlite_where=sa.text("handled_at IS NULL"),
        postgresql_where=sa.text("handled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_updates_pending", table_name="inbound_updates")
    with op.batch_alter_table("inbound_updates") as batch:
        batch.drop_column("payload")
        batch.drop_column("handled_at")
