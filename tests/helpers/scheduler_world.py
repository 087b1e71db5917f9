"""A small scheduler world: one district, two communes, three villages, four monthly tasks.

Huyện Diên Khánh with Xã An (Thôn Một, whose head reports; Thôn Hai, whose head never does) and
Xã Bình (Thôn Ba, where nobody is registered); tasks due on Wednesday 25 November 2026 at 17:00.
Under the two-tier structure (`settings.structure`, since July 2025) there is no district: Xã An
and Phường Bình sit under the province, whose committee supervises them (the person keyed
"district" is then the province committee's officer).
`drive` runs the scheduler with explicit moments and collects what each person received.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import time_machine
from PIL import Image, ImageColor
from sqlmodel import col, select

from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import Escalation, Occurrence, Outbox, Reminder, Unit, User
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.services.occurrences import mark_done
from bot.core.services.people import add_user, link_identity
from scheduler.charts import BAR_COLOR, EXCUSED_COLOR, OVERDUE_COLOR, TRACK_COLOR
from scheduler.commands import run_digest, run_plan, run_sweep

HCM = ZoneInfo("Asia/Ho_Chi_Minh")

# Two village tasks (also done by the communes), one commune task, one district-and-commune task
# supervised by a provincial agency.
T1 = "thong-tin-tuyen-truyen-chinh-sach-den-nguoi-dan"
T2 = "gioi-thieu-to-chuc-hoi-nhom"
T3 = "kien-toan-ban-thanh-tra-nhan-dan-giam-sat-cong-dong"
T4 = "thu-gom-xu-ly-rac-thai"
TASKS = (T1, T2, T3, T4)


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=HCM)


@dataclass
class SchedulerWorld:
    app: AppContext
    units: dict[str, Unit]
    users: dict[str, User] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.app.db

    async def person(
        self, key: str, unit: str, role: str, channel: str = "telegram", external_id: str = ""
    ) -> User:
        async with self.db.session() as session:
            user = await add_user(session, self.units[unit], role, key)
            if channel:
                await link_identity(session, user, channel, external_id or f"{key}-chat", key)
            await session.commit()
        self.users[key] = user
        return user

    async def occurrence(self, task: str, unit: str, period: str = "2026-11") -> Occurrence:
        async with self.db.session() as session:
            return (
                await session.exec(
                    select(Occurrence).where(
                        Occurrence.task_key == task,
                        Occurrence.unit_id == self.units[unit].id,
                        Occurrence.period == period,
                    )
                )
            ).one()

    async def report_done(self, who: str, unit: str, tasks: tuple[str, ...], now: datetime) -> None:
        """What the report journey does when the person taps ✅ and sends the photo."""
        with time_machine.travel(now, tick=False):
            async with self.db.session() as session:
                for task in tasks:
                    occurrence = await session.get(
                        Occurrence, (await self.occurrence(task, unit)).id
                    )
                    mark_done(occurrence, self.users[who])
                    session.add(occurrence)
                await session.commit()

    async def outbox(self, after_id: int = 0) -> list[Outbox]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(Outbox).where(col(Outbox.id) > after_id).order_by(col(Outbox.id))
            )
            return list(rows.all())

    async def reminders(self) -> list[Reminder]:
        async with self.db.session() as session:
            return list((await session.exec(select(Reminder).order_by(col(Reminder.id)))).all())

    async def escalations(self) -> list[Escalation]:
        async with self.db.session() as session:
            rows = await session.exec(select(Escalation).order_by(col(Escalation.id)))
            return list(rows.all())

    def user_name(self, user_id: int | None) -> str:
        return next((k for k, u in self.users.items() if u.id == user_id), f"#{user_id}")

    def unit_key(self, unit_id: int) -> str:
        return next(k for k, u in self.units.items() if u.id == unit_id)


UNITS = [
    # key, code, name, level, parent key
    ("province", "56", "Tỉnh Khánh Hòa", "province", None),
    ("district", "570", "Huyện Diên Khánh", "district", "province"),
    ("xa_an", "22480", "Xã An", "commune", "district"),
    ("xa_binh", "22483", "Xã Bình", "commune", "district"),
    ("thon_mot", "22480-01", "Thôn Một", "village", "xa_an"),
    ("thon_hai", "22480-02", "Thôn Hai", "village", "xa_an"),
    ("thon_ba", "22483-01", "Thôn Ba", "village", "xa_binh"),
    ("so_xay_dung", "so-xay-dung", "Sở Xây dựng", "agency", "province"),
    ("so_noi_vu", "so-noi-vu", "Sở Nội vụ", "agency", "province"),
]


# The 2025 tree: no district; the second commune is a ward, so its words are checked too.
UNITS_TWO_TIER = [
    ("province", "56", "Tỉnh Khánh Hòa", "province", None),
    ("xa_an", "22480", "Xã An", "commune", "province"),
    ("xa_binh", "22483", "Phường Bình", "commune", "province"),
    ("thon_mot", "22480-01", "Thôn Một", "village", "xa_an"),
    ("thon_hai", "22480-02", "Thôn Hai", "village", "xa_an"),
    ("thon_ba", "22483-01", "Thôn Ba", "village", "xa_binh"),
    ("so_xay_dung", "so-xay-dung", "Sở Xây dựng", "agency", "province"),
    ("so_noi_vu", "so-noi-vu", "Sở Nội vụ", "agency", "province"),
]


def two_tier(world: SchedulerWorld) -> bool:
    return world.app.settings.structure == "two_tier"


def supervisor_key(world: SchedulerWorld) -> str:
    """The unit that supervises the communes: the district, or (two-tier) the province."""
    return "province" if two_tier(world) else "district"


def subset(framework: Framework, keys: tuple[str, ...] = TASKS) -> Framework:
    """Only these tasks, each on its timing's own rule at every level (no cadence, no spread):
    the world is about the scheduler's mechanics, on four tasks due the same day each month."""
    schedules = {
        name: rule.model_copy(update={"cadence": {}}) for name, rule in framework.schedules.items()
    }
    tasks = {key: framework.tasks[key].model_copy(update={"cadence": {}}) for key in keys}
    return framework.model_copy(update={"tasks": tasks, "schedules": schedules})


async def build_scheduler_world(
    settings: Settings,
    db: Database,
    framework: Framework,
    plan_on: datetime = at(1, 0, 5),
    units: list[tuple] | None = None,
    tasks: tuple[str, ...] = TASKS,
) -> SchedulerWorld:
    """The units above (of the settings' structure), the four tasks, November planned;
    nobody registered yet."""
    if units is None:
        units = UNITS_TWO_TIER if settings.structure == "two_tier" else UNITS
    app = AppContext(settings=settings, db=db, framework=subset(framework, tasks))
    made: dict[str, Unit] = {}
    async with db.session() as session:
        for key, code, name, level, parent in units:
            unit = Unit(
                code=code, name=name, level=level, parent_id=made[parent].id if parent else None
            )
            session.add(unit)
            await session.flush()
            made[key] = unit
        await sync_task_definitions(session, app.framework)
        await session.commit()
    await run_plan(app, plan_on)
    return SchedulerWorld(app=app, units=made)


async def register_everyone_but_thon_ba(world: SchedulerWorld) -> None:
    await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    await world.person("head_hai", "thon_hai", "village_head", "zalo_bot", "2002")
    await world.person("officer_an", "xa_an", "commune_committee", "telegram", "3001")
    await world.person("officer_binh", "xa_binh", "commune_committee", "telegram", "3002")
    supervisor = supervisor_key(world)
    await world.person("district", supervisor, f"{supervisor}_committee", "telegram", "4001")
    await world.person("xay_dung", "so_xay_dung", "province_agency:so-xay-dung", "telegram", "5001")
    await world.person("noi_vu", "so_noi_vu", "province_agency:so-noi-vu", "telegram", "6001")


@dataclass
class Delivery:
    moment: datetime  # the scheduler tick that queued it
    row: Outbox

    @property
    def reminded_ids(self) -> set[int]:
        return {
            int(button["data"].split(":")[1])
            for line in self.row.payload.get("buttons", [])
            for button in line
            if button["data"].startswith("done:")
        }


Event = Callable[[SchedulerWorld, datetime], Awaitable[None]]
SWEEP_HOURS = {0, 3, *range(6, 23)}  # the night's sweeps must not send anything either


async def drive(
    world: SchedulerWorld,
    start: datetime,
    end: datetime,
    events: dict[datetime, Event] | None = None,
    skip: tuple[datetime, datetime] | None = None,
) -> list[Delivery]:
    """Tick the scheduler from `start` to `end`: a sweep on the hour (every hour of the day,
    a few of the night, to keep the test quick), digests at 07:30, the plan at 00:05.
    `skip` = (from, until): the scheduler is down in between."""
    events = events or {}
    ticks: set[datetime] = set()
    moment = start
    while moment <= end:
        if moment.hour in SWEEP_HOURS:
            ticks.add(moment)
        if moment.hour == 7:
            ticks.add(moment.replace(minute=30))
        if moment.hour == 0:
            ticks.add(moment.replace(minute=5))
        moment += timedelta(hours=1)
    ticks |= set(events)
    deliveries: list[Delivery] = []
    last_id = max((row.id for row in await world.outbox()), default=0)
    for tick in sorted(ticks):
        if tick in events:
            await events[tick](world, tick)
        if skip and skip[0] <= tick < skip[1]:
            continue
        if tick.minute == 5:
            await run_plan(world.app, tick)
        elif tick.minute == 30:
            await run_digest(world.app, tick)
        elif tick.minute == 0:
            await run_sweep(world.app, tick)
        for row in await world.outbox(last_id):
            deliveries.append(Delivery(tick, row))
            last_id = row.id
    return deliveries


def by_person(world: SchedulerWorld, deliveries: list[Delivery]) -> dict[str, list[Delivery]]:
    found: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        found[world.user_name(delivery.row.user_id)].append(delivery)
    return found


def moments(items: list[Delivery]) -> list[datetime]:
    return [d.moment for d in items]


def in_quiet_hours(moment: datetime) -> bool:
    clock = moment.astimezone(HCM).time()
    return clock >= time(21) or clock < time(7)


def bar_shares(path: Path) -> list[dict[str, float]]:
    """How each bar of a digest chart is made up, top to bottom, measured on the pixels: the
    shares of done (green), excused, overdue (red) and open (the grey track) in its width."""
    image = Image.open(path).convert("RGB")
    assert image.format is None or image.format == "PNG"
    colours = {
        "done": ImageColor.getrgb(BAR_COLOR),
        "excused": ImageColor.getrgb(EXCUSED_COLOR),
        "overdue": ImageColor.getrgb(OVERDUE_COLOR),
        "open": ImageColor.getrgb(TRACK_COLOR),
    }
    width, height = image.size
    pixels = image.load()
    bands: list[list[dict[str, int]]] = []
    previous = False
    for y in range(height):
        row = [pixels[x, y] for x in range(width)]
        counts = {part: row.count(colour) for part, colour in colours.items()}
        if sum(counts.values()) > width // 10:
            if not previous:
                bands.append([])
            bands[-1].append(counts)
            previous = True
        else:
            previous = False
    shares = []
    for band in bands:
        middle = band[len(band) // 2]
        total = sum(middle.values())
        shares.append({part: count / total for part, count in middle.items()})
    return shares


def trend_columns(path: Path) -> list[dict[str, int]]:
    """Each column of a trend chart, left to right: its done / excused / overdue pixels,
    measured on the pixels above the legend."""
    image = Image.open(path).convert("RGB")
    colours = {
        "done": ImageColor.getrgb(BAR_COLOR),
        "excused": ImageColor.getrgb(EXCUSED_COLOR),
        "overdue": ImageColor.getrgb(OVERDUE_COLOR),
    }
    width, height = image.size
    pixels = image.load()
    plot = int(height * 0.9)  # the legend's swatches are below
    per_x = [
        {part: sum(1 for y in range(plot) if pixels[x, y] == c) for part, c in colours.items()}
        for x in range(width)
    ]
    found: list[dict[str, int]] = []
    inside = False
    for counts in per_x:
        if sum(counts.values()) > 3:
            if not inside:
                found.append(dict.fromkeys(colours, 0))
            for part, count in counts.items():
                found[-1][part] += count
            inside = True
        else:
            inside = False
    return found


def bar_fractions(path: Path) -> list[float]:
    """How full each bar of a digest chart is with done (green), top to bottom."""
    return [share["done"] for share in bar_shares(path)]


# --- the month ------------------------------------------------------------------------------


async def district_reports(world: SchedulerWorld, now: datetime) -> None:
    if two_tier(world):
        return  # T4 is the commune's alone now: the province committee has no task of its own
    await world.report_done("district", "district", (T4,), now)


async def officer_an_reports(world: SchedulerWorld, now: datetime) -> None:
    await world.report_done("officer_an", "xa_an", TASKS, now)


async def head_mot_reports(world: SchedulerWorld, now: datetime) -> None:
    await world.report_done("head_mot", "thon_mot", (T1, T2), now)


# The district does its own task on the 19th, Xã An on the 20th, Thôn Một on the 24th; Thôn Hai
# and Xã Bình never report, and nobody at Thôn Ba can be reached.
REPORTS: dict[datetime, Event] = {
    at(19, 10, 15): district_reports,
    at(20, 9, 45): officer_an_reports,
    at(24, 10, 20): head_mot_reports,
}


async def occurrences_by_place(world: SchedulerWorld) -> dict[tuple[str, str], Occurrence]:
    async with world.db.session() as session:
        rows = (await session.exec(select(Occurrence).where(Occurrence.period == "2026-11"))).all()
    return {(row.task_key, world.unit_key(row.unit_id)): row for row in rows}
