"""Telegram end to end: python-telegram-bot over real HTTP to a fake Bot API on loopback,
the real dispatcher, sender and database (SQLite, and PostgreSQL when configured).

Updates reach papibot the way Telegram sends them: the fake POSTs to the webhook papibot set
(or keeps them for getUpdates in the polling test); what papibot answers is read back from the
fake. Assertions are on the database, unit names, codes and button payloads, not on sentences
(the translations are still moving).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from PIL import Image
from sqlmodel import col, func, select

from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH, TelegramChannel, parse_command
from bot.config import DEFAULT_FRAMEWORK_DIR, Settings
from bot.context import AppContext
from bot.db import Database
from bot.framework import Framework
from bot.messages import Button, Outgoing
from bot.models import (
    AuditLog,
    ChannelIdentity,
    Evidence,
    InboundUpdate,
    Invite,
    Occurrence,
    Outbox,
    Report,
    Unit,
    User,
)
from bot.runtime import Runtime, build_runtime
from bot.sender import RateLimiter
from bot.server import build_app
from bot.services.framework_sync import sync_task_definitions
from bot.services.outbox import enqueue, notify_user
from bot.timeutil import from_db
from bot.units import import_units_csv
from handlers.router import Dispatcher
from scheduler.planner import plan
from tests.helpers.fake_telegram import FakeTelegram
from tests.helpers.world import World

TOKEN = "123456:TEST-TOKEN-abc"
SECRET = "webhook-secret_42"
VILLAGE_HEAD = "village_head"
OFFICER = "commune_committee"


# --------------------------------------------------------------------------- the world


def small_units_csv(target: Path) -> Path:
    """The province, one district, its first commune and that commune's villages: the same
    units build_world uses, without planning six hundred others (keeps the file fast)."""
    with (DEFAULT_FRAMEWORK_DIR / "units" / "khanh-hoa-2022.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    commune = sorted((r for r in rows if r["level"] == "commune"), key=lambda r: r["code"])[0]
    district = next(r for r in rows if r["code"] == commune["parent_code"])
    province = next(r for r in rows if r["code"] == district["parent_code"])
    villages = [r for r in rows if r["parent_code"] == commune["code"]]
    with target.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([province, district, commune, *villages])
    return target


async def small_world(settings: Settings, db: Database, framework: Framework) -> World:
    await import_units_csv(db, small_units_csv(settings.data_dir.parent / "units.csv"))
    async with db.session() as session:
        await sync_task_definitions(session, framework)
        commune = (await session.exec(select(Unit).where(Unit.level == "commune"))).one()
        district = await session.get(Unit, commune.parent_id)
        villages = list(
            (
                await session.exec(
                    select(Unit).where(Unit.parent_id == commune.id).order_by(Unit.code)
                )
            ).all()
        )
        # What is open now (windows opening by tomorrow): all the journeys need, and quick.
        await plan(session, framework, settings, date.today(), date.today() + timedelta(days=1))
        await session.commit()
    app = AppContext(settings=settings, db=db, framework=framework)
    return World(app=app, district=district, commune=commune, villages=villages)


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# --------------------------------------------------------------------------- the harness


@dataclass
class Harness:
    fake: FakeTelegram
    world: World
    runtime: Runtime
    channel: TelegramChannel
    base_url: str  # where papibot's aiohttp app listens

    @property
    def db(self) -> Database:
        return self.world.db

    async def settle(self) -> None:
        """Let the callback answers finish and the sender deliver everything due."""
        async with asyncio.timeout(15):  # a delivery loop that never ends is a failure
            await self.channel.idle()
            while await self.runtime.sender.drain_once():
                pass
            await self.channel.idle()

    async def say(self, update: dict) -> int | None:
        status = await self.fake.deliver(update)
        await self.settle()
        return status

    async def press(self, chat_id: int, data: str) -> None:
        assert await self.say(self.fake.press(chat_id, data)) == 200

    async def register(self, chat_id: int, unit: Unit, role: str) -> User:
        invite = await self.world.invite(unit, role)
        assert await self.say(self.fake.command(chat_id, "start", invite.code)) == 200
        async with self.db.session() as session:
            identity = (
                await session.exec(
                    select(ChannelIdentity).where(
                        ChannelIdentity.channel == "telegram",
                        ChannelIdentity.external_id == str(chat_id),
                    )
                )
            ).one()
            user = await session.get(User, identity.user_id)
        assert user is not None and user.unit_id == unit.id and user.role == role
        return user

    def buttons_to(self, chat_id: int, prefix: str) -> list[str]:
        return [
            data
            for sent in self.fake.sent_to(chat_id)
            for data in sent.callback_data()
            if data.startswith(prefix)
        ]

    async def count(self, model, *where) -> int:  # noqa: ANN001
        async with self.db.session() as session:
            query = select(func.count()).select_from(model)
            for condition in where:
                query = query.where(condition)
            return int((await session.exec(query)).one())


@asynccontextmanager
async def harness(
    settings: Settings, db: Database, framework: Framework, webhook: bool = True
) -> AsyncIterator[Harness]:
    fake = FakeTelegram(token=TOKEN)
    await fake.start()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.telegram_token = TOKEN
    settings.telegram_api_url = fake.api_url
    settings.telegram_webhook_secret = SECRET
    settings.scheduler_enabled = False
    world = await small_world(settings, db, framework)
    ctx = world.app
    channel = TelegramChannel(ctx, Dispatcher(ctx), poll_timeout=1)
    runtime = build_runtime(ctx, channels={"telegram": channel})
    channel.dispatcher = runtime.dispatcher  # the one that wakes this runtime's sender
    # Telegram's real pacing (1 message per second per chat) would make each test wait for
    # seconds; the platform's own limit is what the rate-limit test exercises.
    runtime.sender.limits["telegram"] = RateLimiter(per_second=1000, per_chat_interval=0)
    runner = web.AppRunner(build_app(runtime), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base_url = f"http://{host}:{port}"
    settings.public_url = base_url if webhook else ""
    await channel.start()
    try:
        yield Harness(fake=fake, world=world, runtime=runtime, channel=channel, base_url=base_url)
    finally:
        await channel.stop()
        await runner.cleanup()
        await fake.close()


@pytest.fixture
async def tg(settings: Settings, db: Database, framework: Framework) -> AsyncIterator[Harness]:
    async with harness(settings, db, framework) as h:
        yield h


async def post_webhook(h: Harness, body: bytes, headers: dict[str, str]) -> int:
    async with (
        ClientSession() as client,
        client.post(h.base_url + WEBHOOK_PATH, data=body, headers=headers) as response,
    ):
        await response.read()
        return response.status


# --------------------------------------------------------------------------- registration


async def test_start_sets_webhook_with_secret(tg: Harness) -> None:
    assert tg.fake.webhook_url == tg.base_url + WEBHOOK_PATH
    assert tg.fake.webhook_secret == SECRET
    assert tg.fake.calls_to("getMe", ok=True)


async def test_deep_link_registration(tg: Harness) -> None:
    village = tg.world.villages[0]
    invite = await tg.world.invite(village, VILLAGE_HEAD)
    tg.fake.user(501, "Nguyễn", "Văn An")
    update = tg.fake.command(501, "start", invite.code, mention=True)
    assert await tg.say(update) == 200

    async with tg.db.session() as session:
        identity = (
            await session.exec(select(ChannelIdentity).where(ChannelIdentity.external_id == "501"))
        ).one()
        user = await session.get(User, identity.user_id)
        used = await session.get(Invite, invite.id)
    assert identity.channel == "telegram"
    assert (user.role, user.unit_id, user.name) == (VILLAGE_HEAD, village.id, "Nguyễn Văn An")
    assert used.used_at is not None and used.used_by_user_id == user.id
    reply = tg.fake.last_to(501)
    assert village.name in reply.text
    assert "menu:viec" in reply.callback_data()
    assert await tg.count(InboundUpdate, InboundUpdate.update_id == str(update["update_id"])) == 1


async def test_wrong_and_expired_codes_register_nobody(tg: Harness) -> None:
    expired = await tg.world.invite(tg.world.villages[0], VILLAGE_HEAD, ttl=timedelta(seconds=-1))
    assert await tg.say(tg.fake.command(601, "start", "ZZZZ2345")) == 200
    assert await tg.say(tg.fake.command(602, "start", expired.code)) == 200

    assert await tg.count(ChannelIdentity) == 0
    assert await tg.count(User) == 0
    async with tg.db.session() as session:
        rows = (
            await session.exec(
                select(AuditLog)
                .where(AuditLog.action == "invite.wrong_code")
                .order_by(col(AuditLog.id))
            )
        ).all()
        still = await session.get(Invite, expired.id)
    assert [(row.subject, row.detail["reason"]) for row in rows] == [
        ("telegram:601", "unknown"),
        ("telegram:602", "expired"),
    ]
    assert still.used_at is None
    assert "ZZZZ2345" in tg.fake.last_to(601).text
    assert expired.code in tg.fake.last_to(602).text


# --------------------------------------------------------------------------- reporting


async def test_done_with_two_photos_and_a_note(tg: Harness) -> None:
    chat = 701
    village = tg.world.villages[0]
    user = await tg.register(chat, village, VILLAGE_HEAD)
    assert await tg.say(tg.fake.command(chat, "viec")) == 200
    done_buttons = tg.buttons_to(chat, "done:")
    assert done_buttons, "the task list shows a ✅ button per task"
    occurrence_id = int(done_buttons[0].split(":")[1])

    tapped = next(m for m in tg.fake.sent_to(chat) if f"done:{occurrence_id}" in m.callback_data())
    await tg.press(chat, f"done:{occurrence_id}")
    # Transport: the spinner is stopped and the tapped message loses its buttons.
    assert tg.fake.calls_to("answerCallbackQuery", ok=True)
    assert tapped.callback_data() == []
    report_id = int(tg.buttons_to(chat, "next:")[-1].split(":")[1])

    photos = [jpeg((200, 30, 30)), jpeg((30, 30, 200), (800, 600))]
    for photo in photos:
        assert await tg.say(tg.fake.photo(chat, photo)) == 200
    await tg.press(chat, f"next:{report_id}")
    assert await tg.say(tg.fake.text(chat, "Đã họp dân tại nhà văn hóa")) == 200
    await tg.press(chat, f"send:{report_id}")

    async with tg.db.session() as session:
        occurrence = await session.get(Occurrence, occurrence_id)
        report = await session.get(Report, report_id)
        evidence = (
            await session.exec(select(Evidence).where(Evidence.report_id == report_id))
        ).all()
    assert occurrence.unit_id == village.id
    assert occurrence.status == "done" and occurrence.done_by_user_id == user.id
    assert (report.status, report.note) == ("submitted", "Đã họp dân tại nhà văn hóa")
    expected = {hashlib.sha256(photo).hexdigest() for photo in photos}
    assert {row.sha256 for row in evidence} == expected  # the full size, not the thumbnail
    data_dir = tg.world.app.settings.data_dir
    for row in evidence:
        stored = data_dir / row.path
        assert row.sha256 in stored.name
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == row.sha256
    assert len(tg.fake.calls_to("getFile", ok=True)) == 2


async def test_extension_requested_and_approved(tg: Harness) -> None:
    head_chat, officer_chat = 801, 802
    village = tg.world.villages[0]
    head = await tg.register(head_chat, village, VILLAGE_HEAD)
    officer = await tg.register(officer_chat, tg.world.commune, OFFICER)
    assert await tg.say(tg.fake.command(head_chat, "viec")) == 200
    occurrence_id = int(tg.buttons_to(head_chat, "ext:")[0].split(":")[1])
    async with tg.db.session() as session:
        before = (await session.get(Occurrence, occurrence_id)).due_at

    await tg.press(head_chat, f"ext:{occurrence_id}")
    await tg.press(head_chat, f"extd:{occurrence_id}:7")
    assert await tg.say(tg.fake.text(head_chat, "Mưa bão, chưa họp được")) == 200

    approve = tg.buttons_to(officer_chat, "appr:")
    assert approve and tg.buttons_to(officer_chat, "decl:")
    report_id = int(approve[-1].split(":")[1])
    assert village.name in tg.fake.last_to(officer_chat).text
    head_messages = len(tg.fake.sent_to(head_chat))
    await tg.press(officer_chat, f"appr:{report_id}")

    tz = tg.world.app.settings.tz
    async with tg.db.session() as session:
        occurrence = await session.get(Occurrence, occurrence_id)
        report = await session.get(Report, report_id)
    old_day = from_db(before).astimezone(tz).date()
    assert (report.kind, report.status) == ("extension", "approved")
    assert (report.user_id, report.decided_by_user_id) == (head.id, officer.id)
    assert report.requested_until == max(old_day, date.today()) + timedelta(days=7)
    assert from_db(occurrence.due_at).astimezone(tz).date() == report.requested_until
    assert occurrence.due_at != before
    assert len(tg.fake.sent_to(head_chat)) == head_messages + 1  # told of the decision
    assert await tg.count(AuditLog, AuditLog.action == "extension.approved") == 1


# --------------------------------------------------------------------------- safety


async def test_redelivered_update_changes_nothing(tg: Harness) -> None:
    chat = 901
    await tg.register(chat, tg.world.villages[0], VILLAGE_HEAD)
    assert await tg.say(tg.fake.command(chat, "viec")) == 200
    occurrence_id = int(tg.buttons_to(chat, "done:")[0].split(":")[1])
    update = tg.fake.press(chat, f"done:{occurrence_id}")

    assert await tg.say(update) == 200
    counts = [await tg.count(m) for m in (Report, Outbox, InboundUpdate, AuditLog)]
    sent = len(tg.fake.messages)
    assert await tg.count(Report, Report.occurrence_id == occurrence_id) == 1

    assert await tg.say(update) == 200  # Telegram retries when it did not get our 200
    assert [await tg.count(m) for m in (Report, Outbox, InboundUpdate, AuditLog)] == counts
    assert len(tg.fake.messages) == sent


async def test_forged_callback_for_another_village_is_refused(tg: Harness) -> None:
    chat = 1001
    mine, other = tg.world.villages[0], tg.world.villages[1]
    user = await tg.register(chat, mine, VILLAGE_HEAD)
    async with tg.db.session() as session:
        target = (
            await session.exec(
                select(Occurrence)
                .where(Occurrence.unit_id == other.id)
                .order_by(col(Occurrence.id))
            )
        ).first()
    assert target is not None and target.status == "open"

    assert await tg.say(tg.fake.callback(chat, f"done:{target.id}")) == 200

    async with tg.db.session() as session:
        after = await session.get(Occurrence, target.id)
        refused = (await session.exec(select(AuditLog).where(AuditLog.action == "forbidden"))).all()
    assert (after.status, after.done_at) == ("open", None)
    assert await tg.count(Report, Report.occurrence_id == target.id) == 0
    assert [(row.subject, row.actor_user_id, row.detail["data"]) for row in refused] == [
        (f"telegram:{chat}", user.id, f"done:{target.id}")
    ]
    assert "done:" not in "".join(tg.fake.last_to(chat).callback_data())


async def test_webhook_refuses_a_wrong_or_missing_secret(tg: Harness) -> None:
    body = b'{"update_id": 5, "message": {"message_id": 1, "date": 1, "chat": {"id": 7, "type": "private"}, "text": "/start"}}'
    json_type = {"Content-Type": "application/json"}
    assert await post_webhook(tg, body, json_type) == 403
    assert await post_webhook(tg, body, {**json_type, SECRET_HEADER: "guess"}) == 403
    assert await post_webhook(tg, body, {**json_type, SECRET_HEADER: SECRET[:-1]}) == 403
    await tg.settle()
    assert await tg.count(InboundUpdate) == 0
    assert await tg.count(Outbox) == 0
    assert tg.fake.messages == []
    # The same body with the secret is an ordinary update (the refusals were about the secret).
    assert await post_webhook(tg, body, {**json_type, SECRET_HEADER: SECRET}) == 200
    assert await tg.count(InboundUpdate) == 1


async def test_webhook_rejects_bodies_that_are_not_updates(tg: Harness) -> None:
    headers = {"Content-Type": "application/json", SECRET_HEADER: SECRET}
    for body in (
        b"this is not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'{"update_id": "12"}',
        b'{"message": {"text": "hi"}}',
        b'{"update_id": 12, "message": {"message_id": 1}}',
        b'{"update_id": 13, "callback_query": "done:1"}',
    ):
        assert await post_webhook(tg, body, headers) == 400, body
    assert await tg.count(InboundUpdate) == 0


# --------------------------------------------------------------------------- delivery


async def test_blocked_user_is_marked_and_not_retried(tg: Harness) -> None:
    chat = 1101
    user = await tg.register(chat, tg.world.villages[0], VILLAGE_HEAD)
    tg.fake.block(chat)
    async with tg.db.session() as session:
        assert await notify_user(session, user, Outgoing(text="Nhắc việc"), "test:blocked")
        await session.commit()
    await tg.settle()

    async with tg.db.session() as session:
        row = (
            await session.exec(select(Outbox).where(Outbox.idempotency_key == "test:blocked"))
        ).one()
        identity = (
            await session.exec(select(ChannelIdentity).where(ChannelIdentity.user_id == user.id))
        ).one()
    assert (row.status, row.attempts) == ("dead", 1)
    assert "blocked" in row.last_error
    assert identity.blocked is True
    refused = tg.fake.calls_to("sendMessage", ok=False)
    assert [call.status for call in refused] == [403]

    row_time = row.next_attempt_at
    await tg.settle()
    assert len(tg.fake.calls_to("sendMessage", ok=False)) == 1  # not tried again
    async with tg.db.session() as session:
        assert (await session.get(Outbox, row.id)).next_attempt_at == row_time
        # Nothing more is queued for a person who cannot be reached there.
        assert await notify_user(session, user, Outgoing(text="x"), "test:blocked-2") is None


async def test_long_message_is_split_with_buttons_on_the_last_part(tg: Harness) -> None:
    chat = 1201
    tg.fake.user(chat)
    paragraphs = [f"Dòng {n}: " + ("nội dung báo cáo " * 12).strip() for n in range(60)]
    text = "\n".join(paragraphs)
    assert len(text) > 2 * 4096
    message = Outgoing(text=text, buttons=[[Button("OK", "menu:viec")]])
    async with tg.db.session() as session:
        await enqueue(session, "telegram", str(chat), message, "test:long")
        await session.commit()
    await tg.settle()

    parts = tg.fake.sent_to(chat)
    assert len(parts) >= 3
    assert all(len(part.text) <= 4096 for part in parts)
    assert "\n".join(part.text for part in parts) == text  # cut at line breaks, nothing lost
    assert [part.callback_data() for part in parts] == [[]] * (len(parts) - 1) + [["menu:viec"]]
    async with tg.db.session() as session:
        row = (
            await session.exec(select(Outbox).where(Outbox.idempotency_key == "test:long"))
        ).one()
    assert (row.status, row.platform_message_id) == ("sent", str(parts[-1].message_id))


async def test_too_many_requests_is_honoured_and_each_message_delivered_once(
    tg: Harness,
) -> None:
    tg.fake.limit_per_second, tg.fake.retry_after = 3, 1
    chats = list(range(1301, 1306))
    async with tg.db.session() as session:
        for chat in chats:
            tg.fake.user(chat)
            await enqueue(
                session, "telegram", str(chat), Outgoing(text=f"tin {chat}"), f"rl:{chat}"
            )
        await session.commit()
    await tg.settle()

    assert [[m.text for m in tg.fake.sent_to(chat)] for chat in chats] == [
        [f"tin {chat}"] for chat in chats
    ]
    sends = tg.fake.calls_to("sendMessage")
    limited = [call for call in sends if call.status == 429]
    assert limited, "the fake's limit was reached"
    for refusal in limited:
        later = [call for call in sends if call.at > refusal.at]
        assert all(call.at - refusal.at >= 0.95 for call in later), "retried before retry_after"
    assert await tg.count(Outbox, Outbox.status == "sent") == len(chats)


async def test_a_split_message_interrupted_by_429_does_not_repeat_its_first_parts(
    tg: Harness,
) -> None:
    chat = 1351
    tg.fake.user(chat)
    tg.fake.limit_per_second, tg.fake.retry_after = 2, 1
    text = "\n".join(f"Mục {n}: " + "x" * 300 for n in range(40))  # four parts
    async with tg.db.session() as session:
        await enqueue(session, "telegram", str(chat), Outgoing(text=text), "test:split-429")
        await session.commit()
    await tg.settle()

    parts = [m.text for m in tg.fake.sent_to(chat)]
    assert len(tg.fake.calls_to("sendMessage", ok=False)) >= 1  # interrupted at least once
    assert "\n".join(parts) == text  # every part once, in order
    assert len(parts) == len(set(parts))


async def test_photo_and_document_are_uploaded(tg: Harness) -> None:
    chat = 1401
    tg.fake.user(chat)
    data_dir = tg.world.app.settings.data_dir
    (data_dir / "digests").mkdir(parents=True, exist_ok=True)
    chart = jpeg((10, 120, 10), (300, 200))
    (data_dir / "digests" / "chart.jpg").write_bytes(chart)
    sheet = b"PK\x03\x04 not really a spreadsheet"
    (data_dir / "digests" / "report.xlsx").write_bytes(sheet)
    async with tg.db.session() as session:
        await enqueue(
            session,
            "telegram",
            str(chat),
            Outgoing(text="Biểu đồ tháng", photo_path="digests/chart.jpg"),
            "test:photo",
        )
        await enqueue(
            session,
            "telegram",
            str(chat),
            Outgoing(document_path="digests/report.xlsx", document_name="bao-cao.xlsx"),
            "test:doc",
        )
        await enqueue(
            session, "telegram", str(chat), Outgoing(photo_path="../../etc/passwd"), "test:escape"
        )
        await session.commit()
    await tg.settle()

    photo, document = tg.fake.sent_to(chat)
    assert (photo.kind, photo.content, photo.text) == ("photo", chart, "Biểu đồ tháng")
    assert (document.kind, document.content, document.file_name) == (
        "document",
        sheet,
        "bao-cao.xlsx",
    )
    async with tg.db.session() as session:
        escape = (
            await session.exec(select(Outbox).where(Outbox.idempotency_key == "test:escape"))
        ).one()
    assert escape.status == "dead"  # a path outside the data directory is never read


async def test_a_document_that_is_not_an_image_is_refused(tg: Harness) -> None:
    chat = 1501
    await tg.register(chat, tg.world.villages[0], VILLAGE_HEAD)
    assert await tg.say(tg.fake.command(chat, "viec")) == 200
    occurrence_id = int(tg.buttons_to(chat, "photo:")[0].split(":")[1])
    await tg.press(chat, f"photo:{occurrence_id}")
    pdf = b"%PDF-1.4 minutes of the meeting"
    assert await tg.say(tg.fake.document(chat, pdf, "bien-ban.pdf", "application/pdf")) == 200
    image = jpeg((1, 2, 3))
    assert await tg.say(tg.fake.document(chat, image, "anh.jpg", "image/jpeg")) == 200

    rows = await tg.count(AuditLog, AuditLog.action == "evidence.not_image")
    assert rows == 1
    async with tg.db.session() as session:
        evidence = (await session.exec(select(Evidence))).all()
    assert [row.sha256 for row in evidence] == [hashlib.sha256(image).hexdigest()]


# --------------------------------------------------------------------------- polling


async def test_polling_registration_and_task_list(
    settings: Settings, db: Database, framework: Framework
) -> None:
    async with harness(settings, db, framework, webhook=False) as h:
        assert h.fake.webhook_url == ""
        assert h.fake.calls_to("deleteWebhook", ok=True)
        village = h.world.villages[1]
        invite = await h.world.invite(village, VILLAGE_HEAD)
        first = h.fake.command(1601, "start", invite.code)
        second = h.fake.command(1601, "viec")
        assert await h.fake.deliver(first) is None  # kept for getUpdates
        await h.fake.deliver(second)

        deadline = time.monotonic() + 10
        while await h.count(InboundUpdate) < 2:
            assert time.monotonic() < deadline, "the poller did not pick the updates up"
            await asyncio.sleep(0.05)
        await h.settle()

        async with h.db.session() as session:
            identity = (
                await session.exec(
                    select(ChannelIdentity).where(ChannelIdentity.external_id == "1601")
                )
            ).one()
            user = await session.get(User, identity.user_id)
        assert (user.unit_id, user.role) == (village.id, VILLAGE_HEAD)
        texts = [m.text for m in h.fake.sent_to(1601)]
        assert village.name in texts[0]
        assert h.buttons_to(1601, "done:")  # the task list came through the poller too
        # The offset moves past what was handled (confirmed on the next getUpdates).
        while h.fake.confirmed_offset <= second["update_id"]:
            assert time.monotonic() < deadline, "the poller never confirmed the updates"
            await asyncio.sleep(0.05)
        assert not h.fake.calls_to("getUpdates", ok=False)


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start ABCD2345", ("start", "ABCD2345")),
        ("/start@papi_test_bot  ABCD2345 ", ("start", "ABCD2345")),
        ("/VIEC", ("viec", "")),
        ("/help\nmore", ("help", "more")),
        ("/", None),
        ("xong", None),
    ],
)
def test_parse_command(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_command(text) == expected
