"""The conversations people have with papibot, run on every channel from one suite.

Each test runs once per channel (Telegram, Zalo Bot, Zalo OA, the web simulator) and per
database (SQLite; PostgreSQL when PAPIBOT_TEST_DATABASE_URL is set), with real HTTP between the
platform fakes and the papibot app on loopback (see tests/helpers/drivers.py). A person taps
buttons the way their channel lets them: a callback query on Telegram, a typed number on Zalo
Bot (from the numbered menu shown in the text), the payload an oa.query.hide button sends on
Zalo OA, the simulator's button call on the web.

Assertions are on the database, unit names, codes and button payloads, not on sentences (the
translations are still moving).

Channel differences the suite keeps on purpose:
* Registration: Telegram `/start CODE`; Zalo Bot a first message, then the code; Zalo OA a
  follow event, then the code; the simulator a guest chat typing the code.
* A forged payload: on Telegram (a modified client), Zalo OA (anyone can type `done:12`) and the
  simulator (its API) any payload can be sent, and must be refused. On Zalo Bot a person can only
  type text: there the test checks that a number outside the menu, and a typed payload, are
  "not understood" and change nothing.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
from PIL import Image
from sqlmodel import col, select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.models import (
    AuditLog,
    ChannelIdentity,
    DialogState,
    Evidence,
    InboundUpdate,
    Invite,
    Occurrence,
    Outbox,
    Report,
    User,
    utcnow,
)
from bot.core.timeutil import from_db
from bot.core.unit_words import place
from tests.helpers.drivers import CHANNELS, ChannelDriver, Sent, structured_driver
from tests.helpers.rows import count
from tests.helpers.world import structure_independent

VILLAGE_HEAD = "village_head"
OFFICER = "commune_committee"


@pytest.fixture(params=CHANNELS)
async def driver(
    request: pytest.FixtureRequest, settings: Settings, db: Database, structure: str
) -> AsyncIterator[ChannelDriver]:
    async with structured_driver(request.param, settings, db, structure) as channel_driver:
        yield channel_driver


# --------------------------------------------------------------------------- helpers


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def user_of(d: ChannelDriver, chat: str) -> User | None:
    async with d.world.db.session() as session:
        identity = (
            await session.exec(
                select(ChannelIdentity).where(
                    ChannelIdentity.channel == d.name,
                    ChannelIdentity.external_id == d.external_id(chat),
                )
            )
        ).first()
        return await session.get(User, identity.user_id) if identity else None


async def register(d: ChannelDriver, chat: str, unit: Any, role: str) -> User:
    invite = await d.world.invite(unit, role)
    await d.start(chat, invite.code)
    user = await user_of(d, chat)
    assert user is not None, f"{d.name}: {chat} not registered with {invite.code}"
    assert (user.unit_id, user.role) == (unit.id, role)
    return user


def buttons(messages: list[Sent], prefix: str) -> list[str]:
    """Button payloads starting with `prefix`, in the order the messages came."""
    return [data for sent in messages for data in sent.buttons if data.startswith(prefix)]


def arg(payload: str, index: int = 1) -> int:
    return int(payload.split(":")[index])


async def task_list(d: ChannelDriver, chat: str) -> list[Sent]:
    """/viec; returns the messages it brought."""
    before = len(await d.messages(chat))
    await d.say(chat, "/viec")
    listing = (await d.messages(chat))[before:]
    assert buttons(listing, "done:"), f"{d.name}: /viec showed no task"
    return listing


async def snapshot(d: ChannelDriver) -> dict[str, int]:
    """Row counts of everything an update can add to."""
    tables = (Report, Evidence, Outbox, InboundUpdate, AuditLog, User, ChannelIdentity)
    return {table.__name__: await count(d.world.db, table) for table in tables}


# --------------------------------------------------------------------------- (1) registration


async def test_registration_with_an_invite_code(driver: ChannelDriver) -> None:
    d = driver
    village = d.world.villages[0]
    invite = await d.world.invite(village, VILLAGE_HEAD)
    await d.start("head", invite.code)

    user = await user_of(d, "head")
    assert user is not None and (user.role, user.unit_id) == (VILLAGE_HEAD, village.id)
    async with d.world.db.session() as session:
        used = await session.get(Invite, invite.id)
    assert used.used_at is not None and used.used_by_user_id == user.id
    welcome = (await d.messages("head"))[-1]
    assert village.name in welcome.text
    assert "menu:viec" in welcome.buttons

    # A wrong code registers nobody, is audited, and the answer names the code typed.
    users = await count(d.world.db, User)
    await d.start("stranger", "ZZZZ2345")
    assert await user_of(d, "stranger") is None
    assert await count(d.world.db, User) == users
    async with d.world.db.session() as session:
        refusals = (
            await session.exec(select(AuditLog).where(AuditLog.action == "invite.wrong_code"))
        ).all()
    assert [(row.subject, row.detail["reason"]) for row in refusals] == [
        (f"{d.name}:{d.external_id('stranger')}", "unknown")
    ]
    assert "ZZZZ2345" in (await d.messages("stranger"))[-1].text


# --------------------------------------------------------------------------- (2) a report


async def test_task_done_with_two_photos_and_a_note(driver: ChannelDriver) -> None:
    d = driver
    village = d.world.villages[0]
    head = await register(d, "head", village, VILLAGE_HEAD)
    listing = await task_list(d, "head")
    cards = buttons(listing, "done:")
    assert len(cards) >= 2, "the world gives several tasks, so which one is tapped matters"
    occurrence_id = arg(cards[0])  # the first task card, not the last one shown

    await d.tap("head", f"done:{occurrence_id}")
    report_id = arg(buttons(await d.messages("head"), "next:")[-1])
    async with d.world.db.session() as session:
        draft = await session.get(Report, report_id)
    assert draft.occurrence_id == occurrence_id  # the task tapped, not another one

    photos = [jpeg((200, 30, 30)), jpeg((30, 30, 200), (400, 300))]
    for photo in photos:
        await d.photo("head", photo)
    await d.tap("head", f"next:{report_id}")
    await d.say("head", "Đã họp dân tại nhà văn hóa")
    await d.tap("head", f"send:{report_id}")

    async with d.world.db.session() as session:
        occurrence = await session.get(Occurrence, occurrence_id)
        report = await session.get(Report, report_id)
        evidence = (
            await session.exec(select(Evidence).where(Evidence.report_id == report_id))
        ).all()
    assert occurrence.unit_id == village.id
    assert (occurrence.status, occurrence.done_by_user_id) == ("done", head.id)
    assert (report.status, report.note) == ("submitted", "Đã họp dân tại nhà văn hóa")
    assert sorted(row.sha256 for row in evidence) == sorted(
        hashlib.sha256(photo).hexdigest() for photo in photos
    )
    for row in evidence:
        stored = d.world.app.settings.data_dir / row.path
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == row.sha256


# --------------------------------------------------------------------------- (3) more time


async def test_extension_requested_and_approved_on_the_same_channel(
    driver: ChannelDriver,
) -> None:
    d = driver
    village = d.world.villages[0]
    head = await register(d, "head", village, VILLAGE_HEAD)
    officer = await register(d, "officer", d.world.commune, OFFICER)
    listing = await task_list(d, "head")
    occurrence_id = arg(buttons(listing, "ext:")[0])
    async with d.world.db.session() as session:
        before = (await session.get(Occurrence, occurrence_id)).due_at

    await d.tap("head", f"ext:{occurrence_id}")
    await d.tap("head", f"extd:{occurrence_id}:7")
    await d.say("head", "Mưa bão, chưa họp được")

    request = (await d.messages("officer"))[-1]
    assert village.name in request.text
    approve = buttons([request], "appr:")
    assert approve and buttons([request], "decl:")
    report_id = arg(approve[0])
    told = len(await d.messages("head"))
    await d.tap("officer", f"appr:{report_id}")

    tz = d.world.app.settings.tz
    async with d.world.db.session() as session:
        occurrence = await session.get(Occurrence, occurrence_id)
        report = await session.get(Report, report_id)
    old_day = from_db(before).astimezone(tz).date()
    assert (report.kind, report.status, report.occurrence_id) == (
        "extension",
        "approved",
        occurrence_id,
    )
    assert (report.user_id, report.decided_by_user_id) == (head.id, officer.id)
    assert report.note == "Mưa bão, chưa họp được"
    assert report.requested_until == max(old_day, date.today()) + timedelta(days=7)
    assert from_db(occurrence.due_at).astimezone(tz).date() == report.requested_until
    decision = (await d.messages("head"))[told:]
    assert len(decision) == 1  # the village head was told of the decision
    decided = (await d.messages("officer"))[-1]  # the request card, answered
    assert "Đã đồng ý gia hạn" in decided.text and "Lý do đề nghị: Mưa bão" in decided.text
    assert village.name in decided.text and head.name in decided.text
    assert await count(d.world.db, AuditLog, AuditLog.action == "extension.approved") == 1


# --------------------------------------------------------------------------- (4) "đã xong"


@structure_independent
async def test_typed_da_xong_then_one_tap_confirms(driver: ChannelDriver) -> None:
    d = driver
    head = await register(d, "head", d.world.villages[0], VILLAGE_HEAD)
    await d.say("head", "da xong")
    confirm = buttons([(await d.messages("head"))[-1]], "qdone:")
    assert len(confirm) == 1
    occurrence_id = arg(confirm[0])
    async with d.world.db.session() as session:
        assert (await session.get(Occurrence, occurrence_id)).status == "open"  # asked first

    await d.tap("head", confirm[0])

    async with d.world.db.session() as session:
        occurrence = await session.get(Occurrence, occurrence_id)
        reports = (
            await session.exec(select(Report).where(Report.occurrence_id == occurrence_id))
        ).all()
    assert (occurrence.status, occurrence.done_by_user_id) == ("done", head.id)
    assert [(r.kind, r.status, r.user_id) for r in reports] == [("done", "submitted", head.id)]
    assert await count(d.world.db, AuditLog, AuditLog.action == "report.quick_done") == 1


# --------------------------------------------------------------------------- (5) forged taps


@structure_independent
async def test_a_forged_payload_for_another_village_is_refused(driver: ChannelDriver) -> None:
    d = driver
    mine, other = d.world.villages[0], d.world.villages[1]
    user = await register(d, "head", mine, VILLAGE_HEAD)
    async with d.world.db.session() as session:
        target = (
            await session.exec(
                select(Occurrence)
                .where(Occurrence.unit_id == other.id)
                .order_by(col(Occurrence.id))
            )
        ).first()
    assert target is not None and target.status == "open"
    before = await snapshot(d)
    sent_before = len(await d.messages("head"))

    if d.can_forge:
        await d.forge("head", f"done:{target.id}")
        async with d.world.db.session() as session:
            refused = (
                await session.exec(select(AuditLog).where(AuditLog.action == "forbidden"))
            ).all()
        assert [(row.subject, row.actor_user_id, row.detail["data"]) for row in refused] == [
            (f"{d.name}:{d.external_id('head')}", user.id, f"done:{target.id}")
        ]
        answers = (await d.messages("head"))[sent_before:]
        assert len(answers) == 1 and not buttons(answers, "done:")
    else:
        # Zalo Bot: only text can be sent. The welcome's menu has a few entries; a number
        # beyond it, or a typed payload, is not understood and answered with the menu.
        menu = (await d.messages("head"))[-1].buttons
        assert menu and "menu:viec" in menu
        await d.say("head", str(len(menu) + 5))
        await d.say("head", f"done:{target.id}")
        answers = (await d.messages("head"))[sent_before:]
        assert [answer.buttons for answer in answers] == [menu, menu]
        assert await count(d.world.db, AuditLog) == before["AuditLog"]  # not a tap: no refusal

    async with d.world.db.session() as session:
        after = await session.get(Occurrence, target.id)
    assert (after.status, after.done_at, after.due_at) == ("open", None, target.due_at)
    assert await count(d.world.db, Report) == before["Report"] == 0


# --------------------------------------------------------------------------- (6) redelivery


@structure_independent
async def test_the_same_inbound_delivered_twice_changes_nothing(driver: ChannelDriver) -> None:
    d = driver
    await register(d, "head", d.world.villages[0], VILLAGE_HEAD)
    listing = await task_list(d, "head")
    occurrence_id = arg(buttons(listing, "done:")[0])

    await d.tap("head", f"done:{occurrence_id}")
    assert await count(d.world.db, Report, Report.occurrence_id == occurrence_id) == 1
    after_tap, sent = await snapshot(d), len(await d.messages("head"))
    await d.redeliver_last("head")
    assert await snapshot(d) == after_tap
    assert len(await d.messages("head")) == sent

    await d.photo("head", jpeg((10, 120, 10)))
    assert await count(d.world.db, Evidence) == 1
    after_photo, sent = await snapshot(d), len(await d.messages("head"))
    async with d.world.db.session() as session:
        state = (
            await session.exec(
                select(DialogState).where(DialogState.external_id == d.external_id("head"))
            )
        ).one()
    await d.redeliver_last("head")
    assert await snapshot(d) == after_photo
    assert len(await d.messages("head")) == sent
    async with d.world.db.session() as session:
        again = await session.get(DialogState, state.id)
    assert again.data == state.data  # still "1 photo received"
    uploads = d.world.app.settings.data_dir / "uploads"  # a draft's photos wait there
    assert len([p for p in uploads.rglob("*") if p.is_file()]) == 1


# --------------------------------------------------------------------------- (7) the level above


@pytest.mark.parametrize("driver", ["zalo_bot"], indirect=True)  # numbered menus: the strictest
async def test_a_commune_asks_its_supervisor_for_more_time(driver: ChannelDriver) -> None:
    """The commune's request goes one level up: to the district, or with no districts
    (two-tier) to the province committee, which approves it from its own chat."""
    d = driver
    officer = await register(d, "officer", d.world.commune, OFFICER)
    boss = await register(d, "boss", d.world.supervisor, d.world.supervisor_role)
    listing = await task_list(d, "officer")
    occurrence_id = arg(buttons(listing, "ext:")[0])
    async with d.world.db.session() as session:
        assert (await session.get(Occurrence, occurrence_id)).unit_id == d.world.commune.id

    await d.tap("officer", f"ext:{occurrence_id}")
    await d.tap("officer", f"extd:{occurrence_id}:7")
    await d.say("officer", "Đang chờ kinh phí")

    request = (await d.messages("boss"))[-1]
    assert place(d.world.commune) in request.text  # "UBND phường Vĩnh Hòa (…) xin gia hạn"
    (approve,) = buttons([request], "appr:")
    told = len(await d.messages("officer"))
    await d.tap("boss", approve)
    async with d.world.db.session() as session:
        report = await session.get(Report, arg(approve))
    assert (report.kind, report.status, report.occurrence_id) == (
        "extension",
        "approved",
        occurrence_id,
    )
    assert (report.user_id, report.decided_by_user_id) == (officer.id, boss.id)
    assert len((await d.messages("officer"))[told:]) == 1

    # The supervisor's overview lists the commune (the ward, two-tier) by its own name.
    sent = len(await d.messages("boss"))
    await d.say("boss", "/baocao")
    (overview,) = (await d.messages("boss"))[sent:]
    assert d.world.commune.name in overview.text


async def test_a_commune_role_asks_for_more_time_and_its_overseer_decides(
    driver: ChannelDriver,
) -> None:
    """The request reaches the role that oversees the requester, at that role's own level: the
    health station's goes to the district health centre, or with no districts (two-tier, the
    centre now a regional one) to its own commune committee."""
    d = driver
    station = await register(d, "station", d.world.commune, "commune_health_station")
    officer = await register(d, "officer", d.world.commune, OFFICER)
    if not d.world.two_tier:
        centre = await register(d, "centre", d.world.district, "district_health_center")
    # Its tasks are quarterly at a commune: one whose window is open now.
    async with d.world.db.session() as session:
        session.add(
            Occurrence(
                task_key="nang-cao-chat-luong-kham-chua-benh",
                unit_id=d.world.commune.id,
                period="test-now",
                window_start=utcnow() - timedelta(days=3),
                due_at=utcnow() + timedelta(days=10),
            )
        )
        await session.commit()
    for requester, chat in ((station, "station"),):
        listing = await task_list(d, chat)
        occurrence_id = arg(buttons(listing, "ext:")[0])
        await d.tap(chat, f"ext:{occurrence_id}")
        await d.tap(chat, f"extd:{occurrence_id}:7")
        await d.say(chat, "Đang chờ kinh phí")
        decider = "officer" if d.world.two_tier else "centre"
        request = (await d.messages(decider))[-1]
        (approve,) = buttons([request], "appr:")
        await d.tap(decider, approve)
        async with d.world.db.session() as session:
            report = await session.get(Report, arg(approve))
        decided_by = officer if decider == "officer" else centre
        assert (report.user_id, report.status, report.decided_by_user_id) == (
            requester.id,
            "approved",
            decided_by.id,
        )
