"""Reading the database back in tests."""

from __future__ import annotations

from typing import Any

from sqlmodel import func, select

from bot.core.db import Database


async def count(db: Database, model: type, *where: Any) -> int:
    """How many rows of `model` match every condition in `where`."""
    async with db.session() as session:
        query = select(func.count()).select_from(model)
        for condition in where:
            query = query.where(condition)
        return int((await session.exec(query)).one())
