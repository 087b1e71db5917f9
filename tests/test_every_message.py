"""Every message the bot can send is true for the person who reads it, on their channel.

For each channel capability (buttons: Telegram, the simulator; few buttons: Zalo OA; none:
Zalo Bot) a village head, a commune officer and a district officer go through every journey
they have, typing the commands of other roles too; then a sweep and the digests run weeks
later. Every message queued for them, rendered as their channel shows it, must:
- name only commands that exist for the reader's role;
- say no "bấm"/"nút"/"tap" where no button shows (a numbered menu says "gõ số");
- never double a unit's kind ("xã Phường …", "Trưởng thôn Tổ dân phố …").
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime, time, timedelta

import pytest
import time_machine
from PIL import Image
from sqlmodel import col, select, update

from bot.core.capabilities import shows_buttons
from bot.core.commands import commands_for
from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.messages import TAP_OPEN, Incoming, IncomingFile, Kind, Outgoing, numbered_menu
from bot.core.models import ChannelIdentity, Occurrence, Outbox, Report, Unit, User
from handlers.router import COMMANDS, Dispatcher, role_may
from scheduler.commands import run_digest, run_sweep
from tests.helpers.world import build_world
from tests.test_unit_words import DOUBLED

CHANNELS = ("telegram", "zalo_oa", "zalo_bot", "web")
ROLES = ("village_head", "commune_committee", "district_committee")
COMMAND = re.compile(r"(?<![\w/])/([a-z]+)\b")
BUTTON_WORDS = re.compile(r"\b(bấm|nhấn|chạm|nút|tap|press|button)\b", re.IGNORECASE)


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 20, 20)).save(buffer, format="JPEG")
    return buffer.getvalue()


class Chat:
    """One person typing and tapping through the dispatcher, as their channel would send it."""

    def __init__(self, dispatcher: Dispatcher, channel: str, external_id: str) -> None:
        self.dispatcher, self.channel, self.external_id = dispatcher, channel, external_id
        self.count = 0

    async def send(self, kind: Kind, **fields: object) -> None:
        self.count += 1
        await self.dispatcher.handle(
            Incoming(
                channel=self.channel,
                external_id=self.external_id,
                update_id=f"{self.external_id}-{self.count}",
                kind=kind,
                **fields,
            )
        )

    async def say(self, text: str) -> None:
        if text.startswith("/"):
            command, _sep, rest = text[1:].partition(" ")
            await self.send(Kind.command, command=command, text=rest)
        else:
            await self.send(Kind.text, text=text)

    async def tap(self, data: str) -> None:
        await self.send(Kind.button, data=data)

    async def photo(self, caption: str = "") -> None:
        data = jpeg()

        async def fetch() -> bytes:
            return data

        file = IncomingFile(file_name="a.jpg", mime="image/jpeg", size=len(data), fetch=fetch)
        await self.send(Kind.photo, text=caption, file=file)


async def _open_ids(db: Database, unit: Unit) -> list[int]:
    async with db.session() as session:
        rows = await session.exec(
            select(Occurrence.id)
            .where(Occurrence.unit_id == unit.id, Occurrence.status == "open")
            .order_by(col(Occurrence.due_at), col(Occurrence.id))
        )
        return list(rows.all())


async def _last_report(db: Database, kind: str) -> int:
    async with db.session() as session:
        rows = await session.exec(
            select(Report.id).where(Report.kind == kind).order_by(col(Report.id).desc())
        )
        return rows.first()


def rendered(channel: str, payload: dict) -> str:
    message = Outgoing.from_payload(payload)
    labels = [button.label for button in message.flat_buttons()]
    if not shows_buttons(channel, len(labels)):
        return numbered_menu(message)[0]
    return "\n".join([message.text, *labels])


def next_monday(day: date) -> date:
    return day + timedelta(days=(7 - day.weekday()) % 7 or 7)


@pytest.mark.parametrize("channel", CHANNELS)
async def test_every_message_names_only_what_its_reader_can_use(
    channel: str, settings: Settings, db: Database, framework: Framework
) -> None:
    world = await build_world(settings, db, framework)
    app: AppContext = world.app
    dispatcher = Dispatcher(app)
    head_village, quiet_village = world.villages[0], world.villages[1]
    people = {
        "village_head": await world.person(
            "Nguyễn Văn An", head_village, "village_head", channel, "h1"
        ),
        "commune_committee": await world.person(
            "Trần Thị Bình", world.commune, "commune_committee", channel, "c1"
        ),
        "district_committee": await world.person(
            "Lê Văn Cường", world.district, "district_committee", channel, "d1"
        ),
    }
    head, officer, district = (Chat(dispatcher, channel, chat) for chat in ("h1", "c1", "d1"))
    every_command = [f"/{name}" for name in COMMANDS]

    # Everyone: every command there is (their own and others'), help, something unknown.
    for chat in (head, officer, district):
        for command in every_command:
            await chat.say(command if command != "/lang" else "/lang xx")
        await chat.say("chào")

    # The village head: a report with a captioned photo and a note, more time (by button and
    # by a typed date), cannot-do, "xong", a photo with no task, a cancelled report.
    first, second, third, fourth, fifth, *_rest = await _open_ids(db, head_village)
    await head.tap(f"done:{first}")
    await head.photo("Đã niêm yết tại nhà văn hóa")
    await head.tap(f"next:{await _last_report(db, 'done')}")
    await head.say("Ghi chú thêm")
    await head.tap(f"send:{await _last_report(db, 'done')}")
    await head.tap(f"ext:{second}")
    await head.tap(f"extd:{second}:7")
    await head.say("Mưa bão")
    await head.tap(f"ext:{third}")
    await head.say("ngày mai")
    await head.say("31/12")
    await head.say("Chưa họp được")
    await head.tap(f"cant:{fourth}")
    await head.say("Không có kinh phí")
    await head.say("xong")
    await head.tap(f"qdone:{fifth}")
    await head.photo()
    pick = (await _open_ids(db, head_village))[0]
    await head.tap(f"pick:{pick}")
    await head.tap(f"cancel:{await _last_report(db, 'done')}")
    await head.tap(f"done:{pick}")
    await head.tap(f"next:{await _last_report(db, 'done')}")
    await head.say("x" * 2500)  # too long: refused whole

    # The commune officer: decisions, the villages, an invitation, an event.
    await officer.tap(f"appr:{await _last_report(db, 'extension')}")
    async with db.session() as session:
        first_request = (
            await session.exec(
                select(Report.id).where(Report.kind == "extension").order_by(col(Report.id))
            )
        ).first()
    await officer.tap(f"decl:{first_request}")
    await officer.tap(f"vil:{head_village.id}")
    await officer.tap(f"inv:{quiet_village.id}")
    await officer.tap("evk:election")
    await officer.say("15/12/2030")
    for data in ("menu:tinhhinh", "menu:moi", "menu:sukien", "menu:help", "menu:viec"):
        await officer.tap(data)

    # The district officer: the report, a follow-up.
    await district.tap(f"fu:{world.commune.id}")
    await district.tap("menu:baocao")
    await district.tap(f"com:{world.commune.id}")

    # Weeks later: reminders, escalations (to the commune and the district), the digests.
    later = next_monday(date.today() + timedelta(days=40))
    moment = datetime.combine(later, time(9, 0), tzinfo=settings.tz)
    async with db.session() as session:
        await session.exec(update(ChannelIdentity).values(last_interaction_at=moment))
        await session.commit()
    with time_machine.travel(moment, tick=False):
        await run_sweep(app, moment)
        await run_digest(app, moment)

    async with db.session() as session:
        rows = (await session.exec(select(Outbox).order_by(col(Outbox.id)))).all()
        users = {user.id: user for user in (await session.exec(select(User))).all()}
    problems: list[str] = []
    seen_roles: set[str] = set()
    for row in rows:
        reader = users.get(row.user_id)
        if reader is None:
            continue
        seen_roles.add(reader.role)
        text = rendered(row.channel, row.payload)
        allowed = set(commands_for(reader.role))
        for name in COMMAND.findall(text):
            if name not in allowed:
                problems.append(f"{reader.role}: /{name} in {text!r}")
        buttons = len(Outgoing.from_payload(row.payload).flat_buttons())
        if not shows_buttons(row.channel, buttons) and BUTTON_WORDS.search(text):
            problems.append(f"{reader.role} on {row.channel}: button word in {text!r}")
        if TAP_OPEN in text:
            problems.append(f"unresolved tap phrase in {text!r}")
        if DOUBLED.search(text):
            problems.append(f"doubled kind word in {text!r}")
    assert seen_roles == set(ROLES)
    assert len(rows) > 60  # every journey answered
    assert problems == []
    assert people["village_head"].id in {row.user_id for row in rows}


@pytest.mark.parametrize("role", ROLES)
def test_help_lists_exactly_the_readers_commands(role: str, framework) -> None:
    from bot.core.i18n import translator
    from handlers.help import command_lines

    routed = {name for name, action in COMMANDS.items() if role_may(framework, action.roles, role)}
    assert routed == set(commands_for(role))  # the router and the list agree
    for buttons in (True, False):
        listed = [line.split()[0] for line in command_lines(translator("vi"), role, buttons)]
        assert listed == [f"/{name}" for name in commands_for(role) if name != "start"]


@pytest.mark.parametrize("channel", ["telegram", "zalo_bot"])
async def test_the_district_drills_from_baocao_into_a_communes_villages(
    channel: str, settings: Settings, db: Database, framework: Framework
) -> None:
    world = await build_world(settings, db, framework)
    await world.person("Lê Văn Cường", world.district, "district_committee", channel, "d")
    district = Chat(Dispatcher(world.app), channel, "d")
    await district.say("/baocao")
    async with db.session() as session:
        report = (await session.exec(select(Outbox).where(Outbox.external_id == "d"))).all()[-1]
    taps = [b["data"] for row in report.payload["buttons"] for b in row]
    assert f"com:{world.commune.id}" in taps
    await district.tap(f"com:{world.commune.id}")
    async with db.session() as session:
        detail = (await session.exec(select(Outbox).where(Outbox.external_id == "d"))).all()[-1]
    text = detail.payload["text"]
    assert text.startswith("Các tổ dân phố thuộc phường Vĩnh Hòa") and "kém nhất trước" in text
    assert all(village.name in text for village in world.villages)
    outside = await world.person("Trần B", world.commune, "commune_committee", channel, "c")
    officer = Chat(Dispatcher(world.app), channel, "c")
    await officer.tap(f"com:{world.commune.id}")  # not a district: the button is not theirs
    async with db.session() as session:
        refused = (await session.exec(select(Outbox).where(Outbox.user_id == outside.id))).all()
    assert (
        refused[-1]
        .payload["text"]
        .startswith(  # the one role check, in the reader's words
            "Xin lỗi, việc này không thuộc quyền của UBND phường Vĩnh Hòa nên hệ thống chưa thay đổi gì."
        )
    )
