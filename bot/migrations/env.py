"""Alembic environment: runs on the connection handed over by bot.core.db (sync inside run_sync)."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import bot.core.models  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # `alembic revision --autogenerate` from the command line
        url = config.get_main_option("sqlalchemy.url")
        engine = create_engine(url)
        with engine.connect() as connection:
            _run_with(connection)
            connection.commit()
        return
    _run_with(connection)


def _run_with(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
