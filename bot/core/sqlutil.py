"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Integer, Table, any_, bindparam, func, select, text, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession


def dialect_name(session: AsyncSession) -> str:
    return session.bind.dialect.name  # type: ignore[union-attr]


# Rows per INSERT in insert_new: rows × columns stays far below the 32,767 bound parameters a
# PostgreSQL or SQLite statement may carry.
INSERT_CHUNK = 500


async def insert_new(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], unique: Sequence[str]
) -> set[tuple]:
    """INSERT … ON CONFLICT (unique) DO NOTHING for many rows, in multi-row VALUES of
    INSERT_CHUNK rows; returns the `unique` values (tuples) of the rows really inserted, so a
    caller knows which ones it owns when a concurrent worker inserted the others."""
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    added: set[tuple] = set()
    for start in range(0, len(rows), INSERT_CHUNK):
        statement = (
            insert(table)
            .values(list(rows[start : start + INSERT_CHUNK]))
            .on_conflict_do_nothing(index_elements=list(unique))
            .returning(*(table.c[name] for name in unique))
        )
        added.update(tuple(row) for row in (await session.exec(statement)).all())
    return added


async def insert_ignore(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], unique: Sequence[str]
) -> int:
    """INSERT … ON CONFLICT (unique) DO NOTHING for many rows; returns how many were new."""
    return len(await insert_new(session, table, rows, unique))


async def insert_ignore_for_ids(
    session: AsyncSession,
    table: Table,
    id_column: str,
    ids: Sequence[int],
    values: Mapping[str, Any],
    unique: Sequence[str],
    *,
    lock_parent: Table | None = None,
) -> int:
    """One row per id in `ids` (column `id_column`), every other column from `values`:
    INSERT … SELECT … ON CONFLICT (unique) DO NOTHING; returns how many rows were new.

    The ids travel as one parameter (PostgreSQL: an integer array; SQLite: a JSON array through
    json_each()), so a hundred thousand rows cost one statement and no Python object per row;
    `values` are bound once, through their columns' types.

    `lock_parent` (PostgreSQL): the table `id_column` references. The ids are then read from it
    with FOR KEY SHARE, the lock a foreign-key check takes, so only existing parents are used
    and none can be deleted before commit: the statement itself does what the per-row check
    does, which `foreign_key_triggers_off` can then skip.
    """
    if not ids:
        return 0
    postgres = dialect_name(session) == "postgresql"
    value_columns = [
        bindparam(f"v_{name}", value, type_=table.c[name].type) for name, value in values.items()
    ]
    if postgres and lock_parent is not None:
        wanted = bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer))
        rows = (
            select(lock_parent.c.id, *value_columns)
            .where(lock_parent.c.id == any_(wanted))
            .with_for_update(read=True, key_share=True, of=lock_parent)
        )
    else:
        if postgres:
            parameter = bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer))
            source = func.unnest(parameter).table_valued("value").render_derived()
        else:
            source = func.json_each(bindparam("ids", json.dumps(list(ids)))).table_valued("value")
        # WHERE true: SQLite needs it to tell ON CONFLICT from a join constraint after FROM.
        rows = select(source.c.value, *value_columns).select_from(source).where(true())
    insert = postgresql.insert if postgres else sqlite.insert
    statement = (
        insert(table)
        .from_select([id_column, *values], rows, include_defaults=False)
        .on_conflict_do_nothing(index_elements=list(unique))
    )
    result = await session.exec(statement)
    return max(result.rowcount, 0)


async def may_turn_off_foreign_key_triggers(session: AsyncSession) -> bool:
    """Whether this PostgreSQL login may set `session_replication_role` (a superuser, or
    `GRANT SET ON PARAMETER session_replication_role TO …` on PostgreSQL 15 and later)."""
    if dialect_name(session) != "postgresql":
        return False
    found = await session.exec(
        text(
            "SELECT rolsuper OR (current_setting('server_version_num')::int >= 150000"
            " AND has_parameter_privilege('session_replication_role', 'SET'))"
            " FROM pg_roles WHERE rolname = current_user"
        )
    )
    return bool(found.scalar())


@asynccontextmanager
async def foreign_key_triggers_off(session: AsyncSession, allowed: bool) -> AsyncIterator[None]:
    """PostgreSQL checks each inserted row's foreign keys with a query of its own, half the
    cost of a bulk insert. Inside this block (when `allowed`, see above) those per-row checks
    are off for this transaction only; the statements run in it must guarantee their rows'
    parents themselves (`insert_ignore_for_ids(…, lock_parent=…)`). It is back on after."""
    if not allowed:
        yield
        return
    await session.exec(text("SELECT set_config('session_replication_role', 'replica', true)"))
    try:
        yield
    finally:
        await session.exec(text("SELECT set_config('session_replication_role', 'origin', true)"))


def for_update_skip_locked(session: AsyncSession, statement: Any) -> Any:
    """Claim rows so concurrent workers never take the same ones (PostgreSQL only).

    SQLite runs one worker and serialises writers, so the clause is simply left out there.
    """
    if dialect_name(session) == "postgresql":
        return statement.with_for_update(skip_locked=True)
    return statement
