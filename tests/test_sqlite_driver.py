"""SQLite's statements go to aiosqlite's thread once each (bot/core/sqlite_driver.py), and the
database behaves as before: rows, row counts, errors, transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.core.db import Database
from bot.core.sqlite_driver import OneHopConnection


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with database.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield database
    await database.dispose()


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call that aiosqlite runs in its thread, by name."""
    calls: list[str] = []
    execute = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_a_statement_is_one_hand_off_and_an_idle_rollback_none(
    sqlite: Database, hand_offs: list[str]
) -> None:
    async with sqlite.session() as session:
        await session.exec(text("SELECT 1"))  # type: ignore[call-overload]  (opens the pool)
    hand_offs.clear()
    async with sqlite.session() as session:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        assert isinstance(raw.dbapi_connection, OneHopConnection)
        rows = (await session.exec(text("SELECT 1 UNION ALL SELECT 2"))).all()  # type: ignore[call-overload]
    assert [tuple(row) for row in rows] == [(1,), (2,)]
    # One statement, then the session's end and the pool's reset: no transaction, no rollback.
    assert hand_offs == ["_run"], hand_offs

    hand_offs.clear()
    async with sqlite.session() as session:
        result = await session.exec(  # type: ignore[call-overload]
            text("INSERT INTO t (name) VALUES ('a'), ('b')")
        )
        assert result.rowcount == 2
        await session.commit()
    assert hand_offs == ["_run", "commit"], hand_offs


async def test_rows_counts_errors_and_rollbacks_as_sqlite_gives_them(sqlite: Database) -> None:
    async with sqlite.session() as session:
        await session.exec(  # type: ignore[call-overload]
            text("INSERT INTO t (name) VALUES (:name)"), params=[{"name": "x"}, {"name": "y"}]
        )
        returned = await session.exec(  # type: ignore[call-overload]
            text("INSERT INTO t (name) VALUES ('z') RETURNING id, name")
        )
        assert [tuple(row) for row in returned.all()] == [(3, "z")]
        updated = await session.exec(text("UPDATE t SET name = name || '!' WHERE id < 3"))  # type: ignore[call-overload]
        assert updated.rowcount == 2
        await session.commit()

    async with sqlite.session() as session:
        await session.exec(text("INSERT INTO t (name) VALUES ('gone')"))  # type: ignore[call-overload]
        with pytest.raises(IntegrityError):
            await session.exec(text("INSERT INTO t (name) VALUES ('z')"))  # type: ignore[call-overload]
        await session.rollback()

    async with sqlite.session() as session:
        names = (await session.exec(text("SELECT name FROM t ORDER BY id"))).scalars().all()  # type: ignore[call-overload]
    assert names == ["x!", "y!", "z"]  # the rolled-back insert is not there
