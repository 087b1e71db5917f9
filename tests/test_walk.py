"""A reminder's tasks answered one at a time (handlers/walk.py): each card done with its
photos, more time, cannot do, skipped; the summary says what is answered and what is open."""

import io
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from PIL import Image
from sqlmodel import col, select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.i18n import translator
from bot.core.messages import Incoming, IncomingFile, Kind
from bot.core.models import (
    AuditLog,
    Evidence,
    Occurrence,
    OccurrenceStatus,
    Outbox,
    Reminder,
    Report,
    TaskDefinition,
    User,
)
from bot.core.services.outbox import notify_user
from bot.core.timeutil import from_db
from handlers.router import Dispatcher
from scheduler.commands import run_sweep
from scheduler.policy import Stage, load_policies
from scheduler.reminders import Item, Letter, compose
from tests.helpers.drivers import CHANNELS, ChannelDriver, make_driver
from tests.helpers.scheduler_world import T1, T2, T3, T4, at, build_scheduler_world
from tests.test_journeys import VILLAGE_HEAD, buttons, register

vi = translator("vi")
DAY = "20261118"  # the D−7 reminder of the tasks due on 25/11/2026


def jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Person:
    """Someone on Telegram, through the real dispatcher; `last` is the newest reply."""

    def __init__(self, world, chat: str) -> None:
        self.world = world
        self.dispatcher = Dispatcher(world.app)
        self.chat = chat
        self.serial = 0

    async def send(self, **fields) -> None:
        self.serial += 1
        await self.dispatcher.handle(
            Incoming(
                channel="telegram", external_id=self.chat, update_id=str(self.serial), **fields
            )
        )

    async def tap(self, data: str) -> None:
        await self.send(kind=Kind.button, data=data)

    async def say(self, text: str) -> None:
        await self.send(kind=Kind.text, text=text)

    async def photo(self, data: bytes) -> None:
        async def fetch() -> bytes:
            return data

        file = IncomingFile(file_name="a.jpg", mime="image/jpeg", size=len(data), fetch=fetch)
        await self.send(kind=Kind.photo, file=file)

    async def replies(self) -> list[Outbox]:
        async with self.world.db.session() as session:
            rows = await session.exec(
                select(Outbox).where(Outbox.external_id == self.chat).order_by(Outbox.id)
            )
            return list(rows.all())

    async def last(self) -> Outbox:
        return (await self.replies())[-1]


def payloads(row: Outbox) -> list[str]:
    return [b["data"] for line in row.payload.get("buttons", []) for b in line]


async def statuses(world) -> dict[int, str]:
    async with world.db.session() as session:
        return {o.id: o.status for o in (await session.exec(select(Occurrence))).all()}


async def reports(world) -> list[Report]:
    async with world.db.session() as session:
        return list((await session.exec(select(Report).order_by(Report.id))).all())


async def test_a_commune_officer_answers_each_task_of_a_reminder_on_its_own(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework, tasks=(T1, T2, T3, T4))
    await world.person("officer_an", "xa_an", "commune_committee", "telegram", "3001")
    await run_sweep(world.app, at(18, 8))
    person = Person(world, "3001")
    # The commune's own tasks come in their reminder; its villages' late tasks in a notice apart.
    (reminder,) = [m for m in await person.replies() if f"one:{DAY}" in payloads(m)]
    assert payloads(reminder)[:2] == [f"all:{DAY}", f"one:{DAY}"]
    tasks = world.app.framework.tasks

    await person.tap(f"one:{DAY}")
    first = await person.last()
    data = payloads(first)
    occ_first = int(data[0].split(":")[2])
    assert data == [f"{action}:{DAY}:{occ_first}" for action in ("wkd", "wke", "wkc", "wks")] + [
        f"wkq:{DAY}"
    ]
    assert len(data) <= 5  # Zalo OA shows them as buttons
    officer = world.users["officer_an"]
    total = len([r for r in await world.reminders() if officer.id in r.user_ids])
    assert total == 4  # all four, also those the reminder only counted for lack of room
    assert (
        vi("Task {number} of {total}: [{dimension}] {title}")
        .split(":")[0]
        .format(number=1, total=total)
        in first.payload["text"]
    )

    # 1: two photos while the card shows, then ✅: one report with both, and the next card.
    await person.photo(jpeg((200, 30, 30)))
    after_photo = await person.last()
    assert f"wkd:{DAY}:{occ_first}" in payloads(after_photo)
    await person.photo(jpeg((30, 30, 200)))
    await person.tap(f"wkd:{DAY}:{occ_first}")
    second = await person.last()
    occ_second = int(payloads(second)[0].split(":")[2])
    assert occ_second != occ_first
    assert (await statuses(world))[occ_first] == OccurrenceStatus.done
    (filed,) = [r for r in await reports(world) if r.occurrence_id == occ_first]
    assert (filed.kind, filed.status) == ("done", "submitted")
    async with db.session() as session:
        kept = (await session.exec(select(Evidence).where(Evidence.report_id == filed.id))).all()
    assert len(kept) == 2

    # 2: more time, +7 days and a reason; the next card follows the request.
    await person.tap(f"wke:{DAY}:{occ_second}")
    await person.tap(f"wkx:{DAY}:{occ_second}:7")
    await person.say("Chờ họp Ban Thường vụ")
    third = await person.last()
    occ_third = int(payloads(third)[0].split(":")[2])
    assert occ_third not in (occ_first, occ_second)

    # 3: a word it cannot read changes nothing and shows the same card's answers again.
    before = len(await reports(world))
    await person.say("để mai tính")
    assert payloads(await person.last()) == payloads(third)
    assert len(await reports(world)) == before

    # 3: cannot do, with its reason typed; 4: skipped by typing "bỏ qua".
    await person.tap(f"wkc:{DAY}:{occ_third}")
    await person.say("Chưa có kinh phí")
    fourth = await person.last()
    occ_fourth = int(payloads(fourth)[0].split(":")[2])
    await person.say("bỏ qua")

    summary = await person.last()
    text = summary.payload["text"]
    assert vi("✅ Done: {count}").format(count=1) in text
    assert vi("⏰ More time asked, waiting for the answer: {count}").format(count=1) in text
    assert vi("❌ Cannot do, waiting for the answer: {count}").format(count=1) in text
    assert vi("⏳ Still open: {count}").format(count=1) in text
    title = tasks[next(o for o in (await occurrences(world)) if o.id == occ_fourth).task_key]
    assert title.title in text
    assert payloads(summary) == [f"one:{DAY}", f"all:{DAY}"]

    kinds = {(r.occurrence_id, r.kind, r.status) for r in await reports(world)}
    assert (occ_second, "extension", "submitted") in kinds
    assert (occ_third, "cannot", "submitted") in kinds
    assert not [r for r in await reports(world) if r.status == "draft"]  # none left half-made
    now = await statuses(world)
    assert [now[o] for o in (occ_second, occ_third, occ_fourth)] == ["open"] * 3

    # Again: only the skipped one is left; "all done" now covers just that one.
    await person.tap(f"one:{DAY}")
    assert payloads(await person.last())[0] == f"wkd:{DAY}:{occ_fourth}"
    await person.tap(f"wkq:{DAY}")
    await person.tap(f"allok:{DAY}")
    assert (await statuses(world))[occ_fourth] == OccurrenceStatus.done
    assert (await statuses(world))[occ_second] == OccurrenceStatus.open


async def occurrences(world) -> list[Occurrence]:
    async with world.db.session() as session:
        return list((await session.exec(select(Occurrence))).all())


async def test_walk_buttons_that_cannot_be_read_change_nothing(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework, tasks=(T1, T2))
    await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    await run_sweep(world.app, at(18, 8))
    person = Person(world, "1001")
    async with db.session() as session:
        audits = len((await session.exec(select(AuditLog))).all())
    for data in ("one:x", "wkd:2026:1", "wkd:20261118", "wks:20261118:abc", "wkq:", "wkx:1:2"):
        await person.tap(data)
        reply = await person.last()
        assert reply.payload["text"], data
        assert "menu:viec" in payloads(reply), data  # the way forward
    assert not await reports(world)
    assert set((await statuses(world)).values()) == {"open"}
    async with db.session() as session:
        assert len((await session.exec(select(AuditLog))).all()) >= audits


async def test_a_walk_tapped_on_a_day_without_reminders_says_so(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework, tasks=(T1, T2))
    await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    await run_sweep(world.app, at(18, 8))
    person = Person(world, "1001")
    await person.tap("one:20261117")
    reply = await person.last()
    assert reply.payload["text"] == vi(
        "Nothing from that reminder is still open. Type /viec to see your tasks."
    )
    assert not await reports(world)


async def test_the_walk_goes_on_with_what_is_due_later_that_month(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework, tasks=(T1, T2))
    await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    await run_sweep(world.app, at(18, 8))
    reminded, later = await world.occurrence(T1, "thon_mot"), await world.occurrence(T2, "thon_mot")
    async with db.session() as session:  # as if T2 came due after the next reminder
        for row in (await session.exec(select(Reminder))).all():
            if row.occurrence_id == later.id:
                await session.delete(row)
        await session.commit()
    person = Person(world, "1001")
    await person.tap(f"one:{DAY}")
    assert payloads(await person.last())[0] == f"wkd:{DAY}:{reminded.id}"
    await person.tap(f"wkd:{DAY}:{reminded.id}")
    assert payloads(await person.last())[0] == f"wkd:{DAY}:{later.id}"
    await person.tap(f"wks:{DAY}:{later.id}")
    # Still open, but not on the reminder: "all done" (which covers the reminder's) is not offered.
    assert payloads(await person.last()) == [f"one:{DAY}"]


# --------------------------------------------------------------------------- every channel


@pytest.fixture(params=CHANNELS)
async def driver(
    request: pytest.FixtureRequest, settings: Settings, db: Database, framework: Framework
) -> AsyncIterator[ChannelDriver]:
    async with make_driver(request.param, settings, db, framework) as channel_driver:
        yield channel_driver


async def remind(d: ChannelDriver, user: User, count: int) -> tuple[str, list[int]]:
    """The reminder the sweep sends, for `count` of the person's open tasks, as of now: its
    `reminders` rows and its message (scheduler/reminders.compose). Returns the day and the
    occurrences in the message's order."""
    app = d.world.app
    policies = load_policies(app.settings)
    now = datetime.now(app.settings.tz)
    async with d.world.db.session() as session:
        rows = await session.exec(
            select(Occurrence, TaskDefinition)
            .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
            .where(Occurrence.unit_id == user.unit_id, Occurrence.status == "open")
            .order_by(col(Occurrence.due_at), col(Occurrence.id))
        )
        chosen = list(rows.all())[:count]
        assert len(chosen) == count, "the journey world gives a village several open tasks"
        items = []
        for occurrence, task in chosen:
            due = from_db(occurrence.due_at).astimezone(app.settings.tz).date()
            stage = Stage(name="before-7", due_day=due, moment=now)
            items.append(Item(occurrence, task, stage))
            session.add(Reminder(occurrence_id=occurrence.id, stage=stage.key, user_ids=[user.id]))
        letter = Letter(user=await session.get(User, user.id), items=items)
        await notify_user(session, letter.user, compose(app, policies, letter, now), "remind:t")
        await session.commit()
    await d.flush()
    ordered = sorted(items, key=lambda i: (i.stage.due_day, i.task.title, i.occurrence.id))
    return f"{now:%Y%m%d}", [item.occurrence.id for item in ordered]


async def test_one_at_a_time_on_every_channel(driver: ChannelDriver) -> None:
    d = driver
    head = await register(d, "head", d.world.villages[0], VILLAGE_HEAD)
    day, (first, second, third) = await remind(d, head, 3)
    assert f"one:{day}" in (await d.messages("head"))[-1].buttons

    await d.tap("head", f"one:{day}")
    assert (await d.messages("head"))[-1].buttons[0] == f"wkd:{day}:{first}"
    await d.photo("head", jpeg((200, 30, 30)))
    await d.tap("head", f"wkd:{day}:{first}")  # Zalo Bot: the number the photo's answer shows
    assert (await d.messages("head"))[-1].buttons[0] == f"wkd:{day}:{second}"
    await d.say("head", "bỏ qua")  # typed, as on a channel without buttons
    assert (await d.messages("head"))[-1].buttons[0] == f"wkd:{day}:{third}"
    await d.tap("head", f"wkc:{day}:{third}")
    await d.say("head", "Thôn chưa có hội nhóm nào")
    # The rest of the same period follows (due later, not reminded yet); stopped here.
    if buttons((await d.messages("head"))[-1:], "wkq:"):
        await d.tap("head", f"wkq:{day}")

    summary = (await d.messages("head"))[-1]
    assert summary.buttons == [f"one:{day}", f"all:{day}"]
    async with d.world.db.session() as session:
        status = {o: (await session.get(Occurrence, o)).status for o in (first, second, third)}
        made = (await session.exec(select(Report).where(Report.user_id == head.id))).all()
        photos = (await session.exec(select(Evidence))).all()
    assert status == {first: "done", second: "open", third: "open"}
    kept = {(r.occurrence_id, r.kind, r.status) for r in made if r.status != "cancelled"}
    assert kept == {(first, "done", "submitted"), (third, "cannot", "submitted")}
    (done,) = [r for r in made if r.occurrence_id == first and r.status == "submitted"]
    assert [p.report_id for p in photos] == [done.id]
