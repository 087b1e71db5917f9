"""The plan side by side on several connections (PostgreSQL) makes exactly the rows of the plan
on one; SQLite keeps its one writer."""

from collections import Counter
from datetime import date

from sqlalchemy import delete
from sqlmodel import func, select

from bot.core.models import Occurrence, utcnow
from scheduler.periods import Period
from scheduler.planner import _plan_period, plan
from tests.helpers.world import build_world

TODAY, UNTIL = date(2026, 11, 27), date(2027, 11, 27)


async def rows_of(db) -> set[tuple]:
    async with db.session() as session:
        found = await session.exec(
            select(
                Occurrence.task_key,
                Occurrence.unit_id,
                Occurrence.period,
                Occurrence.window_start,
                Occurrence.due_at,
                Occurrence.status,
                Occurrence.event_id,
            )
        )
        return set(found.all())


async def count_all(db) -> int:
    async with db.session() as session:
        return (await session.exec(select(func.count()).select_from(Occurrence))).one()


async def plan_year(db, settings, framework, connections: int, progress=None):  # noqa: ANN001, ANN201
    async with db.session() as session:
        report = await plan(
            session,
            framework,
            settings,
            TODAY,
            UNTIL,
            connections=connections,
            progress=progress,
        )
        await session.commit()
    return report


async def test_two_connections_make_exactly_the_rows_of_one(db, settings, framework):
    await build_world(settings, db, framework, today=TODAY)
    one = await plan_year(db, settings, framework, connections=1)
    expected = await rows_of(db)
    assert one.inserted > 1000
    async with db.session() as session:
        await session.exec(delete(Occurrence))
        await session.commit()

    seen: list[tuple[int, int]] = []
    two = await plan_year(
        db, settings, framework, 2, lambda done, total: seen.append((done, total))
    )

    assert await rows_of(db) == expected
    assert two.inserted == len(expected) == await count_all(db)
    assert {k: v for k, v in two.per_task.items() if v} == Counter(row[0] for row in expected)
    assert seen and seen[-1][0] == seen[-1][1]  # the progress bar reaches its end
    again = await plan_year(db, settings, framework, connections=2)
    assert again.inserted == 0 and await count_all(db) == len(expected)


async def test_two_connections_fill_in_a_period_half_planned(db, settings, framework):
    await build_world(settings, db, framework, today=TODAY)
    await plan_year(db, settings, framework, connections=1)
    expected = await rows_of(db)
    async with db.session() as session:
        task_key, period = (
            await session.exec(
                select(Occurrence.task_key, Occurrence.period)
                .group_by(Occurrence.task_key, Occurrence.period)
                .order_by(func.count().desc())
            )
        ).first()
        unit_ids = (
            await session.exec(
                select(Occurrence.unit_id)
                .where(Occurrence.task_key == task_key, Occurrence.period == period)
                .order_by(Occurrence.unit_id)
            )
        ).all()
        gone = unit_ids[::2]  # every other unit: both connections' slices have a gap
        await session.exec(
            delete(Occurrence).where(
                Occurrence.task_key == task_key,
                Occurrence.period == period,
                Occurrence.unit_id.in_(gone),
            )
        )
        await session.commit()
    assert len(unit_ids) > 2

    report = await plan_year(db, settings, framework, connections=2)

    assert report.inserted == len(gone)
    assert {k: v for k, v in report.per_task.items() if v} == {task_key: len(gone)}
    assert await rows_of(db) == expected


async def test_side_by_side_rows_are_committed_by_their_own_connections(db, settings, framework):
    """PostgreSQL: the rows outlive a rollback of the caller's transaction (like commit_each).
    SQLite: one writer, the caller's transaction, so a rollback takes them back."""
    await build_world(settings, db, framework, today=TODAY)
    before = await count_all(db)
    async with db.session() as session:
        report = await plan(session, framework, settings, TODAY, UNTIL, connections=2)
        await session.rollback()
    assert report.inserted > 0
    assert await count_all(db) == (before if db.is_sqlite else before + report.inserted)


async def test_a_period_planned_meanwhile_by_another_plan_gets_only_its_missing_rows(
    db, settings, framework
):
    """The count said (task, period) had no row, so the insert goes without ON CONFLICT; a
    concurrent plan inserted some meanwhile: the attempt is taken back, the rest inserted."""
    await build_world(settings, db, framework, today=TODAY)
    async with db.session() as session:
        task_key, period_key, window_start, due_at = (
            await session.exec(
                select(
                    Occurrence.task_key,
                    Occurrence.period,
                    Occurrence.window_start,
                    Occurrence.due_at,
                ).order_by(func.length(Occurrence.period), Occurrence.id)
            )
        ).first()
        unit_ids = sorted(
            (
                await session.exec(
                    select(Occurrence.unit_id).where(
                        Occurrence.task_key == task_key, Occurrence.period == period_key
                    )
                )
            ).all()
        )
        await session.exec(
            delete(Occurrence).where(
                Occurrence.task_key == task_key,
                Occurrence.period == period_key,
                Occurrence.unit_id.in_(unit_ids[1:]),
            )
        )
        await session.commit()
        period = Period(period_key, window_start.date(), due_at.date())

        added = await _plan_period(
            session, task_key, period, unit_ids, settings, utcnow(), fresh=True
        )
        await session.commit()

    assert len(unit_ids) > 1 and added == len(unit_ids) - 1
    async with db.session() as session:
        found = (
            await session.exec(
                select(Occurrence.unit_id).where(
                    Occurrence.task_key == task_key, Occurrence.period == period_key
                )
            )
        ).all()
    assert sorted(found) == unit_ids
