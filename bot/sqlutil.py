"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

# PostgreSQL caps bind parameters at 32,767 per statement; SQLite (3.32+) at 32,766.
MAX_PARAMS = 30_000


def dialect_name(session: AsyncSession) -> str:
    return session.bind.dialect.name  # type: ignore[union-attr]


async def insert_ignore(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], unique: Sequence[str]
) -> int:
    """INSERT … ON CONFLICT (unique) DO NOTHING in chunks; returns how many rows were new."""
    if not rows:
        return 0
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    per_row = max(len(rows[0]), 1)
    chunk = max(MAX_PARAMS // per_row, 1)
    inserted = 0
    for start in range(0, len(rows), chunk):
        statement = insert(table).values(list(rows[start : start + chunk]))
        statement = statement.on_conflict_do_nothing(index_elements=list(unique))
        result = await session.execute(statement)
        inserted += max(result.rowcount or 0, 0)
    return inserted


def for_update_skip_locked(session: AsyncSession, statement: Any) -> Any:
    """Claim rows so concurrent workers never take the same ones (PostgreSQL only).

    SQLite runs one worker and serialises writers, so the clause is simply left out there.
    """
    if dialect_name(session) == "postgresql":
        return statement.with_for_update(skip_locked=True)
    return statement
