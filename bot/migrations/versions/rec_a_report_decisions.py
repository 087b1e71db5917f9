"""reports: decision reason and time, report on behalf, the commune's review of evidence

Revision ID: rec_a_0001
Revises: d4sh0b0a4d01
Create Date: 2026-12-01 09:10:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "rec_a_0001"
down_revision = "d4sh0b0a4d01"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("decision_note", TEXT(length=2000), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("on_behalf_of_user_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("review_status", TEXT(length=16), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("reviewed_by_user_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reviewed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("review_note", TEXT(length=2000), nullable=False, server_default="")
        )
        batch.create_foreign_key(
            "fk_reports_on_behalf_of_user_id", "users", ["on_behalf_of_user_id"], ["id"]
        )
        batch.create_foreign_key(
            "fk_reports_reviewed_by_user_id", "users", ["reviewed_by_user_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_constraint("fk_reports_reviewed_by_user_id", type_="foreignkey")
        batch.drop_constraint("fk_reports_on_behalf_of_user_id", type_="foreignkey")
        for name in (
            "review_note",
            "reviewed_at",
            "reviewed_by_user_id",
            "review_status",
            "on_behalf_of_user_id",
            "decision_note",
            "decided_at",
        ):
            batch.drop_column(name)
