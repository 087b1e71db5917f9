"""Occurrence queries and changes used by the conversations and the scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.framework import Framework
from bot.core.framework.schema import role_matches
from bot.core.models import (
    CLOSED_STATUSES,
    Occurrence,
    OccurrenceStatus,
    TaskDefinition,
    Unit,
    User,
    utcnow,
)

ACTIVE_STATUSES = (OccurrenceStatus.open, OccurrenceStatus.overdue, OccurrenceStatus.escalated)
LATE_STATUSES = (OccurrenceStatus.overdue, OccurrenceStatus.escalated)


async def ancestor_ids(session: AsyncSession, unit_id: int) -> list[int]:
    """The unit itself and every unit above it (village → commune → district → province)."""
    found: list[int] = []
    current: int | None = unit_id
    while current is not None and current not in found:
        found.append(current)
        current = (await session.exec(select(Unit.parent_id).where(Unit.id == current))).first()
    return found


async def subtree_ids(session: AsyncSession, unit_id: int) -> list[int]:
    found, frontier = [unit_id], [unit_id]
    while frontier:
        rows = await session.exec(select(Unit.id).where(col(Unit.parent_id).in_(frontier)))
        frontier = list(rows.all())
        found.extend(frontier)
    return found


async def may_act_on(session: AsyncSession, user: User, occurrence: Occurrence) -> bool:
    """A user acts on their own unit's occurrences and those of the units below it."""
    return user.unit_id in await ancestor_ids(session, occurrence.unit_id)


def visible_to_role(framework: Framework, task_roles: list[str], role: str) -> bool:
    return role_matches(task_roles, role)


async def open_for_user(
    session: AsyncSession, framework: Framework, user: User, now: datetime, limit: int = 20
) -> list[tuple[Occurrence, TaskDefinition]]:
    """What this person has to do: open or late occurrences at their unit for their role,
    whose window has opened, soonest due first."""
    rows = await session.exec(
        select(Occurrence, TaskDefinition)
        .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
        .where(
            Occurrence.unit_id == user.unit_id,
            col(Occurrence.status).in_(ACTIVE_STATUSES),
            col(Occurrence.window_start) <= now,
        )
        .order_by(col(Occurrence.due_at), col(Occurrence.id))
    )
    result = [
        (occ, task) for occ, task in rows.all() if visible_to_role(framework, task.roles, user.role)
    ]
    return result[:limit]


@dataclass
class Tally:
    unit: Unit
    done: int = 0
    open: int = 0
    overdue: int = 0

    def add(self, status: str, count: int) -> None:
        if status in CLOSED_STATUSES:
            self.done += count
        elif status in LATE_STATUSES:
            self.overdue += count
        else:
            self.open += count

    @property
    def total(self) -> int:
        return self.done + self.open + self.overdue

    @property
    def rate(self) -> float:
        return self.done / self.total if self.total else 1.0


async def tallies(
    session: AsyncSession, units: list[Unit], since: datetime, until: datetime
) -> list[Tally]:
    """done / open / overdue per unit (counting each unit's own occurrences and those below it
    is the caller's choice: pass villages to see villages), for occurrences due in the range."""
    by_id = {unit.id: Tally(unit) for unit in units}
    if not by_id:
        return []
    rows = await session.exec(
        select(Occurrence.unit_id, Occurrence.status, func.count())
        .where(
            col(Occurrence.unit_id).in_(list(by_id)),
            col(Occurrence.due_at) >= since,
            col(Occurrence.window_start) <= until,
        )
        .group_by(Occurrence.unit_id, Occurrence.status)
    )
    for unit_id, status, count in rows.all():
        by_id[unit_id].add(status, count)
    return list(by_id.values())


async def rollup_tallies(
    session: AsyncSession, parents: list[Unit], since: datetime, until: datetime
) -> list[Tally]:
    """Like `tallies`, but each parent counts its own occurrences and all below it."""
    result = []
    for parent in parents:
        ids = await subtree_ids(session, parent.id)
        rows = await session.exec(
            select(Occurrence.status, func.count())
            .where(
                col(Occurrence.unit_id).in_(ids),
                col(Occurrence.due_at) >= since,
                col(Occurrence.window_start) <= until,
            )
            .group_by(Occurrence.status)
        )
        tally = Tally(parent)
        for status, count in rows.all():
            tally.add(status, count)
        result.append(tally)
    return result


def mark_done(occurrence: Occurrence, user: User) -> None:
    occurrence.status = OccurrenceStatus.done
    occurrence.done_at = utcnow()
    occurrence.done_by_user_id = user.id
    occurrence.updated_at = utcnow()


def extend(occurrence: Occurrence, new_due: datetime) -> None:
    occurrence.due_at = new_due
    if occurrence.status in LATE_STATUSES:
        occurrence.status = OccurrenceStatus.open
    occurrence.updated_at = utcnow()


def days_late(occurrence: Occurrence, today: date, due_day: date) -> int:
    return max((today - due_day).days, 0)


RECENT_WINDOW = timedelta(days=92)
