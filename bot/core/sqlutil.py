"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, Table, bindparam, func, select, true
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
) -> int:
    """One row per id in `ids` (column `id_column`), every other column from `values`:
    INSERT … SELECT … ON CONFLICT (unique) DO NOTHING; returns how many rows were new.

    The ids travel as one parameter (PostgreSQL: an integer array through unnest(); SQLite: a
    JSON array through json_each()), so a hundred thousand rows cost one statement and no
    Python object per row; `values` are bound once, through their columns' types.
    """
    return await _insert_for_ids(session, table, id_column, ids, values, unique)


async def insert_for_ids(
    session: AsyncSession,
    table: Table,
    id_column: str,
    ids: Sequence[int],
    values: Mapping[str, Any],
) -> int:
    """insert_ignore_for_ids without ON CONFLICT, for rows known to be new: PostgreSQL then
    skips the speculative insertion (a unique-index probe and an extra WAL record per row, near
    half of the insert's own time). A row that exists after all raises IntegrityError."""
    return await _insert_for_ids(session, table, id_column, ids, values, None)


async def _insert_for_ids(
    session: AsyncSession,
    table: Table,
    id_column: str,
    ids: Sequence[int],
    values: Mapping[str, Any],
    unique: Sequence[str] | None,
) -> int:
    if not ids:
        return 0
    if dialect_name(session) == "postgresql":
        insert = postgresql.insert
        parameter = bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer))
        source = func.unnest(parameter).table_valued("value").render_derived()
    else:
        insert = sqlite.insert
        source = func.json_each(bindparam("ids", json.dumps(list(ids)))).table_valued("value")
    columns = [id_column, *values]
    rows = select(
        source.c.value,
        *(
            bindparam(f"v_{name}", value, type_=table.c[name].type)
            for name, value in values.items()
        ),
    ).select_from(source)
    # WHERE true: SQLite needs it to tell ON CONFLICT from a join constraint after SELECT … FROM.
    statement = insert(table).from_select(columns, rows.where(true()), include_defaults=False)
    if unique is not None:
        statement = statement.on_conflict_do_nothing(index_elements=list(unique))
    result = await session.exec(statement)
    return max(result.rowcount, 0)


def for_update_skip_locked(session: AsyncSession, statement: Any) -> Any:
    """Claim rows so concurrent workers never take the same ones (PostgreSQL only).

    SQLite runs one worker and serialises writers, so the clause is simply left out there.
    """
    if dialect_name(session) == "postgresql":
        return statement.with_for_update(skip_locked=True)
    return statement
