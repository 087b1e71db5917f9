"""The escalation chain: a missed task goes to the commune, then to its supervising unit.

Each step is one `escalations` row per occurrence (unique on occurrence and step), inserted with
ON CONFLICT DO NOTHING: whoever inserts it tells the target unit's people, so two workers or a
replayed sweep never notify twice. Steps due while the scheduler was down all happen, once, at
the next sweep outside the quiet hours.

Targets (framework_data/escalation.yaml, roles.yaml `supervisors`):
- `parent_commune`: the commune above a village;
- `supervisor`: the district above the unit for "UBND cấp huyện" (three-tier), the unit named by
  `district_substitute` in the two-tier structure, the provincial agency the task names, or the
  provincial committee; a village's occurrence goes to its district (after its commune) whoever
  the supervisor is (roles.yaml `at` may say otherwise per level), never straight to a Sở;
- unreachable: nobody at the unit can be reached, so the level above learns it at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.models import (
    ChannelIdentity,
    Escalation,
    Occurrence,
    OccurrenceStatus,
    TaskDefinition,
    Unit,
    User,
)
from bot.core.services.occurrences import LATE_STATUSES
from bot.core.services.people import preferred_identities
from bot.core.sqlutil import insert_new
from bot.core.timeutil import from_db, to_db
from scheduler.policy import EscalationStep, Policies

UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Notice:
    """One line of news for a person at a target unit: this occurrence was escalated to you."""

    kind: str  # the step: commune | supervisor | unreachable
    occurrence_id: int
    task: TaskDefinition
    unit: Unit  # where the occurrence is
    above: Unit | None  # the unit above it, for context ("Thôn 2 (Xã A)")
    due_day: date
    days_late: int


class Directory:
    """Units, people and their reachable chats, loaded once per sweep and cached."""

    def __init__(self, session: AsyncSession, app: AppContext) -> None:
        self.session = session
        self.app = app
        self._units: dict[int, Unit] = {}
        self._by_code: dict[str, Unit | None] = {}
        self._users: dict[int, list[User]] = {}
        self._identity: dict[int, ChannelIdentity | None] = {}
        self._province: list[Unit | None] = []  # the first province, once looked up

    # --- units ---------------------------------------------------------------------------

    async def load_units(self, unit_ids: Iterable[int]) -> None:
        """These units and every unit above them: one query per level of the tree, however
        many units a batch holds."""
        wanted = {unit_id for unit_id in unit_ids if unit_id not in self._units}
        while wanted:
            rows = (await self.session.exec(select(Unit).where(col(Unit.id).in_(wanted)))).all()
            for unit in rows:
                self._units[unit.id] = unit
            wanted = {
                unit.parent_id
                for unit in rows
                if unit.parent_id is not None and unit.parent_id not in self._units
            }

    async def unit(self, unit_id: int) -> Unit | None:
        if unit_id not in self._units:
            unit = await self.session.get(Unit, unit_id)
            if unit is None:
                return None
            self._units[unit_id] = unit
        return self._units[unit_id]

    async def by_code(self, code: str) -> Unit | None:
        if not code:
            return None
        if code not in self._by_code:
            unit = (await self.session.exec(select(Unit).where(Unit.code == code))).first()
            self._by_code[code] = unit
            if unit is not None:
                self._units[unit.id] = unit
        return self._by_code[code]

    async def ancestors(self, unit: Unit) -> list[Unit]:
        """The units above, nearest first."""
        found: list[Unit] = []
        current = unit
        while current.parent_id is not None and all(u.id != current.parent_id for u in found):
            parent = await self.unit(current.parent_id)
            if parent is None:
                break
            found.append(parent)
            current = parent
        return found

    async def above(self, unit: Unit, level: str) -> Unit | None:
        return next((u for u in await self.ancestors(unit) if u.level == level), None)

    async def province_for(self, unit: Unit) -> Unit | None:
        found = await self.above(unit, "province")
        if found is None and unit.level != "province":
            if not self._province:
                self._province.append(
                    (
                        await self.session.exec(
                            select(Unit).where(Unit.level == "province").order_by(col(Unit.id))
                        )
                    ).first()
                )
            found = self._province[0]
        return found

    async def district_for(self, unit: Unit) -> Unit | None:
        """The district above (three-tier), or the unit taking its place (two-tier)."""
        settings = self.app.settings
        if settings.structure != "two_tier":
            district = await self.above(unit, "district")
            if district is not None:
                return district
        substitute = await self.by_code(settings.district_substitute)
        return substitute or await self.province_for(unit)

    # --- people --------------------------------------------------------------------------

    async def load_people(self, unit_ids: Iterable[int]) -> None:
        """Users of these units and the chat each is reached on, in two queries."""
        wanted = [unit_id for unit_id in set(unit_ids) if unit_id not in self._users]
        if not wanted:
            return
        for unit_id in wanted:
            self._users[unit_id] = []
        users = (
            await self.session.exec(
                select(User)
                .where(col(User.unit_id).in_(wanted), col(User.active).is_(True))
                .order_by(col(User.id))
            )
        ).all()
        for user in users:
            self._users[user.unit_id].append(user)
        await self._load_identities([user.id for user in users])

    async def _load_identities(self, user_ids: list[int]) -> None:
        # The outbox's own rule (the chat used last, never a blocked one, Zalo OA only within
        # its window), for all of them in one query.
        wanted = [user_id for user_id in user_ids if user_id not in self._identity]
        self._identity |= await preferred_identities(self.session, wanted)

    async def people(self, unit_id: int, wants: Callable[[str], bool]) -> list[User]:
        await self.load_people([unit_id])
        return [user for user in self._users[unit_id] if wants(user.role)]

    def identity(self, user_id: int) -> ChannelIdentity | None:
        return self._identity.get(user_id)

    async def reachable(self, unit_id: int, wants: Callable[[str], bool]) -> list[User]:
        return [u for u in await self.people(unit_id, wants) if self.identity(u.id) is not None]

    async def notified_at(self, policies: Policies, target: Unit) -> list[User]:
        """Who is told at a target unit (notify_roles by its level), if reachable."""
        roles = policies.escalation.notify_roles.get(target.level, [])
        return await self.reachable(target.id, lambda role: "*" in roles or role in roles)


# --- targets --------------------------------------------------------------------------------


async def supervisor_unit(directory: Directory, task: TaskDefinition, unit: Unit) -> Unit | None:
    """The task's "Cơ quan hướng dẫn, kiểm tra" for an occurrence at `unit`."""
    supervisor = directory.app.framework.supervisors.get(task.supervisor)
    mapping = supervisor.for_level(unit.level) if supervisor is not None else None
    if mapping is None or mapping.target == "parent_district":
        found = await directory.district_for(unit)
    elif mapping.target == "agency":
        found = await directory.by_code(mapping.agency or "") or await directory.province_for(unit)
    else:
        found = await directory.province_for(unit)
    if found is None or found.id == unit.id:
        # A district's own occurrence supervised by "UBND cấp huyện" goes one level up.
        ancestors = await directory.ancestors(unit)
        found = ancestors[0] if ancestors else None
    return found


async def level_above(directory: Directory, unit: Unit) -> Unit | None:
    """Where "nobody can be reached here" goes: village → commune, commune → district (or its
    two-tier substitute), anything else → its parent, else the province."""
    if unit.level == "commune":
        return await directory.district_for(unit)
    ancestors = await directory.ancestors(unit)
    if ancestors:
        return ancestors[0]
    return await directory.province_for(unit)


async def step_target(
    directory: Directory, step: EscalationStep, task: TaskDefinition, unit: Unit
) -> Unit | None:
    if step.target == "parent_commune":
        return await directory.above(unit, "commune")
    return await supervisor_unit(directory, task, unit)


# --- recording ------------------------------------------------------------------------------


async def insert_escalations(session: AsyncSession, rows: list[dict]) -> set[tuple[int, str]]:
    """Insert, skipping any (occurrence, step) already there; returns the ones this call added."""
    return await insert_new(session, Escalation.__table__, rows, ("occurrence_id", "step"))


async def existing_steps(session: AsyncSession, occurrence_ids: list[int]) -> set[tuple[int, str]]:
    if not occurrence_ids:
        return set()
    rows = await session.exec(
        select(Escalation.occurrence_id, Escalation.step).where(
            col(Escalation.occurrence_id).in_(occurrence_ids)
        )
    )
    return set(rows.all())


@dataclass
class Planned:
    occurrence: Occurrence
    task: TaskDefinition
    unit: Unit
    step: str
    reason: str
    target: Unit
    people: list[User]
    late: bool = True  # an overdue step marks the occurrence escalated; "unreachable" does not


def _days_late(policies: Policies, occurrence: Occurrence, now: datetime) -> tuple[date, int]:
    due_day = policies.local_day(from_db(occurrence.due_at))
    return due_day, max((policies.local_day(now) - due_day).days, 0)


async def _record(
    session: AsyncSession,
    directory: Directory,
    policies: Policies,
    planned: list[Planned],
    now: datetime,
) -> tuple[list[tuple[User, Notice]], dict[str, int]]:
    """Insert the planned steps; tell the people of those this call inserted."""
    now_db = to_db(now)
    rows = [
        {
            "occurrence_id": item.occurrence.id,
            "step": item.step,
            "target_unit_id": item.target.id,
            "reason": item.reason,
            "notified_user_ids": [user.id for user in item.people],
            "created_at": now_db,
        }
        for item in planned
    ]
    owned = await insert_escalations(session, rows)
    news: list[tuple[User, Notice]] = []
    counts: dict[str, int] = {}
    for item in planned:
        if (item.occurrence.id, item.step) not in owned:
            continue  # another worker recorded it first; it tells the people
        counts[item.step] = counts.get(item.step, 0) + 1
        occurrence = item.occurrence
        if item.late and occurrence.status in LATE_STATUSES:
            occurrence.status = OccurrenceStatus.escalated
            occurrence.updated_at = now_db
            session.add(occurrence)
        due_day, late = _days_late(policies, occurrence, now)
        ancestors = await directory.ancestors(item.unit)
        notice = Notice(
            kind=item.step,
            occurrence_id=occurrence.id,
            task=item.task,
            unit=item.unit,
            above=ancestors[0] if ancestors else None,
            due_day=due_day,
            days_late=late,
        )
        news.extend((user, notice) for user in item.people)
    return news, counts


async def escalate_due(
    session: AsyncSession,
    directory: Directory,
    policies: Policies,
    claimed: list[Occurrence],
    tasks: dict[str, TaskDefinition],
    now: datetime,
) -> tuple[list[tuple[User, Notice]], dict[str, int]]:
    """Record every step that has come for the claimed late occurrences; who to tell what."""
    late = [occ for occ in claimed if occ.status in LATE_STATUSES]
    done = await existing_steps(session, [occ.id for occ in late])
    await directory.load_units({occ.unit_id for occ in late})
    planned: list[Planned] = []
    for occurrence in late:
        task = tasks.get(occurrence.task_key)
        unit = await directory.unit(occurrence.unit_id)
        if task is None or unit is None:
            continue
        due_day = policies.local_day(from_db(occurrence.due_at))
        for step in policies.escalation.steps:
            if unit.level not in step.levels or (occurrence.id, step.step) in done:
                continue
            if policies.step_moment(step, due_day) > now:
                continue
            target = await step_target(directory, step, task, unit)
            if target is None or target.id == unit.id:
                continue
            planned.append(Planned(occurrence, task, unit, step.step, "overdue", target, []))
    await _find_people(directory, policies, planned)
    return await _record(session, directory, policies, planned, now)


async def _find_people(directory: Directory, policies: Policies, planned: list[Planned]) -> None:
    """Who is told at each target: the people of every target in one query (and their chats
    in one more), not one look-up per target."""
    await directory.load_people({item.target.id for item in planned})
    for item in planned:
        item.people = await directory.notified_at(policies, item.target)


async def escalate_unreachable(
    session: AsyncSession,
    directory: Directory,
    policies: Policies,
    found: list[tuple[Occurrence, TaskDefinition]],
    now: datetime,
) -> tuple[list[tuple[User, Notice]], dict[str, int]]:
    """Occurrences whose unit has nobody reachable go to the level above at once (once each).

    The occurrence keeps its status: it is not late yet, only nobody can be told about it.
    """
    rule = policies.escalation.unreachable
    done = await existing_steps(session, [occ.id for occ, _task in found])
    await directory.load_units({occ.unit_id for occ, _task in found})
    planned: list[Planned] = []
    for occurrence, task in found:
        if (occurrence.id, rule.step) in done:
            continue
        unit = await directory.unit(occurrence.unit_id)
        target = await level_above(directory, unit) if unit else None
        if unit is None or target is None:
            continue
        planned.append(
            Planned(occurrence, task, unit, rule.step, rule.reason, target, [], late=False)
        )
    await _find_people(directory, policies, planned)
    return await _record(session, directory, policies, planned, now)


__all__ = [
    "Directory",
    "Notice",
    "escalate_due",
    "escalate_unreachable",
    "level_above",
    "supervisor_unit",
]
