"""Which roles have nobody registered, unit by unit: the list for the weekly coverage report.

A role with no holder is not escalated as new work each month: where roles.yaml gives it a
`fallback` (the commune committee for the commune police, …) the stand-in is reminded, and the
gap is listed here once, until someone registers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.framework import Framework
from bot.core.models import Unit, User


@dataclass(frozen=True)
class Gap:
    unit_id: int
    unit_code: str
    unit_name: str
    role: str
    covered_by: str | None  # the fallback role that is reminded instead, if someone holds it


def roles_needed(framework: Framework) -> dict[str, set[str]]:
    """Level → the roles some task is executed by at that level (provincial agencies aside)."""
    needed: dict[str, set[str]] = {}
    for task in framework.tasks.values():
        for role in task.roles:
            if role.startswith("province_agency:"):
                continue
            level = framework.role_level(role)
            if framework.reminded_at(task, level):
                needed.setdefault(level, set()).add(role)
    return needed


async def role_gaps(
    session: AsyncSession, framework: Framework, parent_id: int | None = None
) -> list[Gap]:
    """Every (unit, role) with work and no active holder; `parent_id`: that unit and the units
    under it only (a district with its communes and villages, for its weekly report)."""
    needed = roles_needed(framework)
    units = list((await session.exec(select(Unit).where(col(Unit.level).in_(list(needed))))).all())
    if parent_id is not None:
        children: dict[int | None, list[Unit]] = {}
        for unit in (await session.exec(select(Unit))).all():
            children.setdefault(unit.parent_id, []).append(unit)
        below, stack = {parent_id}, [parent_id]
        while stack:
            for child in children.get(stack.pop(), []):
                below.add(child.id)
                stack.append(child.id)
        units = [unit for unit in units if unit.id in below]
    held: set[tuple[int, str]] = set(
        (
            await session.exec(select(User.unit_id, User.role).where(col(User.active).is_(True)))
        ).all()
    )
    gaps = []
    for unit in sorted(units, key=lambda u: u.code):
        for role in sorted(needed.get(unit.level, ())):
            if (unit.id, role) in held:
                continue
            fallback = framework.roles[role].fallback
            covered = fallback if fallback and (unit.id, fallback) in held else None
            gaps.append(Gap(unit.id, unit.code, unit.name, role, covered))
    return gaps


__all__ = ["Gap", "role_gaps", "roles_needed"]
