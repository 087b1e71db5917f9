"""A reminder listing several tasks is answered with "✅ All done" plus the exceptions."""

from sqlmodel import select

from bot.core.messages import Kind
from bot.core.models import Occurrence, OccurrenceStatus, Report
from scheduler.commands import run_sweep
from tests.helpers.chat_person import Person
from tests.helpers.scheduler_world import T1, T2, at, build_scheduler_world


async def test_a_village_head_answers_a_reminder_with_all_done_after_the_exception(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework, tasks=(T1, T2))
    head = await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    await run_sweep(world.app, at(18, 8))
    (reminder,) = [r for r in await world.outbox() if r.user_id == head.id]
    first = [b["data"] for row in reminder.payload["buttons"] for b in row][0]
    assert first == "all:20261118"
    info, clubs = await world.occurrence(T1, "thon_mot"), await world.occurrence(T2, "thon_mot")
    person = Person(world, "1001")

    # The exception first, on its own buttons: the clubs cannot be introduced this month.
    await person.send(kind=Kind.button, data=f"cant:{clubs.id}")
    await person.send(kind=Kind.text, text="Chưa có câu lạc bộ nào")
    seen = (await world.outbox())[-1].id
    await person.send(kind=Kind.button, data=first)
    (confirm,) = [r for r in await world.outbox(seen) if r.user_id == head.id]
    assert world.app.framework.tasks[T1].title in confirm.payload["text"]
    assert world.app.framework.tasks[T2].title not in confirm.payload["text"]
    yes = confirm.payload["buttons"][0][0]["data"]
    assert yes == "allok:20261118"
    await person.send(kind=Kind.button, data=yes)

    async with db.session() as session:
        statuses = {
            o.id: o.status
            for o in (await session.exec(select(Occurrence))).all()
            if o.unit_id == info.unit_id
        }
        reports = {(r.occurrence_id, r.kind) for r in (await session.exec(select(Report))).all()}
    assert statuses[info.id] == OccurrenceStatus.done
    # "Cannot do" is a request the commune decides: it stays open, and "all done" left it out.
    assert statuses[clubs.id] == OccurrenceStatus.open
    assert reports == {(info.id, "done"), (clubs.id, "cannot")}

    # Tapped again (a second device, a redelivered tap): nothing more is recorded.
    await person.send(kind=Kind.button, data=yes)
    async with db.session() as session:
        assert len((await session.exec(select(Report))).all()) == 2


async def test_all_done_covers_only_what_was_reminded_to_that_person_that_day(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework, tasks=(T1, T2))
    await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    await world.person("head_hai", "thon_hai", "village_head", "telegram", "1002")
    await run_sweep(world.app, at(18, 8))
    person = Person(world, "1001")
    await person.send(kind=Kind.button, data="all:20261117")  # a day with no reminder
    await person.send(kind=Kind.button, data="allok:20261118")
    async with db.session() as session:
        done = {
            (o.unit_id, o.task_key)
            for o in (await session.exec(select(Occurrence))).all()
            if o.status == OccurrenceStatus.done
        }
    mot, hai = world.units["thon_mot"].id, world.units["thon_hai"].id
    assert done == {(mot, T1), (mot, T2)}
    assert not {(hai, T1), (hai, T2)} & done
