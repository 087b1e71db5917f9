"""Occurrences as operations sees them: `papibot status` and the status page."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.models import Occurrence, Unit
from bot.core.timeutil import from_db


@dataclass
class StatusRow:
    unit_code: str
    unit_name: str
    task_key: str
    period: str
    due_at: datetime
    status: str

    def as_json(self) -> dict:
        data = asdict(self)
        data["due_at"] = self.due_at.isoformat()
        return data


async def status_rows(
    session: AsyncSession, unit_ids: list[int] | None = None, limit: int | None = None
) -> list[StatusRow]:
    query = (
        select(
            Unit.code,
            Unit.name,
            Occurrence.task_key,
            Occurrence.period,
            Occurrence.due_at,
            Occurrence.status,
        )
        .join(Unit, Unit.id == Occurrence.unit_id)
        .order_by(Occurrence.due_at, Unit.code, Occurrence.task_key)
    )
    if unit_ids is not None:
        query = query.where(Occurrence.unit_id.in_(unit_ids))  # type: ignore[union-attr]
    if limit:
        query = query.limit(limit)
    rows = (await session.exec(query)).all()
    return [
        StatusRow(code, name, key, period, from_db(due), status)
        for code, name, key, period, due, status in rows
    ]
