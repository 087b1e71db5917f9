"""Telegram end to end: python-telegram-bot over real HTTP to a fake Bot API on loopback,
the real dispatcher, sender and database (SQLite, and PostgreSQL when configured).

Updates reach papibot the way Telegram sends them: the fake POSTs to the webhook papibot set
(or keeps them for getUpdates in the polling test); what papibot answers is read back from the
fake. Assertions are on the database, unit names, codes and button payloads, not on sentences
(the translations are still moving).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import ClientSession
from sqlmodel import col, select

from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH, parse_command
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.messages import Button, Outgoing
from bot.core.models import (
    AuditLog,
    ChannelIdentity,
    Evidence,
    InboundUpdate,
    Invite,
    Occurrence,
    Outbox,
    Report,
    User,
)
from bot.core.services.outbox import enqueue, notify_user
from tests.helpers.telegram_harness import (
    SECRET,
    VILLAGE_HEAD,
    Harness,
    harness,
    jpeg,
)
from tests.helpers.world import framework_for, structure_independent


@pytest.fixture
async def tg(settings: Settings, db: Database, structure: str) -> AsyncIterator[Harness]:
    async with harness(settings, db, framework_for(structure)) as h:
        yield h


async def post_webhook(h: Harness, body: bytes, headers: dict[str, str]) -> int:
    async with (
        ClientSession() as client,
        client.post(h.base_url + WEBHOOK_PATH, data=body, headers=headers) as response,
    ):
        await response.read()
        return response.status


# --------------------------------------------------------------------------- registration


@structure_independent
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


@structure_independent
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
    cards = len(tg.fake.sent_to(chat))
    await tg.press(chat, f"done:{occurrence_id}")
    # The spinner is stopped, and the tapped card becomes the next step (editMessageText on
    # that very message): its task buttons are gone, no message is added below it.
    assert tg.fake.calls_to("answerCallbackQuery", ok=True)
    edits = tg.fake.calls_to("editMessageText", ok=True)
    assert [(call.params["chat_id"], call.params["message_id"]) for call in edits] == [
        (chat, tapped.message_id)
    ]
    assert len(tg.fake.sent_to(chat)) == cards
    assert not tg.fake.calls_to("editMessageReplyMarkup")  # the edit set the buttons
    report_id = int(tapped.callback_data()[0].split(":")[1])
    assert tapped.callback_data() == [f"next:{report_id}", f"cancel:{report_id}"]

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


@structure_independent
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


@structure_independent
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


@structure_independent
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


@structure_independent
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


@structure_independent
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


@structure_independent
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


@structure_independent
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


@structure_independent
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
