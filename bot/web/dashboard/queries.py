"""The lists the pages and the exports share: a unit's occurrences (filtered), its overdue
items, its photos, its people."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlmodel import col, func, select

from bot.core.i18n import mark
from bot.core.models import (
    ChannelIdentity,
    Evidence,
    Occurrence,
    Report,
    TaskDefinition,
    Unit,
    User,
)
from bot.core.services.people import preferred_identities
from bot.core.services.status import STATUSES_OF
from bot.web.dashboard import periods
from bot.web.dashboard.visit import Visit

PAGE_SIZE = 50


@dataclass
class Filters:
    status: str = ""  # a bucket of bot.core.services.rollup
    dimension: str = ""
    task: str = ""
    period: periods.Period | None = None
    page: int = 1

    @classmethod
    def from_query(cls, request: web.Request, visit: Visit) -> Filters:
        query = request.query
        status = query.get("status", "")
        dimension = query.get("dimension", "")
        task = query.get("task", "")
        raw_page = query.get("page", "1")
        return cls(
            status=status if status in STATUSES_OF else "",
            dimension=dimension if dimension in visit.ctx.framework.dimensions else "",
            task=task if task in visit.ctx.framework.tasks else "",
            period=periods.parse(query.get("p"), visit.today) if query.get("p") else None,
            page=max(1, min(int(raw_page), 100_000)) if raw_page.isdigit() else 1,
        )

    def query_string(self, **change: object) -> str:
        values = {
            "status": self.status,
            "dimension": self.dimension,
            "task": self.task,
            "p": self.period.key if self.period else "",
            "page": self.page if self.page > 1 else "",
        }
        values.update(change)
        return "&".join(f"{key}={value}" for key, value in values.items() if value)


async def task_map(visit: Visit) -> dict[str, TaskDefinition]:
    """Every task definition (a few dozen rows): joined in Python, not per occurrence."""
    return {task.key: task for task in (await visit.session.exec(select(TaskDefinition))).all()}


def _in_scope(query, visit: Visit, unit: Unit):  # noqa: ANN001, ANN202
    scope = visit.scope
    if not (unit.id == scope.root.id and scope.root.parent_id is None):
        query = query.where(col(Occurrence.unit_id).in_(scope.subtree(unit.id)))
    if scope.task_keys is not None:
        query = query.where(col(Occurrence.task_key).in_(list(scope.task_keys)))
    return query


def _filtered(query, visit: Visit, filters: Filters, tasks: dict):  # noqa: ANN001, ANN202
    if filters.status:
        query = query.where(col(Occurrence.status).in_(list(STATUSES_OF[filters.status])))
    if filters.dimension:
        keys = [key for key, task in tasks.items() if task.dimension == filters.dimension]
        query = query.where(col(Occurrence.task_key).in_(keys))
    if filters.task:
        query = query.where(Occurrence.task_key == filters.task)
    if filters.period:
        since, until = filters.period.bounds(visit.ctx.settings.tz)
        query = query.where(col(Occurrence.due_at) >= since, col(Occurrence.due_at) < until)
    return query


Line = tuple[Occurrence, TaskDefinition, Unit]


def _lines(visit: Visit, rows, tasks: dict) -> list[Line]:  # noqa: ANN001
    units = visit.scope.units
    return [(occ, tasks[occ.task_key], units[occ.unit_id]) for occ in rows]


async def occurrences(
    visit: Visit, unit: Unit, filters: Filters, limit: int | None = PAGE_SIZE
) -> tuple[list[Line], int]:
    """One page of the unit's occurrences (and its children's), latest due first; the count."""
    tasks = await task_map(visit)
    counted = _filtered(
        _in_scope(select(func.count()).select_from(Occurrence), visit, unit), visit, filters, tasks
    )
    total = int((await visit.session.exec(counted)).one())
    query = _filtered(_in_scope(select(Occurrence), visit, unit), visit, filters, tasks)
    query = query.order_by(col(Occurrence.due_at).desc(), col(Occurrence.id).desc())
    if limit is not None:
        query = query.offset((filters.page - 1) * limit).limit(limit)
    return _lines(visit, (await visit.session.exec(query)).all(), tasks), total


async def overdue(
    visit: Visit, unit: Unit, limit: int | None = None
) -> tuple[list[Line], dict[int, int]]:
    """The overdue items, oldest first (the first `limit`), and how many each unit has."""
    tasks = await task_map(visit)
    late = list(STATUSES_OF["overdue"])
    counted = _in_scope(
        select(Occurrence.unit_id, func.count())
        .where(col(Occurrence.status).in_(late))
        .group_by(Occurrence.unit_id),
        visit,
        unit,
    )
    per_unit = dict((await visit.session.exec(counted)).all())
    query = _in_scope(select(Occurrence).where(col(Occurrence.status).in_(late)), visit, unit)
    query = query.order_by(col(Occurrence.due_at), col(Occurrence.id))
    if limit is not None:
        query = query.limit(limit)
    return _lines(visit, (await visit.session.exec(query)).all(), tasks), per_unit


async def photos(
    visit: Visit, unit: Unit, page: int = 1, limit: int = 48
) -> list[tuple[Evidence, Report, Occurrence, TaskDefinition, Unit]]:
    tasks = await task_map(visit)
    query = _in_scope(
        select(Evidence, Report, Occurrence)
        .join(Report, col(Report.id) == col(Evidence.report_id))
        .join(Occurrence, col(Occurrence.id) == col(Report.occurrence_id)),
        visit,
        unit,
    )
    query = (
        query.order_by(col(Evidence.created_at).desc(), col(Evidence.id).desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    units = visit.scope.units
    return [
        (evidence, report, occ, tasks[occ.task_key], units[occ.unit_id])
        for evidence, report, occ in (await visit.session.exec(query)).all()
    ]


@dataclass
class Person:
    user: User
    unit: Unit
    identities: list[ChannelIdentity]
    reachable: ChannelIdentity | None

    @property
    def why_unreachable(self) -> str:
        """A message id (translated by the page): why nothing we send would reach them."""
        if self.reachable is not None:
            return ""
        if not self.identities:
            return mark("no chat linked")
        if all(identity.blocked for identity in self.identities):
            return mark("blocked the bot")
        return mark("Zalo OA: silent for over 7 days")


async def people(visit: Visit, unit: Unit) -> list[Person]:
    ids = visit.scope.subtree(unit.id)
    users = (
        await visit.session.exec(
            select(User)
            .where(col(User.unit_id).in_(ids), col(User.active).is_(True))
            .order_by(col(User.unit_id), col(User.id))
        )
    ).all()
    user_ids = [user.id for user in users]
    identities: dict[int, list[ChannelIdentity]] = {uid: [] for uid in user_ids}
    if user_ids:
        for identity in (
            await visit.session.exec(
                select(ChannelIdentity).where(col(ChannelIdentity.user_id).in_(user_ids))
            )
        ).all():
            identities[identity.user_id].append(identity)
    preferred = await preferred_identities(visit.session, user_ids)
    units = visit.scope.units
    return [
        Person(user, units[user.unit_id], identities[user.id], preferred[user.id]) for user in users
    ]
