"""The district's last weeks, for the trend chart: per week (Monday to Sunday, local time) the
tasks due that week and how they stood at the week's end: done, excused or overdue, by the one
rule (`status.outcome_at`).

Computed from the occurrences themselves, not from past digests: a new deployment has its
trend from its first week of due dates, and a report sent late does not rewrite how a week
looked when it ended (a task due on the 25th and done on the 2nd counts as overdue in the week
of the 25th). Weeks before the first task on record was due have no counts (`None`): they are
not zero, there is simply nothing to show yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.models import Occurrence, OccurrenceStatus, Report
from bot.core.services.status import StatusCounts, outcome_at
from bot.core.timeutil import from_db, to_db

WEEKS = 8
CHUNK = 1000  # unit ids per IN (…): far below every database's limit


@dataclass
class Week:
    start: date  # a Monday
    counts: StatusCounts | None  # None: before anything on record was due

    @property
    def end(self) -> date:
        return self.start + timedelta(days=6)


def last_full_weeks(today: date, weeks: int = WEEKS) -> list[date]:
    """The Mondays of the `weeks` weeks that ended before this one (the current week is not
    over: its tasks cannot be counted yet)."""
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=n) for n in range(weeks, 0, -1)]


async def _excused_at(session: AsyncSession, ids: list[int]) -> dict[int, datetime]:
    """When each excused occurrence's cannot-do request was accepted."""
    found: dict[int, datetime] = {}
    for start in range(0, len(ids), CHUNK):
        rows = await session.exec(
            select(Report.occurrence_id, func.max(Report.decided_at))
            .where(
                col(Report.occurrence_id).in_(ids[start : start + CHUNK]),
                Report.kind == "cannot",
                Report.status == "approved",
            )
            .group_by(Report.occurrence_id)
        )
        for occurrence_id, decided in rows.all():
            if decided is not None:
                found[occurrence_id] = from_db(decided)
    return found


async def weekly_trend(
    session: AsyncSession, unit_ids: list[int], today: date, tz: ZoneInfo, weeks: int = WEEKS
) -> list[Week]:
    """The last `weeks` full weeks, oldest first, over the occurrences of `unit_ids`."""
    mondays = last_full_weeks(today, weeks)
    start = datetime.combine(mondays[0], time.min, tzinfo=tz)
    end = datetime.combine(mondays[-1] + timedelta(weeks=1), time.min, tzinfo=tz)
    first_due: datetime | None = None
    rows = []
    for part in range(0, len(unit_ids), CHUNK):
        ids = unit_ids[part : part + CHUNK]
        earliest = (
            await session.exec(
                select(func.min(Occurrence.due_at)).where(col(Occurrence.unit_id).in_(ids))
            )
        ).one()
        if earliest is not None:
            earliest = from_db(earliest)
            first_due = earliest if first_due is None else min(first_due, earliest)
        found = await session.exec(
            select(
                Occurrence.id,
                Occurrence.status,
                Occurrence.due_at,
                Occurrence.done_at,
                Occurrence.updated_at,
            ).where(
                col(Occurrence.unit_id).in_(ids),
                col(Occurrence.due_at) >= to_db(start),
                col(Occurrence.due_at) < to_db(end),
            )
        )
        rows += found.all()
    excused = await _excused_at(
        session, [row[0] for row in rows if row[1] == OccurrenceStatus.excused]
    )
    first_week = first_due.astimezone(tz).date() if first_due is not None else None
    result = [
        Week(
            monday,
            StatusCounts()
            if first_week is not None and first_week < monday + timedelta(weeks=1)
            else None,
        )
        for monday in mondays
    ]
    for occurrence_id, status, due_at, done_at, updated_at in rows:
        due = from_db(due_at)
        index = (due.astimezone(tz).date() - mondays[0]).days // 7
        week = result[index]
        week_end = datetime.combine(week.start + timedelta(weeks=1), time.min, tzinfo=tz)
        outcome = outcome_at(
            status,
            due,
            to_db(week_end),
            done_at=from_db(done_at) if done_at is not None else None,
            # No decision on record (excused some other way): the row's last change.
            excused_at=excused.get(occurrence_id, from_db(updated_at)),
        )
        if week.counts is not None:
            setattr(week.counts, outcome, getattr(week.counts, outcome) + 1)
    return result


def weeks_with_data(weeks: list[Week]) -> int:
    return sum(1 for week in weeks if week.counts is not None)
