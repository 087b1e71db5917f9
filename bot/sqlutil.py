"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession


def dialect_name(session: AsyncSession) -> str:
    return session.bind.dialect.name  # type: ignore[union-attr]


async def insert_ignore(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], unique: Sequence[str]
) -> int:
    """INSERT … ON CONFLICT (unique) DO NOTHING for many rows; returns how many were new.

    One statement executed with many parameter sets: SQLAlchemy batches it into multi-row
    VALUES ("insertmanyvalues"), and RETURNING counts the rows that were really inserted.
    """
    if not rows:
        return 0
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=list(unique))
        .returning(table.c[unique[0]])
    )
    result = await session.exec(statement, params=list(rows))
    return len(result.all())


def for_update_skip_locked(session: AsyncSession, statement: Any) -> Any:
    """Claim rows so concurrent workers never take the same ones (PostgreSQL only).

    SQLite runs one worker and serialises writers, so the clause is simply left out there.
    """
    if dialect_name(session) == "postgresql":
        return statement.with_for_update(skip_locked=True)
    return statement
