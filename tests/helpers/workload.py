"""A year of the shipped rules for one commune: what its committee and a village head receive.

One district, one commune with three villages, every task of the framework; the scheduler runs
as deployed (the plan on the 1st of each month, a sweep at the reminder time every day). Two
ways of answering: promptly (each reminder answered at once through the real dispatcher, see
`Answerer`) and never. Counted per person: messages, the most in one day, the longest message, the tasks to
report each month and the taps that takes.

    python -m tests.helpers.workload [FRAMEWORK_DIR [YEAR [STRUCTURE …]]]   # the README table
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import time_machine
from PIL import Image
from sqlmodel import SQLModel, col, select

from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.framework.loader import load_framework
from bot.core.messages import Incoming, IncomingFile, Kind
from bot.core.models import (
    Escalation,
    Occurrence,
    Outbox,
    Reminder,
    TaskDefinition,
    Unit,
    User,
)
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.services.occurrences import LATE_STATUSES
from bot.core.services.people import add_user, link_identity
from bot.core.task_text import asks_for_photo
from bot.core.timeutil import from_db, to_db
from handlers.router import Dispatcher
from scheduler.commands import run_plan, run_sweep
from scheduler.policy import load_policies

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
# Reporting one task done without a photo: ✅ Done → ➡️ Continue → Skip → ✅ Send report
# (handlers/report.py). A photo adds the picture and nothing else.
TAPS_PER_REPORT = 4

UNITS = [
    # code, name, level, parent code
    ("56", "Tỉnh Khánh Hòa", "province", None),
    ("570", "Huyện Diên Khánh", "district", "56"),
    ("22480", "Xã Diên An", "commune", "570"),
    ("22480-01", "Thôn Một", "village", "22480"),
    ("22480-02", "Thôn Hai", "village", "22480"),
    ("22480-03", "Thôn Ba", "village", "22480"),
    ("so-noi-vu", "Sở Nội vụ", "agency", "56"),
    ("so-thong-tin-va-truyen-thong", "Sở Thông tin và Truyền thông", "agency", "56"),
]
PEOPLE = [
    # key, unit code, role
    ("commune", "22480", "commune_committee"),
    ("village", "22480-01", "village_head"),
    ("village2", "22480-02", "village_head"),
    ("village3", "22480-03", "village_head"),
    ("district", "570", "district_committee"),
]
MEASURED = ("commune", "village")


def own_tasks(row: Outbox) -> bool:
    """A reminder of the person's own tasks (its answers' buttons), not the news apart of
    what was escalated to them (a village's late task, with "report on its behalf")."""
    buttons = [b["data"] for line in row.payload.get("buttons", []) for b in line]
    return any(data.split(":", 1)[0] in OWN_ANSWERS for data in buttons)


OWN_ANSWERS = {"done", "photo", "ext", "cant", "all", "one"}


@dataclass
class Load:
    messages: int = 0  # reminders of the person's own tasks
    notices: int = 0  # messages apart: what was escalated to the person (villages' late tasks)
    busiest_day: int = 0  # reminders of own tasks on the day with the most
    longest: int = 0  # characters
    longest_text: str = ""
    per_month: Counter = field(default_factory=Counter)  # messages
    tasks_per_month: Counter = field(default_factory=Counter)  # distinct tasks reminded, by due
    taps_per_month: Counter = field(default_factory=Counter)  # answering promptly
    photos_per_month: Counter = field(default_factory=Counter)  # one at a time, with photos
    # Never answering: the person's occurrences past their supervisor step, and how many of
    # them the supervisor was told of (spacing the reminders must not hide a miss).
    missed: int = 0
    escalated: int = 0

    @property
    def max_month(self) -> int:
        return max(self.per_month.values(), default=0)

    @property
    def max_tasks(self) -> int:
        return max(self.tasks_per_month.values(), default=0)

    @property
    def max_photos(self) -> int:
        return max(self.photos_per_month.values(), default=0)

    @property
    def max_taps(self) -> int:
        """Answering promptly: the taps it took; never answering: what one report per task
        (✅ Done → Continue → Skip → Send) would take."""
        if self.taps_per_month:
            return max(self.taps_per_month.values())
        return TAPS_PER_REPORT * self.max_tasks


def two_tier(units: list[tuple], people: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """The same commune in the structure since July 2025: under the province, no district."""
    districts = {code for code, _name, level, _parent in units if level == "district"}
    province = next(code for code, _name, level, _parent in units if level == "province")
    units = [
        (code, name, level, province if parent in districts else parent)
        for code, name, level, parent in units
        if code not in districts
    ]
    return units, [person for person in people if person[1] not in districts]


async def _world(
    settings: Settings, framework: Framework, units: list[tuple], people: list[tuple]
) -> tuple[AppContext, dict[str, User]]:
    db = Database(settings.effective_database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    app = AppContext(settings=settings, db=db, framework=framework)
    users: dict[str, User] = {}
    async with db.session() as session:
        made: dict[str, Unit] = {}
        for code, name, level, parent in units:
            unit = Unit(
                code=code, name=name, level=level, parent_id=made[parent].id if parent else None
            )
            session.add(unit)
            await session.flush()
            made[code] = unit
        await sync_task_definitions(session, framework)
        for key, code, role in people:
            user = await add_user(session, made[code], role, key)
            await link_identity(session, user, "telegram", f"{key}-chat", key)
            users[key] = user
        await session.commit()
    return app, users


def _photo_file(serial: int) -> IncomingFile:
    """A small JPEG of its own colour (the same photo twice would be flagged as reused)."""
    buffer = io.BytesIO()
    colour = (serial * 37 % 256, serial * 91 % 256, serial * 53 % 256)
    Image.new("RGB", (64, 48), colour).save(buffer, format="JPEG")
    data = buffer.getvalue()

    async def fetch() -> bytes:
        return data

    return IncomingFile(file_name="photo.jpg", mime="image/jpeg", size=len(data), fetch=fetch)


class Answerer:
    """Plays each reminded person answering at once, through the real dispatcher: "✅ All done"
    and its confirmation under a message listing several tasks, "xong" and its confirmation
    under a message with one. Counts the taps (a typed "xong" counts as one).

    `one_at_a_time`: under a message listing several, "📋 One at a time" instead, then each
    card's ✅ after a photo when the task asks for one (handlers/walk.py); photos are counted
    apart from taps."""

    def __init__(
        self, app: AppContext, users: dict[str, User], one_at_a_time: bool = False
    ) -> None:
        self.app = app
        self.dispatcher = Dispatcher(app)
        self.users = users
        self.one_at_a_time = one_at_a_time
        self.taps: Counter = Counter()  # (person, month) → taps
        self.photos: Counter = Counter()  # (person, month) → photos sent
        self.serial = 0

    async def _last_reply(self, key: str) -> Outbox:
        async with self.app.db.session() as session:
            rows = await session.exec(
                select(Outbox)
                .where(Outbox.external_id == f"{key}-chat")
                .order_by(col(Outbox.id).desc())
                .limit(1)
            )
            return rows.one()

    async def _walk(self, key: str, month: int, start: str) -> None:
        """📋, then each card: a photo if its task asks for one, and ✅; until the summary."""
        await self._send(key, kind=Kind.button, data=start)
        self.taps[(key, month)] += 1
        while True:
            card = await self._last_reply(key)
            datas = [b["data"] for row in card.payload.get("buttons", []) for b in row]
            done = next((d for d in datas if d.startswith("wkd:")), None)
            if done is None:
                return  # the summary
            async with self.app.db.session() as session:
                occurrence = await session.get(Occurrence, int(done.split(":")[2]))
                task = await session.get(TaskDefinition, occurrence.task_key)
            if asks_for_photo(task):
                await self._send(key, kind=Kind.photo, file=_photo_file(self.serial))
                self.photos[(key, month)] += 1
            await self._send(key, kind=Kind.button, data=done)
            self.taps[(key, month)] += 1

    async def _send(self, key: str, **fields) -> None:
        self.serial += 1
        await self.dispatcher.handle(
            Incoming(
                channel="telegram",
                external_id=f"{key}-chat",
                update_id=f"load-{self.serial}",
                **fields,
            )
        )

    async def answer(self, key: str, month: int, message: Outbox) -> None:
        datas = [b["data"] for row in message.payload.get("buttons", []) for b in row]
        every = next((d for d in datas if d.startswith("all:")), None)
        one = next((d for d in datas if d.startswith("one:")), None)
        if one is not None and self.one_at_a_time:
            await self._walk(key, month, one)
            return
        if every is not None:
            await self._send(key, kind=Kind.button, data=every)
            await self._send(key, kind=Kind.button, data="allok:" + every.split(":", 1)[1])
        elif any(d.startswith("done:") for d in datas):
            done = next(d for d in datas if d.startswith("done:"))
            await self._send(key, kind=Kind.text, text="xong")
            await self._send(key, kind=Kind.button, data="qdone:" + done.split(":", 1)[1])
        else:
            return  # escalation news only: nothing to answer
        self.taps[(key, month)] += 2


async def simulate(
    framework: Framework,
    year: int,
    prompt: bool,
    base: Settings | None = None,
    structure: str = "three_tier",
    one_at_a_time: bool = False,
) -> dict[str, Load]:
    """`framework` as loaded for `structure` (load_framework(..., structure));
    `one_at_a_time`: answering promptly through "📋 One at a time" (see `Answerer`)."""
    units, people = (UNITS, PEOPLE) if structure == "three_tier" else two_tier(UNITS, PEOPLE)
    with tempfile.TemporaryDirectory() as folder:
        settings = (base or Settings(_env_file=None)).model_copy(
            update={
                "data_dir": Path(folder),
                "database_url": f"sqlite+aiosqlite:///{folder}/load.db",
                "structure": structure,
            }
        )
        app, users = await _world(settings, framework, units, people)
        send_at = time(8, 0)
        day = date(year, 1, 1)
        seen: dict[str, set[int]] = defaultdict(set)
        loads = {key: Load() for key in MEASURED}
        last_id = 0
        answerer = Answerer(app, users, one_at_a_time)
        while day.year == year:
            if day.day == 1:
                await run_plan(app, datetime.combine(day, time(0, 5), tzinfo=HCM))
            now = datetime.combine(day, send_at, tzinfo=HCM)
            await run_sweep(app, now)
            async with app.db.session() as session:
                rows = list(
                    (await session.exec(select(Outbox).where(col(Outbox.id) > last_id))).all()
                )
                today: Counter = Counter()
                letters: list[tuple[str, Outbox]] = []
                for row in rows:
                    last_id = max(last_id, row.id)
                    key = next((k for k in users if users[k].id == row.user_id), None)
                    if key is None or not row.idempotency_key.startswith("remind:"):
                        continue
                    letters.append((key, row))
                    if key not in MEASURED:
                        continue
                    load = loads[key]
                    text = row.payload.get("text", "")
                    if len(text) > load.longest:
                        load.longest, load.longest_text = len(text), text
                    if not own_tasks(row):
                        load.notices += 1  # news of others' late tasks, a message apart
                        continue
                    load.messages += 1
                    load.per_month[day.month] += 1
                    today[key] += 1
                for key, count in today.items():
                    loads[key].busiest_day = max(loads[key].busiest_day, count)
                reminded = await session.exec(
                    select(Reminder, Occurrence)
                    .join(Occurrence)
                    # queued: its message is in the outbox (no sender runs here); sent: accepted.
                    .where(
                        Reminder.created_at == to_db(now),
                        col(Reminder.outcome).in_(("queued", "sent")),
                    )
                )
                for reminder, occurrence in reminded.all():
                    for key in MEASURED:
                        if users[key].id in reminder.user_ids and occurrence.id not in seen[key]:
                            seen[key].add(occurrence.id)
                            due = from_db(occurrence.due_at).astimezone(HCM).date()
                            loads[key].tasks_per_month[due.month] += 1
            if prompt:
                # Answered a few minutes after the message came, on that day: the chat's own
                # clock decides which tasks' windows are open (the rest of a period).
                with time_machine.travel(now + timedelta(minutes=5), tick=True):
                    for key, row in letters:
                        await answerer.answer(key, day.month, row)
                async with app.db.session() as session:
                    last_id = max([last_id, *(await session.exec(select(Outbox.id))).all()])
            day += timedelta(days=1)
        for (key, month), taps in answerer.taps.items():
            if key in loads:
                loads[key].taps_per_month[month] = taps
        for (key, month), photos in answerer.photos.items():
            if key in loads:
                loads[key].photos_per_month[month] = photos
        await _count_misses(app, users, loads, datetime.combine(day, send_at, tzinfo=HCM))
        await app.db.dispose()
        return loads


async def _count_misses(
    app: AppContext, users: dict[str, User], loads: dict[str, Load], end: datetime
) -> None:
    policies = load_policies(app.settings)
    step = policies.escalation.step("supervisor")
    async with app.db.session() as session:
        for key, load in loads.items():
            rows = await session.exec(
                select(Occurrence).where(
                    Occurrence.unit_id == users[key].unit_id,
                    col(Occurrence.status).in_(LATE_STATUSES),
                )
            )
            late = [
                o.id
                for o in rows.all()
                if policies.step_moment(step, from_db(o.due_at).astimezone(HCM).date()) <= end
            ]
            told = await session.exec(
                select(Escalation.occurrence_id).where(
                    col(Escalation.occurrence_id).in_(late), Escalation.step == step.step
                )
            )
            load.missed, load.escalated = len(late), len(set(told.all()))


ANSWERS = {  # how the person answers → simulate()'s (prompt, one_at_a_time)
    "promptly": (True, False),
    "one at a time": (True, True),
    "never": (False, False),
}


def table(figures: dict[tuple[str, str, str], Load]) -> str:
    lines = [
        "| structure | who | answers | reminders a year | most a month | most a day "
        "| longest message | tasks a month (most) | taps a month (most) "
        "| photos a month (most) | news of others a year |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (structure, who, answers), load in figures.items():
        lines.append(
            f"| {structure} | {who} | {answers} | {load.messages} "
            f"| {load.max_month} "
            f"| {load.busiest_day} | {load.longest} | {load.max_tasks} | {load.max_taps} "
            f"| {load.max_photos} | {load.notices} |"
        )
    return "\n".join(lines)


async def _main(framework_dir: Path, year: int, structures: list[str]) -> None:
    base = Settings(_env_file=None, framework_dir=framework_dir)
    figures = {}
    for structure in structures:
        framework = load_framework(framework_dir, None, structure)
        for answers, (prompt, one_at_a_time) in ANSWERS.items():
            loads = await simulate(framework, year, prompt, base, structure, one_at_a_time)
            for who in MEASURED:
                figures[(structure, who, answers)] = loads[who]
    print(table(figures))


if __name__ == "__main__":
    import sys

    asyncio.run(
        _main(
            Path(sys.argv[1]) if len(sys.argv) > 1 else Settings(_env_file=None).framework_dir,
            int(sys.argv[2]) if len(sys.argv) > 2 else 2027,
            sys.argv[3:] or ["three_tier", "two_tier"],
        )
    )
