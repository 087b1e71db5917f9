"""The overview: a unit's children × the eight PAPI dimensions, done / excused / overdue for a
month, quarter or year, with totals, registration coverage and the change since the period
before."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from sqlmodel import col, or_, select

from bot.core.models import ChannelIdentity, User, utcnow
from bot.core.services.rollup import Counts, count_occurrences
from bot.web.dashboard import periods
from bot.web.dashboard.scope import Scope, vietnamese_key
from bot.web.dashboard.visit import Visit, int_arg, page

ZALO_OA_WINDOW = timedelta(days=7)


@dataclass
class Row:
    unit: object
    own: bool  # the unit's own tasks, beside its children's
    cells: dict[str, Counts] = field(default_factory=dict)
    total: Counts = field(default_factory=Counts)
    previous: Counts = field(default_factory=Counts)
    units: int = 0
    reachable: int = 0

    @property
    def is_agency(self) -> bool:
        """A provincial department beside the districts or communes: listed after them, apart."""
        return not self.own and getattr(self.unit, "level", "") == "agency"

    @property
    def coverage(self) -> float | None:
        return self.reachable / self.units if self.units else None

    @property
    def change(self) -> float | None:
        now, before = self.total.settled_share, self.previous.settled_share
        return None if now is None or before is None else now - before


def tone(counts: Counts) -> str:
    share = counts.settled_share
    if share is None:
        return "none"
    return "good" if share >= 0.9 else "fair" if share >= 0.7 else "poor"


async def reachable_units(visit: Visit) -> set[int]:
    """Units where someone active has a chat we may write to."""
    query = (
        select(User.unit_id)
        .join(ChannelIdentity, col(ChannelIdentity.user_id) == col(User.id))
        .where(
            col(User.active).is_(True),
            col(ChannelIdentity.blocked).is_(False),
            or_(
                ChannelIdentity.channel != "zalo_oa",
                col(ChannelIdentity.last_interaction_at) >= utcnow() - ZALO_OA_WINDOW,
            ),
        )
        .distinct()
    )
    return set((await visit.session.exec(query)).all())


def _whole_tree(scope: Scope, unit_id: int) -> bool:
    return unit_id == scope.root.id and scope.root.parent_id is None


async def build_rows(visit: Visit, unit, period: periods.Period) -> list[Row]:  # noqa: ANN001
    scope = visit.scope
    tz = visit.ctx.settings.tz
    rows = [Row(child, own=False) for child in scope.child_units(unit.id)]
    own = Row(unit, own=True)
    row_of: dict[int, Row] = {unit.id: own}
    for row in rows:
        for unit_id in scope.subtree(row.unit.id):
            row_of[unit_id] = row
    unit_ids = None if _whole_tree(scope, unit.id) else list(row_of)
    since, until = period.bounds(tz)
    before_since, before_until = period.shifted(-1).bounds(tz)
    current = await count_occurrences(visit.session, since, until, unit_ids, scope.task_keys)
    before = await count_occurrences(
        visit.session, before_since, before_until, unit_ids, scope.task_keys, by_dimension=False
    )
    for (unit_id, dimension), counts in current.items():
        row = row_of.get(unit_id)
        if row is not None:
            row.cells.setdefault(dimension, Counts()).merge(counts)
            row.total.merge(counts)
    for (unit_id, _dimension), counts in before.items():
        row = row_of.get(unit_id)
        if row is not None:
            row.previous.merge(counts)
    reachable = await reachable_units(visit)
    for unit_id, row in row_of.items():
        row.units += 1
        row.reachable += unit_id in reachable
    if own.total.total or not rows:
        own.units, own.reachable = 1, int(unit.id in reachable)
        rows.insert(0, own)
    return rows


def sort_rows(rows: list[Row], how: str) -> list[Row]:
    """The unit's own tasks on top; then its districts or communes; then, at a province, its
    departments and agencies. Each group worst first (or A–Z): a province officer looks for
    a commune among communes, not between "Ban Dân tộc" and "Báo Khánh Hòa"."""
    if how == "name":
        return sorted(rows, key=lambda r: (not r.own, r.is_agency, vietnamese_key(r.unit.name)))
    return sorted(
        rows,
        key=lambda r: (
            not r.own,
            r.is_agency,
            -r.total.overdue,
            r.total.settled_share if r.total.settled_share is not None else 2.0,
            vietnamese_key(r.unit.name),
        ),
    )


@page
async def overview(request: web.Request, visit: Visit) -> web.Response:
    unit = visit.unit(int_arg(request.match_info.get("unit_id"), visit.scope.root.id))
    period = periods.parse(request.query.get("p"), visit.today) or periods.current(
        "quarter", visit.today
    )
    how = "name" if request.query.get("sort") == "name" else "worst"
    rows = sort_rows(await build_rows(visit, unit, period), how)
    dimensions = sorted(visit.ctx.framework.dimensions.values(), key=lambda d: d.number)
    totals: dict[str, Counts] = {d.key: Counts() for d in dimensions}
    grand, previous = Counts(), Counts()
    units = reachable = 0
    for row in rows:
        for key, counts in row.cells.items():
            totals.setdefault(key, Counts()).merge(counts)
        grand.merge(row.total)
        previous.merge(row.previous)
        units += row.units
        reachable += row.reachable
    total_row = Row(unit, own=False, cells=totals, total=grand, previous=previous)
    total_row.units, total_row.reachable = units, reachable
    today = visit.today
    return visit.render(
        "overview.html",
        title=visit._("Overview"),
        unit=unit,
        trail=visit.scope.trail(unit.id),
        rows=rows,
        total=total_row,
        dimensions=dimensions,
        period=period,
        choices=[periods.current(kind, today) for kind in ("month", "quarter", "year")],
        sort=how,
        tone=tone,
    )
