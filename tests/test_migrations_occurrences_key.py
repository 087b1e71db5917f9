"""The revision that puts period first in the occurrences key, on a database that has rows."""

from collections.abc import AsyncIterator

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from bot.core.db import Database, alembic_config
from tests.conftest import DATABASE_KINDS, drop_postgres_schema, make_postgres_database

REVISION = "7ccdee07dee8"  # occurrences unique key (period, task_key, unit_id)
PREVIOUS = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION).down_revision

SEED = [
    "INSERT INTO units (id, code, name, level, is_sample) VALUES"
    " (1, 'V1', 'Thôn 1', 'village', false), (2, 'C1', 'Xã 1', 'commune', false)",
    "INSERT INTO users (id, name, role, unit_id, locale, active, created_at) VALUES"
    " (1, 'A', 'village_head', 1, 'vi', true, CURRENT_TIMESTAMP)",
    "INSERT INTO task_definitions (key, dimension, sub_dimension, title, schedule, roles,"
    " evidence, supervisor, record, active, content_hash) VALUES"
    " ('t1', 'd', '', 'Task', 'monthly', '[]', '', '', '{}', true, '')",
    "INSERT INTO occurrences (id, task_key, unit_id, period, window_start, due_at, status,"
    " note, created_at, updated_at) VALUES"
    " (1, 't1', 1, '2026-01', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'open', '',"
    "  CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),"
    " (2, 't1', 2, '2026-01', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'done', 'x',"
    "  CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),"
    " (3, 't1', 1, '2026-02', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'open', '',"
    "  CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "INSERT INTO reminders (id, occurrence_id, stage, user_ids, outcome, created_at) VALUES"
    " (1, 1, 'due', '[1]', 'sent', CURRENT_TIMESTAMP),"
    " (2, 3, 'before-1', '[1]', 'sent', CURRENT_TIMESTAMP)",
    "INSERT INTO escalations (id, occurrence_id, step, target_unit_id, reason,"
    " notified_user_ids, created_at) VALUES"
    " (1, 1, 'commune', 2, 'overdue', '[]', CURRENT_TIMESTAMP)",
    "INSERT INTO reports (id, occurrence_id, user_id, kind, status, note, created_at) VALUES"
    " (1, 2, 1, 'done', 'submitted', '', CURRENT_TIMESTAMP)",
]
TABLES = ("occurrences", "reminders", "escalations", "reports")


@pytest.fixture(params=DATABASE_KINDS)
async def empty_db(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        yield database
        await database.dispose()
        return
    database = await make_postgres_database("t_migration_occurrences_key")
    try:
        yield database
    finally:
        await database.dispose()
        await drop_postgres_schema("t_migration_occurrences_key")


async def _migrate(db: Database, revision: str, *, down: bool = False) -> None:
    move = command.downgrade if down else command.upgrade
    async with db.engine.begin() as connection:
        await connection.run_sync(lambda sync: move(alembic_config(sync), revision))


async def _rows(db: Database) -> dict[str, list]:
    async with db.engine.connect() as connection:
        return {
            table: (await connection.execute(text(f"SELECT * FROM {table} ORDER BY id"))).all()
            for table in TABLES
        }


async def _shape(db: Database) -> dict[str, set]:
    """Index names per table, and the occurrences table's unique constraints (column lists)."""

    def read(sync) -> dict[str, set]:  # noqa: ANN001
        found = inspect(sync)
        shape = {t: {i["name"] for i in found.get_indexes(t)} for t in TABLES[:3]}
        shape["occurrences_unique"] = {
            tuple(u["column_names"]) for u in found.get_unique_constraints("occurrences")
        }
        return shape

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def _rejects(db: Database, statement: str) -> bool:
    try:
        async with db.engine.begin() as connection:
            await connection.execute(text(statement))
    except IntegrityError:
        return True
    return False


DUPLICATE = (
    "INSERT INTO occurrences (id, task_key, unit_id, period, window_start, due_at, status,"
    " note, created_at, updated_at) VALUES (99, 't1', 1, '2026-01', CURRENT_TIMESTAMP,"
    " CURRENT_TIMESTAMP, 'open', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
)
ORPHAN_REMINDER = (
    "INSERT INTO reminders (id, occurrence_id, stage, outcome, created_at)"
    " VALUES (99, 999, 'due', 'sent', CURRENT_TIMESTAMP)"
)


async def test_the_new_key_keeps_the_rows_and_still_rejects_a_duplicate(empty_db):
    db = empty_db
    await _migrate(db, PREVIOUS)
    async with db.engine.begin() as connection:
        for statement in SEED:
            await connection.execute(text(statement))
    before = await _rows(db)

    await _migrate(db, REVISION)  # this revision: later ones may add columns
    assert await _rows(db) == before
    shape = await _shape(db)
    assert shape["occurrences"] == {
        "uq_occurrences_period_task_unit",
        "ix_occurrences_status_due",
        "ix_occurrences_unit_id",
    }
    assert shape["occurrences_unique"] == set()
    assert "ix_reminders_occurrence_id" not in shape["reminders"]
    assert "ix_escalations_occurrence_id" not in shape["escalations"]
    assert await _rejects(db, DUPLICATE)
    # The children still point at the rebuilt table, and foreign keys are still enforced.
    assert await _rejects(db, ORPHAN_REMINDER)
    async with db.engine.begin() as connection:  # the planner's ON CONFLICT finds the new key
        inserted = await connection.execute(
            text(
                DUPLICATE.replace("(99, 't1', 1, '2026-01'", "(98, 't1', 2, '2026-01'")
                + " ON CONFLICT (task_key, unit_id, period) DO NOTHING"
            )
        )
        assert inserted.rowcount == 0

    await _migrate(db, PREVIOUS, down=True)
    assert await _rows(db) == before
    shape = await _shape(db)
    assert shape["occurrences_unique"] == {("task_key", "unit_id", "period")}
    assert "uq_occurrences_period_task_unit" not in shape["occurrences"]
    assert "ix_occurrences_period_task" in shape["occurrences"]
    assert "ix_reminders_occurrence_id" in shape["reminders"]
    assert "ix_escalations_occurrence_id" in shape["escalations"]
    assert await _rejects(db, DUPLICATE)
    assert await _rejects(db, ORPHAN_REMINDER)
