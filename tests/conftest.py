"""Shared fixtures: a real database (SQLite always, PostgreSQL when configured), settings, data.

Set PAPIBOT_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test to run every
database test on PostgreSQL as well; each test then gets a schema of its own.

A test (or fixture) that takes `structure` runs under both administrative structures: the
2022 three-tier tree and the 2025 two-tier one (no districts); `settings.structure` is set and
`structure_framework` is the framework as it runs there. A test that holds only for one says
so with `@structure_independent` (tests/helpers/world.py): its mechanics do not depend on the
tree (transport, redelivery), so the suite keeps its time.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

import bot.core.models  # noqa: F401  (registers the tables)
from bot.core.config import DEFAULT_FRAMEWORK_DIR, Settings
from bot.core.db import Database
from bot.core.framework import Framework
from tests.helpers.world import framework_for

# The tests' "today" is the day a village head sees, as the product's is (settings.tz): between
# 17:00 and 24:00 UTC it is already tomorrow in Vietnam, and a test that said `date.today()` on
# a UTC machine expected yesterday's dates. Children (`papibot run` drills) inherit it.
os.environ["TZ"] = "Asia/Ho_Chi_Minh"
time.tzset()

POSTGRES_URL = os.environ.get("PAPIBOT_TEST_DATABASE_URL", "")
SAMPLE_UNITS_CSV = DEFAULT_FRAMEWORK_DIR / "units" / "khanh-hoa-2022.csv"

DATABASE_KINDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])
STRUCTURES = ["three_tier", "two_tier"]


@pytest.fixture(scope="session")
def framework() -> Framework:
    return framework_for("three_tier")


@pytest.fixture(params=STRUCTURES)
def structure(request: pytest.FixtureRequest, settings: Settings) -> str:
    """Each structure in turn, set in `settings` (PAPIBOT_STRUCTURE)."""
    settings.structure = request.param
    return request.param


@pytest.fixture
def structure_framework(structure: str) -> Framework:
    return framework_for(structure)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'papibot.db'}",
        secret_key="test-secret",
    )


async def make_postgres_database(schema: str) -> Database:
    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    return Database(
        POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}}, pool_size=5
    )


async def drop_postgres_schema(schema: str) -> None:
    admin = Database(POSTGRES_URL)
    async with admin.engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await admin.dispose()


@pytest.fixture(params=DATABASE_KINDS)
async def db(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Database]:
    """An empty database with the current schema, on each configured engine."""
    if request.param == "sqlite":
        database = Database(settings.effective_database_url)
        async with database.engine.begin() as connection:
            await connection.run_sync(SQLModel.metadata.create_all)
        yield database
        await database.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    database = await make_postgres_database(schema)
    async with database.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    yield database
    await database.dispose()
    await drop_postgres_schema(schema)
