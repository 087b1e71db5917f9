"""The migrations build exactly the schema the models describe, and `init` can run twice."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from bot.core.db import Database
from tests.conftest import POSTGRES_URL, drop_postgres_schema, make_postgres_database


def _differences(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, SQLModel.metadata)


async def test_migrations_match_the_models_on_sqlite(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await db.upgrade()
    await db.upgrade()  # a second upgrade is a no-op
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
    await db.dispose()


async def test_migrations_match_the_models_on_postgres():
    if not POSTGRES_URL:
        import pytest

        pytest.skip("PAPIBOT_TEST_DATABASE_URL is not set: no PostgreSQL to migrate")
    db = await make_postgres_database("t_migrations")
    try:
        await db.upgrade()
        await db.upgrade()
        async with db.engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await db.dispose()
        await drop_postgres_schema("t_migrations")
