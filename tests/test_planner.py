"""The planner: one occurrence per (task, unit, period), idempotent, events, on-request never."""

from collections import Counter
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlmodel import SQLModel, func, select

from bot.core.db import Database
from bot.core.models import Event, Occurrence, Unit
from scheduler.planner import _counts_query, plan
from tests.helpers.world import build_world

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


async def occurrences_of(db, unit_id: int) -> list[Occurrence]:
    async with db.session() as session:
        return list(
            (await session.exec(select(Occurrence).where(Occurrence.unit_id == unit_id))).all()
        )


async def count_all(db) -> int:
    async with db.session() as session:
        return (await session.exec(select(func.count()).select_from(Occurrence))).one()


def local(moment: datetime) -> datetime:
    return moment.astimezone(HCM)


async def test_a_commune_gets_its_year_of_occurrences(db, settings, framework):
    world = await build_world(settings, db, framework, today=date(2027, 1, 1))
    async with db.session() as session:
        await plan(session, framework, settings, date(2027, 1, 1), until=date(2027, 12, 31))
        await session.commit()
    rows = await occurrences_of(db, world.commune.id)
    per_task = Counter(row.task_key for row in rows)

    # Monthly commune tasks: twelve periods, each due on the 25th at 17:00 local time, or the
    # working day before (Saturday 25/12/2027 → Friday 24/12).
    assert per_task["cong-khai-viec-quan-trong-de-dan-ban"] == 12
    monthly = sorted(
        local(r.due_at) for r in rows if r.task_key == "cong-khai-viec-quan-trong-de-dan-ban"
    )
    assert monthly[0] == datetime(2027, 1, 25, 17, 0, tzinfo=HCM)
    assert monthly[-1] == datetime(2027, 12, 24, 17, 0, tzinfo=HCM)
    assert {m.day for m in monthly} <= {23, 24, 25}
    # Ongoing commune work other than informing the villages is reported quarterly.
    assert per_task["thanh-tra-ngan-sach-cong-quy"] == 4

    # Dialogue with citizens "at least twice a year": 15 June and 15 December.
    dialogue = sorted(
        (r.period, local(r.due_at)) for r in rows if r.task_key == "doi-thoai-voi-nhan-dan"
    )
    assert dialogue == [
        ("2027-H1", datetime(2027, 6, 15, 17, 0, tzinfo=HCM)),
        ("2027-H2", datetime(2027, 12, 15, 17, 0, tzinfo=HCM)),
    ]
    # The commune budget is disclosed "as regulated": after the estimate and the settlement.
    assert sorted(r.period for r in rows if r.task_key == "cong-khai-ngan-sach-xa") == [
        "2027-H1",
        "2027-H2",
    ]

    # Nothing event-driven or on-request without an event or a request.
    for key in (
        "cong-khai-danh-sach-ho-ngheo",
        "tuyen-truyen-bau-cu",
        "trich-luc-trich-do-dia-chinh-truc-tuyen",
    ):
        assert per_task[key] == 0

    # Every periodic task with a commune-level executor is there, and nothing else.
    def at_commune(role: str) -> bool:
        return not role.startswith("province_agency:") and framework.role_level(role) == "commune"

    expected = {
        task.key
        for task in framework.tasks.values()
        if framework.rule_for(task, "commune").kind == "periodic"
        and any(map(at_commune, task.roles))
    }
    assert set(per_task) == expected
    # On request, with a periodic check of its proactive part (review E10).
    assert per_task["ho-tro-nop-ho-so-truc-tuyen"] == 4


async def test_a_village_gets_the_village_head_tasks(db, settings, framework):
    world = await build_world(settings, db, framework, today=date(2027, 1, 1))
    async with db.session() as session:
        await plan(session, framework, settings, date(2027, 1, 1), until=date(2027, 12, 31))
        await session.commit()
    rows = await occurrences_of(db, world.villages[0].id)
    keys = {row.task_key for row in rows}
    village_tasks = {
        t.key
        for t in framework.tasks_for_role("village_head")
        if framework.schedules[t.schedule].kind == "periodic"
    }
    assert keys == village_tasks
    assert "doi-thoai-voi-nhan-dan" in keys  # the village head joins the twice-yearly dialogue


async def test_planning_twice_inserts_nothing_the_second_time(db, settings, framework):
    await build_world(settings, db, framework, today=date(2026, 11, 27))
    first = await count_all(db)
    assert first > 1000
    async with db.session() as session:
        report = await plan(session, framework, settings, date(2026, 11, 27))
        await session.commit()
    assert report.inserted == 0
    assert await count_all(db) == first


async def test_planning_later_adds_only_the_new_periods(db, settings, framework):
    world = await build_world(settings, db, framework, today=date(2026, 11, 27))
    before = {(o.task_key, o.period) for o in await occurrences_of(db, world.commune.id)}
    async with db.session() as session:
        await plan(session, framework, settings, date(2026, 12, 27))
        await session.commit()
    after = {(o.task_key, o.period) for o in await occurrences_of(db, world.commune.id)}
    new_periods = {period for _key, period in after - before}
    assert before <= after
    assert "2027-02" in new_periods and "2026-12" not in new_periods


async def test_a_unit_with_nobody_registered_still_gets_occurrences(db, settings, framework):
    world = await build_world(settings, db, framework, today=date(2026, 11, 27))
    assert world.users == {}
    assert await occurrences_of(db, world.villages[-1].id)


async def _declare(db, settings, framework, unit_id: int, kind: str) -> Event:
    async with db.session() as session:
        event = Event(
            unit_id=unit_id, kind=kind, starts_on=date(2027, 3, 14), ends_on=date(2027, 3, 14)
        )
        session.add(event)
        await session.commit()
        report = await plan(session, framework, settings, date(2026, 11, 27))
        await session.commit()
        again = await plan(session, framework, settings, date(2026, 11, 27))
        await session.commit()
    assert report.events_planned == 1 and again.inserted == 0
    return event


async def test_a_village_head_election_starts_its_tasks_in_the_commune_and_its_villages(
    db, settings, framework
):
    world = await build_world(settings, db, framework, today=date(2026, 11, 27))
    event = await _declare(db, settings, framework, world.commune.id, "village_head_election")
    village_rows = [
        o for o in await occurrences_of(db, world.villages[0].id) if o.event_id == event.id
    ]
    periods = {o.period for o in village_rows if o.task_key == "to-chuc-bau-truong-thon"}
    assert periods == {
        f"village_head_election:{event.id}:{phase.key}"
        for phase in framework.schedules["election_full"].phases
    }
    assert {o.task_key for o in village_rows} == {"to-chuc-bau-truong-thon", "tuyen-truyen-bau-cu"}
    async with db.session() as session:
        other_commune = (
            await session.exec(
                select(Unit).where(Unit.level == "commune", Unit.id != world.commune.id)
            )
        ).first()
    assert not [o for o in await occurrences_of(db, other_commune.id) if o.event_id == event.id]


async def test_a_national_assembly_election_creates_no_village_head_election_task(
    db, settings, framework
):
    world = await build_world(settings, db, framework, today=date(2026, 11, 27))
    event = await _declare(db, settings, framework, world.commune.id, "election")
    async with db.session() as session:
        rows = (await session.exec(select(Occurrence).where(Occurrence.event_id == event.id))).all()
    assert rows and {o.task_key for o in rows} == {"tuyen-truyen-bau-cu"}
    # Propaganda before the election and on its day (a Sunday, kept as declared).
    assert {o.period.rsplit(":", 1)[1] for o in rows} == {"truoc", "trong"}
    on_the_day = [o for o in rows if o.period.endswith(":trong")]
    assert {local(o.due_at).date() for o in on_the_day} == {date(2027, 3, 14)}


async def test_public_works_tasks_get_only_the_phases_their_text_implies(db, settings, framework):
    world = await build_world(settings, db, framework, today=date(2026, 11, 27))
    event = await _declare(db, settings, framework, world.commune.id, "public_works")
    async with db.session() as session:
        rows = (await session.exec(select(Occurrence).where(Occurrence.event_id == event.id))).all()
    phases: dict[str, set[str]] = {}
    for o in rows:
        phases.setdefault(o.task_key, set()).add(o.period.rsplit(":", 1)[1])
    assert phases["cong-khai-cong-trinh-can-dan-dong-gop"] == {"truoc"}  # seed line 64
    assert phases["lay-y-kien-cong-khai-dong-gop-tu-nguyen"] == {"truoc", "trong", "sau"}
    assert phases["giam-sat-thi-cong-cong-trinh-cong-cong"] == {"trong", "sau"}  # seed line 67
    assert "nang-cap-duong-xa" not in phases


async def test_road_upgrades_start_only_when_a_project_is_funded(db, settings, framework):
    world = await build_world(settings, db, framework, today=date(2026, 11, 27))
    before = [o for o in await occurrences_of(db, world.commune.id)]
    assert not [o for o in before if o.task_key == "nang-cap-duong-xa"]
    event = await _declare(db, settings, framework, world.commune.id, "funded_project")
    rows = [o for o in await occurrences_of(db, world.commune.id) if o.event_id == event.id]
    assert {o.task_key for o in rows} == {"nang-cap-duong-xa"}
    assert {o.period.rsplit(":", 1)[1] for o in rows} == {"trong", "sau"}


async def test_due_times_are_the_end_of_the_office_day(db, settings, framework):
    world = await build_world(settings, db, framework, today=date(2026, 11, 27))
    for occurrence in await occurrences_of(db, world.commune.id):
        assert local(occurrence.due_at).time() == time(17, 0)
        assert local(occurrence.window_start).time() == time(0, 0)


async def test_the_window_count_reads_only_the_unique_keys_prefix(settings):
    """The count that lets a second plan skip its work reads (period, task_key) index entries,
    never the table: the unique key must keep period and task_key first."""
    db = Database(settings.effective_database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
        query = _counts_query({"2026-12", "2027-01"}).compile(
            connection.sync_connection, compile_kwargs={"literal_binds": True}
        )
        steps = (await connection.execute(text(f"EXPLAIN QUERY PLAN {query}"))).all()
    await db.dispose()
    assert [step[-1] for step in steps] == [
        "SEARCH occurrences USING COVERING INDEX uq_occurrences_period_task_unit (period=?)"
    ]
