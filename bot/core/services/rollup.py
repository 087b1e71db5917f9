"""done / excused / overdue / open, counted from occurrence statuses, per unit and dimension.

The dashboard's counts by dimension and period, with the records' one rule from status to
outcome (`outcome_of` in bot/core/services/status.py): `done`, `excused` (a "cannot do" that was
accepted), `overdue` (overdue or escalated), `open`. Nothing excused is ever counted as done.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import literal
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.models import Occurrence, TaskDefinition
from bot.core.services.status import OUTCOMES, outcome_of

# The outcome of each status is the records' one rule (bot/core/services/status.py).
BUCKETS = OUTCOMES


@dataclass
class Counts:
    done: int = 0
    excused: int = 0
    overdue: int = 0
    open: int = 0

    def add(self, status: str, count: int = 1) -> None:
        bucket = outcome_of(status)
        setattr(self, bucket, getattr(self, bucket) + count)

    def merge(self, other: Counts) -> None:
        for bucket in BUCKETS:
            setattr(self, bucket, getattr(self, bucket) + getattr(other, bucket))

    @property
    def total(self) -> int:
        return self.done + self.excused + self.overdue + self.open

    @property
    def settled_share(self) -> float | None:
        """Share of what came due that was done or excused (open items are not yet late)."""
        due = self.done + self.excused + self.overdue
        return (self.done + self.excused) / due if due else None


async def count_occurrences(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    unit_ids: Iterable[int] | None = None,
    task_keys: Iterable[str] | None = None,
    by_dimension: bool = True,
) -> dict[tuple[int, str], Counts]:
    """Counts per (unit id, PAPI dimension key) of the occurrences due in [since, until),
    optionally only at `unit_ids` and of `task_keys`; per (unit id, "") when not
    `by_dimension`. Callers add units up their tree."""
    if by_dimension:
        query = (
            select(Occurrence.unit_id, TaskDefinition.dimension, Occurrence.status, func.count())
            .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
            .group_by(Occurrence.unit_id, TaskDefinition.dimension, Occurrence.status)
        )
    else:
        query = select(Occurrence.unit_id, literal(""), Occurrence.status, func.count()).group_by(
            Occurrence.unit_id, Occurrence.status
        )
    query = query.where(col(Occurrence.due_at) >= since, col(Occurrence.due_at) < until)
    if unit_ids is not None:
        query = query.where(col(Occurrence.unit_id).in_(list(unit_ids)))
    if task_keys is not None:
        query = query.where(col(Occurrence.task_key).in_(list(task_keys)))
    found: dict[tuple[int, str], Counts] = {}
    for unit_id, dimension, status, count in (await session.exec(query)).all():
        found.setdefault((unit_id, dimension), Counts()).add(status, count)
    return found
