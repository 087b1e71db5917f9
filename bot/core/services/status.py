"""What the record says, counted and listed: the one count of done / excused / open /
overdue that every view shows (chat, digests, chart, workbook, CLI, pages), and the rows of
`papibot status` and the status page."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.models import Occurrence, OccurrenceStatus, Unit
from bot.core.timeutil import from_db

LATE = (OccurrenceStatus.overdue, OccurrenceStatus.escalated)
# The one rule from occurrence status to outcome, for every count and filter in the product.
OUTCOMES = ("done", "excused", "overdue", "open")
STATUSES_OF = {
    "done": (OccurrenceStatus.done,),
    "excused": (OccurrenceStatus.excused,),
    "overdue": LATE,
    "open": (OccurrenceStatus.open,),
}
OUTCOME_OF = {status: outcome for outcome, statuses in STATUSES_OF.items() for status in statuses}


def outcome_of(status: str) -> str:
    """done / excused / overdue / open for an occurrence status (anything else is open)."""
    return OUTCOME_OF.get(status, "open")


def outcome_at(
    status: str,
    due_at: datetime,
    moment: datetime,
    *,
    done_at: datetime | None = None,
    excused_at: datetime | None = None,
) -> str:
    """The outcome an occurrence had at a past `moment`, by the same rule as `outcome_of`:
    its done or excused status counts from the time the record says it came (`done_at`, the
    cannot-do decision); before that it was overdue once past its due time, else open. All
    datetimes in one convention (as stored). A closed status without its time counts as
    closed all along: nothing on record says otherwise."""
    if status == OccurrenceStatus.done and (done_at is None or done_at <= moment):
        return outcome_of(status)
    if status == OccurrenceStatus.excused and (excused_at is None or excused_at <= moment):
        return outcome_of(status)
    return outcome_of(OccurrenceStatus.overdue if due_at < moment else OccurrenceStatus.open)


@dataclass
class StatusCounts:
    """One unit's occurrences by outcome. The three outcomes are never merged:

    - `done`: reported done (with or without evidence);
    - `excused`: "không thực hiện được", accepted by the level above, the reason on record;
    - `overdue`: past the due date and not done (overdue or escalated);
    - `open`: not done, not yet late (a cannot-do request waiting for a decision stays here).
    """

    unit: Unit | None = None  # None: a count over something else (a PAPI dimension, a list)
    done: int = 0
    excused: int = 0
    overdue: int = 0
    open: int = 0

    def add(self, status: str, count: int) -> None:
        outcome = outcome_of(status)
        setattr(self, outcome, getattr(self, outcome) + count)

    @property
    def total(self) -> int:
        return self.done + self.excused + self.overdue + self.open

    @property
    def expected(self) -> int:
        """What had to be done: everything but the excused."""
        return self.done + self.overdue + self.open

    @property
    def rate(self) -> float:
        """Completion: done over expected (an excused task is neither done nor missing);
        1.0 when nothing was expected."""
        return self.done / self.expected if self.expected else 1.0


async def count_statuses(
    session: AsyncSession,
    units: list[Unit],
    since: datetime,
    until: datetime,
    *,
    include_below: bool = False,
) -> list[StatusCounts]:
    """Done / excused / overdue / open per unit, in the order of `units`.

    Counts the occurrences due at or after `since` whose window opened by `until` (both aware
    UTC, as stored: pass `to_db(now - RECENT_WINDOW)`, `to_db(now)` for "the last 3 months").
    `include_below=False` counts each unit's own occurrences (villages of a commune);
    `include_below=True` counts each unit with everything under it (communes of a district).
    """
    result = [StatusCounts(unit) for unit in units]
    if not result:
        return []
    owner: dict[int, int] = {}  # occurrence unit id → index in `result`
    for index, unit in enumerate(units):
        ids = [unit.id]
        if include_below:
            frontier = [unit.id]
            while frontier:
                rows = await session.exec(select(Unit.id).where(col(Unit.parent_id).in_(frontier)))
                frontier = list(rows.all())
                ids += frontier
        for unit_id in ids:
            owner.setdefault(unit_id, index)
    unit_ids = list(owner)
    for start in range(0, len(unit_ids), 1000):
        rows = await session.exec(
            select(Occurrence.unit_id, Occurrence.status, func.count())
            .where(
                col(Occurrence.unit_id).in_(unit_ids[start : start + 1000]),
                col(Occurrence.due_at) >= since,
                col(Occurrence.window_start) <= until,
            )
            .group_by(Occurrence.unit_id, Occurrence.status)
        )
        for unit_id, status, count in rows.all():
            result[owner[unit_id]].add(status, count)
    return result


def total_counts(rows: list[StatusRow]) -> dict[str, int]:
    """done / excused / overdue / open over listed rows (the CLI's closing line)."""
    totals = StatusCounts()
    for row in rows:
        totals.add(row.status, 1)
    return {
        "done": totals.done,
        "excused": totals.excused,
        "overdue": totals.overdue,
        "open": totals.open,
    }


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
