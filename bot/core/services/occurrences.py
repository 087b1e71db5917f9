"""Occurrence queries and changes used by the conversations and the scheduler."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.framework import Framework
from bot.core.framework.schema import role_matches
from bot.core.models import (
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
    if occurrence.unit_id == user.unit_id:  # the usual case, a village head's own: no query
        return True
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
