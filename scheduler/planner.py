"""Turn schedules into occurrences: one per (task, unit, period), idempotent and incremental.

A second run inserts nothing and reads only the periods of the planning window, so its cost
follows what is new, not the size of the history. Units with nobody registered still get their
occurrences: that nobody can be reached there is something the commune must learn.

The planner first counts what each (task, period) of the window has, in one query on the
(period, task_key) prefix of the unique key. All of it: nothing to do. Otherwise one INSERT …
SELECT over the unit ids, ON CONFLICT DO NOTHING, so the database, not Python, skips the rows
that exist. At national scale (1.8 million occurrences in 62 days) that is a few hundred
statements and no Python object per row. With period first in the key, those rows go together
at the end of their (period, task) in the index instead of into every unit's history.
On PostgreSQL a (task, period) with no row at all goes in without ON CONFLICT, and
`papibot plan` and the daily plan insert on two connections side by side (`connections`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from bot.core.config import Settings
from bot.core.framework import Framework, TaskRecord
from bot.core.models import Event, Occurrence, TaskDefinition, Unit, utcnow
from bot.core.sqlutil import dialect_name, insert_for_ids, insert_ignore, insert_ignore_for_ids
from bot.core.timeutil import DUE_CLOCK, local_moment, to_db
from scheduler.periods import Period, periods_between
from scheduler.workdays import WorkCalendar, load_calendar

_UNIQUE = ("period", "task_key", "unit_id")  # ON CONFLICT matches the key's columns in any order
OPEN_CLOCK = time(0, 0)


@dataclass
class PlanReport:
    inserted: int = 0
    per_task: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    events_planned: int = 0

    def summary(self) -> str:
        return f"{self.inserted} occurrences created, {self.events_planned} events planned"


class UnitIndex:
    """Unit ids by level and agency code, loaded once per planning run."""

    def __init__(self, units: list[tuple[int, str, str, int | None]]) -> None:
        self.by_level: dict[str, list[int]] = defaultdict(list)
        self.agency_by_code: dict[str, int] = {}
        self.children: dict[int, list[int]] = defaultdict(list)
        for unit_id, code, level, parent_id in units:
            self.by_level[level].append(unit_id)
            if level == "agency":
                self.agency_by_code[code] = unit_id
            if parent_id is not None:
                self.children[parent_id].append(unit_id)
        self.level_of = {unit_id: level for unit_id, _code, level, _parent in units}

    @classmethod
    async def load(cls, session: AsyncSession) -> UnitIndex:
        # By id: each level's units in order, so a slice of them is a range of ids.
        rows = await session.exec(
            select(Unit.id, Unit.code, Unit.level, Unit.parent_id).order_by(Unit.id)
        )
        return cls(list(rows.all()))

    def units_for_role(self, framework: Framework, role: str) -> list[int]:
        if role == "province_agency:*":
            # State bodies only: a company is reached by the rows that name it.
            return [
                unit_id
                for code, unit_id in self.agency_by_code.items()
                if not (code in framework.agencies and framework.agencies[code].company)
            ]
        if role.startswith("province_agency:"):
            found = self.agency_by_code.get(role.split(":", 1)[1])
            return [found] if found is not None else []
        return self.by_level.get(framework.role_level(role), [])

    def subtree(self, unit_id: int) -> list[int]:
        found, stack = [], [unit_id]
        while stack:
            current = stack.pop()
            found.append(current)
            stack.extend(self.children.get(current, []))
        return found


def units_for_task(task: TaskRecord, framework: Framework, index: UnitIndex) -> list[int]:
    seen: dict[int, None] = {}
    for role in task.roles:
        for unit_id in index.units_for_role(framework, role):
            seen[unit_id] = None
    return list(seen)


def units_by_level(
    task: TaskRecord, framework: Framework, index: UnitIndex
) -> dict[str, list[int]]:
    """The task's units grouped by level: each level may follow its own cadence."""
    grouped: dict[str, list[int]] = defaultdict(list)
    for unit_id in units_for_task(task, framework, index):
        grouped[index.level_of[unit_id]].append(unit_id)
    return dict(grouped)


def due_slots(framework: Framework) -> dict[tuple[str, str], int]:
    """(task, level) → the task's position among the tasks that follow the same rule at that
    level, in the decision's order: `periods.due_slot` turns it into a due month and day."""
    taken: dict[tuple[str, str], int] = defaultdict(int)
    slots: dict[tuple[str, str], int] = {}
    for task in framework.tasks.values():
        levels = {framework.role_level(role) for role in task.roles}
        for level in sorted(levels):
            name = framework.schedule_name(task, level)
            slots[(task.key, level)] = taken[(name, level)]
            taken[(name, level)] += 1
    return slots


def on_working_days(periods: list[Period], calendar: WorkCalendar) -> list[Period]:
    """Due dates on a day off move to the working day before (never before the window opens)."""
    moved = []
    for period in periods:
        due = calendar.on_or_before(period.due)
        moved.append(Period(period.key, min(period.opens, due), due))
    return moved


async def _existing_counts(session: AsyncSession, periods: set[str]) -> dict[tuple[str, str], int]:
    """How many occurrences each (task, period) of the window has, in one query over the
    unique key's (period, task_key) prefix: its cost is the window's entries, never the
    history's rows."""
    if not periods:
        return {}
    found = await session.exec(_counts_query(periods))
    return {(task_key, period): count for task_key, period, count in found.all()}


def _counts_query(periods: set[str]) -> Select:
    return (
        select(Occurrence.task_key, Occurrence.period, func.count())
        .where(col(Occurrence.period).in_(sorted(periods)))
        .group_by(Occurrence.period, Occurrence.task_key)
    )


async def _plan_period(
    session: AsyncSession,
    task_key: str,
    period: Period,
    unit_ids: list[int],
    settings: Settings,
    now: datetime,
    fresh: bool = False,
) -> int:
    """Create (task, period) at every unit of `unit_ids` that lacks it; returns how many.

    `fresh`: (task, period) had no row when the plan counted. PostgreSQL then inserts without
    ON CONFLICT (about a third less time per row); should a concurrent plan have inserted some
    meanwhile, the savepoint takes the attempt back and ON CONFLICT inserts the rest.
    """
    if not unit_ids:
        return 0
    values = _row(task_key, 0, period, settings, now)
    del values["unit_id"]
    table = Occurrence.__table__
    if fresh and dialect_name(session) == "postgresql":
        try:
            async with session.begin_nested():
                return await insert_for_ids(session, table, "unit_id", unit_ids, values)
        except IntegrityError:
            pass
    return await insert_ignore_for_ids(session, table, "unit_id", unit_ids, values, _UNIQUE)


class _Job(NamedTuple):
    """One (task, period) to insert at `unit_ids`; `fresh`: it had no row at all."""

    task_key: str
    period: Period
    unit_ids: list[int]
    fresh: bool


class _Progress:
    """`papibot plan`'s progress bar: (task, period)s done of all, whichever connection did it."""

    def __init__(self, progress: Callable[[int, int], None] | None, done: int, total: int) -> None:
        self.progress, self.done, self.total = progress, done, total

    def report_skipped(self) -> None:
        if self.progress is not None and self.done:
            self.progress(self.done, self.total)

    def job_done(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


async def _insert_side_by_side(
    engine: AsyncEngine,
    jobs: list[_Job],
    connections: int,
    settings: Settings,
    now: datetime,
    tick: _Progress,
) -> list[int]:
    """The (task, period)s' rows inserted by `connections` connections at once, each committing
    after each (task, period); returns how many each (task, period) got.

    PostgreSQL spends the plan inside the server (the client waits), one core per connection:
    two connections use both of this machine's. Connection k takes the k-th slice of every
    (task, period)'s units, always the same units of a level, so two connections never lock
    the same unit rows for their foreign-key checks at once (a second locker makes a row's lock
    a multixact) nor write the same leaves of the unit index; dealing whole (task, period)s to
    them in turn measured slower (bench/README.md, issue 18).
    """
    counts = [[0] * len(jobs) for _ in range(connections)]
    finished = [0] * len(jobs)

    async def worker(k: int) -> None:
        async with AsyncSession(engine) as session:
            for number, job in enumerate(jobs):
                share = _slice(job.unit_ids, k, connections)
                if share:
                    # The plan is re-run daily and idempotent: a commit lost in a crash is
                    # planned again, so it need not wait for the WAL to reach the disk.
                    await session.exec(text("SET LOCAL synchronous_commit = off"))
                    counts[k][number] = await _plan_period(
                        session, job.task_key, job.period, share, settings, now, job.fresh
                    )
                    await session.commit()
                finished[number] += 1
                if finished[number] == connections:
                    tick.job_done()

    try:
        async with asyncio.TaskGroup() as group:  # one fails: the others stop too
            for k in range(connections):
                group.create_task(worker(k))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [sum(column) for column in zip(*counts, strict=True)]


def _slice(ids: list[int], k: int, parts: int) -> list[int]:
    """The k-th of `parts` contiguous, nearly equal slices of `ids` (sorted)."""
    size, extra = divmod(len(ids), parts)
    start = k * size + min(k, extra)
    return ids[start : start + size + (1 if k < extra else 0)]


def _row(
    task_key: str,
    unit_id: int,
    period: Period,
    settings: Settings,
    now: datetime,
    event_id: int | None = None,
) -> dict:
    return {
        "task_key": task_key,
        "unit_id": unit_id,
        "period": period.key,
        "window_start": to_db(local_moment(period.opens, OPEN_CLOCK, settings.tz)),
        "due_at": to_db(local_moment(period.due, DUE_CLOCK, settings.tz)),
        "status": "open",
        "event_id": event_id,
        "note": "",
        "created_at": now,
        "updated_at": now,
    }


async def plan(
    session: AsyncSession,
    framework: Framework,
    settings: Settings,
    today: date,
    until: date | None = None,
    *,
    commit_each: bool = False,
    connections: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> PlanReport:
    """Create the occurrences due from `today` whose window opens by `until`. Caller commits.

    `commit_each`: also commit after each (task, period) that inserted rows. Planning is
    idempotent, so a plan cut short is simply completed by the next one; in exchange no single
    transaction holds SQLite's write lock for the whole plan (at national scale 1.6 million rows
    take over a minute, during which the sweep and the sender fail with "database is locked").

    `connections` (PostgreSQL; SQLite keeps its one writer and ignores it): insert the periodic
    rows on this many connections of the session's engine at once, each committing after each
    (task, period), so like `commit_each` those rows are committed whatever the caller then
    does; the events are planned in the caller's transaction. For callers that own their
    transaction and plan nothing else in it (`papibot plan`, the daily plan).
    """
    until = until or today + timedelta(days=settings.plan_horizon_days)
    report = PlanReport()
    index = await UnitIndex.load(session)
    active = set(
        (await session.exec(select(TaskDefinition.key).where(TaskDefinition.active))).all()
    )
    now = utcnow()
    calendar = load_calendar(settings)
    slots = due_slots(framework)
    work: list[tuple[TaskRecord, list[int], list[Period]]] = []
    for task in framework.tasks.values():
        if task.key not in active:
            continue
        for level, unit_ids in units_by_level(task, framework, index).items():
            rule = framework.rule_for(task, level)
            if rule.kind != "periodic":
                continue
            found = periods_between(rule, today, until, slots.get((task.key, level), 0))
            work.append((task, unit_ids, on_working_days(found, calendar)))
    existing = await _existing_counts(
        session, {period.key for _task, _units, periods in work for period in periods}
    )
    # A task whose levels share a period key (monthly at the village and the commune) has one
    # count for both: it is complete when it has every level's units.
    wanted: dict[tuple[str, str], int] = defaultdict(int)
    for task, unit_ids, periods in work:
        for period in periods:
            wanted[(task.key, period.key)] += len(unit_ids)
    # A (task, period) whose count equals the units wanted is complete (the unique (period,
    # task, unit) makes them distinct units; they are the wanted ones unless a unit changed
    # level or the task changed roles and, in the same window, exactly as many units left as
    # joined: then the newcomers get their occurrence from the next period on). A count of 0
    # makes it fresh, for every level of it: the levels insert different units.
    jobs = [
        _Job(task.key, period, unit_ids, fresh=not existing.get((task.key, period.key)))
        for task, unit_ids, periods in work
        for period in periods
        if existing.get((task.key, period.key), 0) != wanted[(task.key, period.key)]
    ]
    total = sum(len(periods) for _task, _units, periods in work)
    done = total - len(jobs)  # complete already: nothing to insert
    tick = _Progress(progress, done, total)
    tick.report_skipped()
    engine = session.bind
    if (
        connections > 1
        and dialect_name(session) == "postgresql"
        and isinstance(engine, AsyncEngine)
    ):
        counts = await _insert_side_by_side(engine, jobs, connections, settings, now, tick)
    else:
        counts = []
        for job in jobs:
            count = await _plan_period(
                session, job.task_key, job.period, job.unit_ids, settings, now, job.fresh
            )
            counts.append(count)
            tick.job_done()
            if commit_each and count:
                await session.commit()
    for job, count in zip(jobs, counts, strict=True):
        report.inserted += count
        report.per_task[job.task_key] += count
    await _plan_events(session, framework, settings, index, report, now)
    return report


def event_periods(
    framework: Framework, schedule: str, event: Event, only: list[str] | None = None
) -> list[Period]:
    """The phases of an event schedule for `event` (`only`: these phase keys)."""
    rule = framework.schedules[schedule]
    periods = []
    for phase in rule.phases:
        if only and phase.key not in only:
            continue
        anchor = event.starts_on if phase.anchor == "start" else (event.ends_on or event.starts_on)
        periods.append(
            Period(
                key=f"{event.kind}:{event.id}:{phase.key}",
                opens=anchor + timedelta(days=phase.open_days),
                due=anchor + timedelta(days=phase.due_days),
            )
        )
    return periods


async def _plan_events(
    session: AsyncSession,
    framework: Framework,
    settings: Settings,
    index: UnitIndex,
    report: PlanReport,
    now: datetime,
) -> None:
    """An event at a unit starts its kind's tasks at that unit and every unit below it."""
    events = (await session.exec(select(Event).where(col(Event.planned).is_(False)))).all()
    calendar = load_calendar(settings)
    for event in events:
        in_scope = set(index.subtree(event.unit_id))
        rows = []
        for task in framework.tasks.values():
            rule = framework.schedules[task.schedule]
            if rule.kind != "event" or event.kind not in rule.events:
                continue
            unit_ids = [u for u in units_for_task(task, framework, index) if u in in_scope]
            periods = event_periods(framework, task.schedule, event, task.phases)
            for period in _event_working_days(periods, calendar):
                rows.extend(
                    _row(task.key, unit_id, period, settings, now, event.id) for unit_id in unit_ids
                )
        count = await insert_ignore(session, Occurrence.__table__, rows, _UNIQUE)
        report.inserted += count
        event.planned = True
        session.add(event)
        report.events_planned += 1


def _event_working_days(periods: list[Period], calendar: WorkCalendar) -> list[Period]:
    """A phase due on the event's own day (election day is a Sunday) keeps it; a phase due some
    days before or after moves off a day off like any due date."""
    return [
        period if period.due == period.opens else on_working_days([period], calendar)[0]
        for period in periods
    ]


__all__ = ["PlanReport", "UnitIndex", "event_periods", "plan"]
