"""Engine and sessions: SQLite (WAL, foreign keys) by default, PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.config import Settings
from bot.core.sqlite_driver import one_hop_dbapi
from bot.core.writer_turns import WriterTurns

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str, **kwargs) -> AsyncEngine:  # noqa: ANN003
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if "+aiosqlite" in url:
            kwargs.setdefault("module", one_hop_dbapi())
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    if "+asyncpg" in url:
        kwargs["connect_args"] = _without_jit(kwargs.get("connect_args") or {})
    return create_async_engine(url, **kwargs)


def _without_jit(connect_args: dict) -> dict:
    """PostgreSQL's JIT compiles the sweep's claim every minute (its estimated cost passes
    `jit_above_cost`) and takes longer doing so than the query runs; short OLTP queries gain
    nothing from it. A caller's own server_settings are kept (and win)."""
    server_settings = {"jit": "off", **connect_args.get("server_settings", {})}
    return {**connect_args, "server_settings": server_settings}


class Database:
    """The engine plus a session factory; one per process, passed to whoever needs it."""

    def __init__(self, url: str, **engine_kwargs) -> None:  # noqa: ANN003
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._writer: WriterTurns | None = None
        self._writer_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(settings.effective_database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def writer(self, first: bool = False) -> contextlib.AbstractAsyncContextManager:
        """Hold this around a write transaction that must not wait in SQLite's busy handler.

        SQLite lets one writer in at a time; the others sleep and retry (up to 100 ms between
        tries, "database is locked" after busy_timeout), which turns a burst into long waits.
        Queued here instead, this process's writers (the inbox, the handlers, the sender, the
        sweep) go in turn, in order; `first` (recording a webhook's update, which a platform
        waits for) goes before those already waiting (bot/core/writer_turns.py). PostgreSQL:
        nothing to hold."""
        if not self.is_sqlite:
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer_loop is not loop:
            self._writer, self._writer_loop = WriterTurns(), loop
        return self._writer.turn(first)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def upgrade(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
