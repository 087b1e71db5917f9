"""occurrences: unique key (period, task_key, unit_id); drop indexes that duplicate others

The planner adds a new period for every unit at once. Under the old key (task_key, unit_id,
period) each of those rows went into the middle of its unit's history, dirtying nearly every
leaf page; period first, they go together at the end of their (period, task). The new key's
(period, task_key) prefix serves the planner's count, so ix_occurrences_period_task goes, and
the unique (occurrence_id, stage|step) indexes already serve lookups by occurrence_id.

SQLite cannot drop a table's UNIQUE constraint: there the table is rebuilt, and the new key is
a separate unique index so that it can change in place next time.

Revision ID: 7ccdee07dee8
Revises: 7c1e5a9d2b40
Create Date: 2026-11-27 19:03:05.236143
"""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "7ccdee07dee8"
down_revision = "7c1e5a9d2b40"
branch_labels = None
depends_on = None

OLD_KEY = ["task_key", "unit_id", "period"]
NEW_KEY = ["period", "task_key", "unit_id"]
POSTGRES_OLD_KEY_NAME = "occurrences_task_key_unit_id_period_key"  # PostgreSQL's default name


def upgrade() -> None:
    with _one_transaction_on_sqlite() as sqlite:
        if sqlite:
            _rebuild_occurrences_on_sqlite(unique_key=None)
        else:
            op.drop_constraint(POSTGRES_OLD_KEY_NAME, "occurrences", type_="unique")
            op.drop_index("ix_occurrences_period_task", table_name="occurrences")
        op.create_index("uq_occurrences_period_task_unit", "occurrences", NEW_KEY, unique=True)
        op.drop_index("ix_reminders_occurrence_id", table_name="reminders")
        op.drop_index("ix_escalations_occurrence_id", table_name="escalations")


def downgrade() -> None:
    with _one_transaction_on_sqlite() as sqlite:
        op.create_index("ix_escalations_occurrence_id", "escalations", ["occurrence_id"])
        op.create_index("ix_reminders_occurrence_id", "reminders", ["occurrence_id"])
        if sqlite:
            _rebuild_occurrences_on_sqlite(unique_key=sa.UniqueConstraint(*OLD_KEY))
        else:
            op.drop_index("uq_occurrences_period_task_unit", table_name="occurrences")
            op.create_unique_constraint(POSTGRES_OLD_KEY_NAME, "occurrences", OLD_KEY)
        op.create_index("ix_occurrences_period_task", "occurrences", ["period", "task_key"])


@contextmanager
def _one_transaction_on_sqlite() -> Iterator[bool]:
    """Yields whether the database is SQLite, and there runs the block in a savepoint.

    The SQLite driver opens a transaction only before DML, so without it each DDL statement
    would commit alone (a failure half-way would leave the table without its indexes), and the
    deferred foreign keys of the rebuild need a transaction to be deferred to. Inside an
    enclosing transaction the savepoint simply nests. On failure the caller's rollback undoes it.
    """
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("SAVEPOINT occurrences_key")
    yield sqlite
    if sqlite:
        op.execute("RELEASE occurrences_key")


def _columns() -> list[sa.Column]:
    """The columns of occurrences as this revision knows them (not as the models may later)."""
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("window_start", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("due_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("done_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("done_by_user_id", sa.Integer(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    ]


def _rebuild_occurrences_on_sqlite(unique_key: sa.UniqueConstraint | None) -> None:
    """Recreate occurrences (same rows and ids) with `unique_key` as its only table constraint
    besides the keys, then its two indexes that never change here.

    reminders, escalations and reports keep pointing at it with foreign keys enforced, only
    deferred: dropping the table counts their rows as orphans, copying the rows back into the
    new table counts them found again, and the commit fails unless none is left. Hence two
    copies (alembic's batch mode renames one copy into place, which SQLite refuses here).
    """
    names = ", ".join(column.name for column in _columns())
    op.execute("PRAGMA defer_foreign_keys = ON")  # until the end of the transaction
    # Indexes dropped first: the DROP TABLE below deletes row by row, index entries included.
    for index in (
        "ix_occurrences_period_task",
        "ix_occurrences_status_due",
        "ix_occurrences_unit_id",
        "uq_occurrences_period_task_unit",
    ):
        op.execute(f"DROP INDEX IF EXISTS {index}")
    op.create_table("_occurrences_copy", *_columns())
    op.execute(f"INSERT INTO _occurrences_copy ({names}) SELECT {names} FROM occurrences")
    op.drop_table("occurrences")
    constraints: list[sa.Constraint] = [
        sa.ForeignKeyConstraint(["done_by_user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"]),
        sa.ForeignKeyConstraint(["task_key"], ["task_definitions.key"]),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"]),
        sa.PrimaryKeyConstraint("id"),
    ]
    if unique_key is not None:
        constraints.append(unique_key)
    op.create_table("occurrences", *_columns(), *constraints)
    op.execute(f"INSERT INTO occurrences ({names}) SELECT {names} FROM _occurrences_copy")
    op.drop_table("_occurrences_copy")
    op.create_index("ix_occurrences_status_due", "occurrences", ["status", "due_at"])
    op.create_index("ix_occurrences_unit_id", "occurrences", ["unit_id"])
