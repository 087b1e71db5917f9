"""users.phone: the mobile number a person shares at registration (normalised 84xxxxxxxxx)

A plain ADD/DROP COLUMN (SQLite has both since 3.35): rebuilding `users` in batch mode would
drop a table that every other table points at.

Revision ID: rec_b_user_phone
Revises: e4c37c0617dd
Create Date: 2026-12-01 09:40:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "rec_b_user_phone"
down_revision = "e4c37c0617dd"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("users", "phone")
