"""Zalo Bot channel end to end: real HTTP to a fake Zalo Bot API, a real database, our server.

Journeys a village head makes on Zalo Bot (no buttons: numbered menus answered by number),
webhook authentication, redelivery, long texts, photos as signed media links, long polling.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.channels.base import DeliveryError
from bot.channels.zalo_bot import SECRET_HEADER, ZaloBotChannel
from bot.core.context import AppContext
from bot.core.messages import Button, Outgoing
from bot.core.models import (
    ChannelIdentity,
    Evidence,
    InboundUpdate,
    Occurrence,
    Outbox,
    Report,
    User,
)
from bot.core.services.outbox import enqueue, notify_user
from tests.helpers.fake_zalo import ZaloStack, fixture, jpeg_bytes, start_stack
from tests.helpers.rows import count
from tests.helpers.world import build_world, framework_for

CHAT = "6ede9afa66b88fe6d6a9"
OFFICER_CHAT = "a1b2c3d4e5f6a7b8c9d0"


def text_update(chat: str, text: str, message_id: str | None = None, wrapped: bool = True) -> dict:
    body = copy.deepcopy(fixture("bot_text.json"))
    message = body["result"]["message"]
    message["from"]["id"] = message["chat"]["id"] = chat
    message["text"] = text
    message["message_id"] = message_id or uuid.uuid4().hex[:20]
    return body if wrapped else body["result"]


def image_update(chat: str, url: str) -> dict:
    body = copy.deepcopy(fixture("bot_image.json"))
    message = body["message"]
    message["from"]["id"] = message["chat"]["id"] = chat
    message["photo_url"] = url
    message["message_id"] = uuid.uuid4().hex[:20]
    return body


async def deliver(stack: ZaloStack, update: dict, secret: str | None = "default") -> int:
    headers = {"Content-Type": "application/json"}
    if secret == "default":
        secret = stack.app.settings.zalo_bot_webhook_secret
    if secret is not None:
        headers[SECRET_HEADER] = secret
    response = await stack.post("/webhook/zalo-bot", json.dumps(update).encode(), headers)
    return response.status


async def say(stack: ZaloStack, chat: str, text: str) -> list[str]:
    """The person types `text`; returns what the bot answered them."""
    before = len(stack.fake.bot_texts(chat))
    assert await deliver(stack, text_update(chat, text)) == 200
    await stack.settle()
    return stack.fake.bot_texts(chat)[before:]


@pytest.fixture
async def bare_stack(settings, db, framework):  # noqa: ANN001
    stack = await start_stack(
        AppContext(settings=settings, db=db, framework=framework), ZaloBotChannel
    )
    yield stack
    await stack.close()


async def test_village_head_registers_reports_and_asks_for_more_time(settings, db, structure):
    world = await build_world(settings, db, framework_for(structure))
    stack = await start_stack(world.app, ZaloBotChannel)
    try:
        await stack.channel.start()
        assert stack.fake.webhook == {
            "url": f"{stack.url}/webhook/zalo-bot",
            "secret_token": settings.zalo_bot_webhook_secret,
        }
        village = world.villages[0]
        officer = await world.person(
            "Chủ tịch xã", world.commune, "commune_committee", "zalo_bot", OFFICER_CHAT
        )

        # Opening the bot: the first message is answered with the greeting asking for a code.
        greeting = await say(stack, CHAT, "Xin chào")
        assert len(greeting) == 1 and "3012" in greeting[0]

        # Typing the code registers, as on Telegram; the main menu comes numbered.
        invite = await world.invite(village, "village_head")
        answer = await say(stack, CHAT, invite.code)
        assert village.name in answer[-1]
        assert "\n1. " in answer[-1] and "\n2. " in answer[-1]
        async with db.session() as session:
            identity = (
                await session.exec(
                    select(ChannelIdentity).where(ChannelIdentity.external_id == CHAT)
                )
            ).one()
            head = await session.get(User, identity.user_id)
            assert identity.channel == "zalo_bot" and head.role == "village_head"
            occurrences = (
                await session.exec(
                    select(Occurrence)
                    .where(Occurrence.unit_id == village.id, Occurrence.status == "open")
                    .order_by(col(Occurrence.due_at))
                )
            ).all()
        assert len(occurrences) >= 2
        first, second = occurrences[0], occurrences[1]

        # A reminder-like message with the four answers arrives as a numbered menu …
        async def remind(occurrence: Occurrence) -> str:
            buttons = [
                [
                    Button("✅ Đã xong", f"done:{occurrence.id}"),
                    Button("📷 Gửi ảnh", f"photo:{occurrence.id}"),
                ],
                [
                    Button("⏰ Xin thêm thời gian", f"ext:{occurrence.id}"),
                    Button("❌ Không thực hiện được", f"cant:{occurrence.id}"),
                ],
            ]
            async with db.session() as session:
                user = await session.get(User, head.id)
                await notify_user(
                    session,
                    user,
                    Outgoing(text=f"Nhắc việc {occurrence.task_key}", buttons=buttons),
                    f"remind:{occurrence.id}",
                )
                await session.commit()
            await stack.settle()
            return stack.fake.bot_texts(CHAT)[-1]

        reminder = await remind(first)
        assert reminder.splitlines()[-4:] == [
            "1. ✅ Đã xong",
            "2. 📷 Gửi ảnh",
            "3. ⏰ Xin thêm thời gian",
            "4. ❌ Không thực hiện được",
        ]

        # … answered by number: 3 = more time, 2 = the second choice (+7 days), then a reason.
        choices = await say(stack, CHAT, "3")
        assert "\n1. " in choices[-1] and "\n3. " in choices[-1]
        await say(stack, CHAT, "2")
        await say(stack, CHAT, "Đang chờ họp dân, xin lùi một tuần")
        async with db.session() as session:
            request = (await session.exec(select(Report).where(Report.kind == "extension"))).one()
        assert request.occurrence_id == first.id and request.status == "submitted"
        assert "họp dân" in request.note
        officer_texts = stack.fake.bot_texts(OFFICER_CHAT)
        assert officer_texts and "\n1. " in officer_texts[-1] and "\n2. " in officer_texts[-1]

        # The commune officer approves by typing 1; the village head is told.
        await say(stack, OFFICER_CHAT, "1")
        async with db.session() as session:
            decided = await session.get(Report, request.id)
            moved = await session.get(Occurrence, first.id)
        assert decided.status == "approved" and decided.decided_by_user_id == officer.id
        assert moved.due_at.date() == request.requested_until
        assert any(str(request.requested_until.day) in t for t in stack.fake.bot_texts(CHAT)[-2:])

        # A photo report: 2 = send a photo; the image is downloaded from Zalo's CDN and kept.
        await remind(second)
        await say(stack, CHAT, "2")
        photo = jpeg_bytes(320, 240, "orange")
        url = stack.fake.add_cdn("evidence.jpg", photo)
        before = len(stack.fake.bot_texts(CHAT))
        assert await deliver(stack, image_update(CHAT, url)) == 200
        await stack.settle()
        assert "1" in stack.fake.bot_texts(CHAT)[before]  # "Received photo 1 …"
        async with db.session() as session:
            evidence = (await session.exec(select(Evidence))).one()
        assert evidence.size == len(photo) and (evidence.width, evidence.height) == (320, 240)
        assert (Path(settings.data_dir) / evidence.path).read_bytes() == photo
        await say(stack, CHAT, "1")  # Continue
        await say(stack, CHAT, "1")  # Skip the note
        await say(stack, CHAT, "1")  # Send the report
        async with db.session() as session:
            done = await session.get(Occurrence, second.id)
            report = await session.get(Report, evidence.report_id)
        assert done.status == "done" and report.status == "submitted"
        assert all(len(t) <= 2000 for t in stack.fake.bot_texts())
    finally:
        await stack.close()


async def test_webhook_secret_is_checked_before_anything_is_written(bare_stack: ZaloStack, db):  # noqa: ANN001
    stack = bare_stack
    update = text_update(CHAT, "Xin chào", "m-0001")
    assert await deliver(stack, update, secret=None) == 403
    assert await deliver(stack, update, secret="wrong-secret") == 403
    assert await deliver(stack, update, secret="") == 403
    response = await stack.post(
        "/webhook/zalo-bot",
        b"not json at all",
        {SECRET_HEADER: "wrong", "Content-Type": "application/json"},
    )
    assert response.status == 403  # refused before the body is even read as JSON
    assert await count(db, InboundUpdate) == 0 and await count(db, Outbox) == 0

    # The right secret: the update (wrapped in {"ok": true, "result": …}) is handled once.
    assert await deliver(stack, update) == 200
    await stack.settle()
    assert await count(db, InboundUpdate) == 1
    assert len(stack.fake.bot_texts(CHAT)) == 1

    # Delivered again (bare this time): nothing changes, nothing is sent.
    assert await deliver(stack, update["result"]) == 200
    assert await deliver(stack, update) == 200
    await stack.settle()
    assert await count(db, InboundUpdate) == 1 and await count(db, Outbox) == 1
    assert len(stack.fake.bot_texts(CHAT)) == 1

    # A sticker from a stranger is answered (with the greeting), once.
    sticker = fixture("bot_sticker.json")
    assert await deliver(stack, sticker) == 200
    assert await deliver(stack, sticker) == 200
    await stack.settle()
    assert await count(db, InboundUpdate) == 2 and len(stack.fake.bot_texts(CHAT)) == 2

    # Not JSON, with the right secret: 400, nothing written.
    response = await stack.post(
        "/webhook/zalo-bot",
        b"{broken",
        {
            SECRET_HEADER: stack.app.settings.zalo_bot_webhook_secret,
            "Content-Type": "application/json",
        },
    )
    assert response.status == 400 and await count(db, InboundUpdate) == 2


async def queued(stack: ZaloStack, message: Outgoing, key: str) -> None:
    async with stack.app.db.session() as session:
        await enqueue(session, "zalo_bot", CHAT, message, key)
        await session.commit()


async def test_long_text_is_split_and_photos_go_as_signed_links(bare_stack: ZaloStack, settings):  # noqa: ANN001
    stack = bare_stack
    lines = [
        f"Dòng {n}: thôn đã thực hiện công khai thông tin theo quyết định 3012." for n in range(70)
    ]
    text = "\n".join(lines)
    assert len(text) > 4000
    await stack.channel.send(CHAT, Outgoing(text=text), "k1")
    parts = [m["text"] for m in stack.fake.bot_sent]
    assert len(parts) == 3 and all(len(p) <= 2000 for p in parts)
    assert "\n".join(parts).splitlines() == lines

    chart = Path(settings.data_dir) / "digests" / "2026-11-30" / "digest.png"
    chart.parent.mkdir(parents=True, exist_ok=True)
    png = jpeg_bytes(200, 100)  # a digest chart
    chart.write_bytes(png)
    photo = Outgoing(text="Báo cáo tháng", photo_path="digests/2026-11-30/digest.png")
    await queued(stack, photo, "k2")  # the link names this outbox row
    message_id = await stack.channel.send(CHAT, photo, "k2")
    sent = stack.fake.bot_sent[-1]
    assert sent["method"] == "sendPhoto" and sent["caption"] == "Báo cáo tháng"
    assert sent["message_id"] == message_id
    assert sent["photo"].startswith(f"{stack.url}/media/")
    url, status, data = stack.fake.fetched_photos[-1]
    assert status == 200 and data == png  # Zalo fetched it from our signed link

    # A spreadsheet cannot be sent on Zalo Bot: it goes as a signed link in the text.
    sheet = Path(settings.data_dir) / "digests" / "2026-11-30" / "bao-cao.xlsx"
    sheet.write_bytes(b"PK\x03\x04 fake xlsx")
    book = Outgoing(
        text="Tổng hợp",
        document_path="digests/2026-11-30/bao-cao.xlsx",
        document_name="bao-cao.xlsx",
    )
    await queued(stack, book, "k3")
    await stack.channel.send(CHAT, book, "k3")
    assert "bao-cao.xlsx: " + stack.url + "/media/" in stack.fake.bot_sent[-1]["text"]


async def test_platform_errors_become_delivery_errors(bare_stack: ZaloStack, db):  # noqa: ANN001
    stack = bare_stack
    stack.fake.bot_blocked.add("blocked-chat")
    with pytest.raises(DeliveryError) as blocked:
        await stack.channel.send("blocked-chat", Outgoing(text="Nhắc việc"), "e1")
    assert blocked.value.unreachable and blocked.value.permanent

    stack.fake.rate_limit_next = 1
    with pytest.raises(DeliveryError) as limited:
        await stack.channel.send(CHAT, Outgoing(text="Nhắc việc"), "e2")
    assert limited.value.retry_after == 1 and not limited.value.permanent

    # Through the sender: a rate limit is waited out and the message still delivered.
    from bot.channels.sender import RateLimiter
    from bot.core.services.outbox import enqueue

    stack.sender.limits = {"zalo_bot": RateLimiter(per_second=100, per_chat_interval=0)}
    stack.fake.rate_limit_next = 1
    async with db.session() as session:
        await enqueue(session, "zalo_bot", CHAT, Outgoing(text="Sau khi chờ"), "e3")
        await session.commit()
    assert await stack.sender.drain_once() == 1
    assert stack.fake.bot_texts(CHAT)[-1] == "Sau khi chờ"

    original = stack.app.settings.zalo_bot_token
    stack.app.settings.zalo_bot_token = "wrong:token"
    with pytest.raises(DeliveryError) as unauthorised:
        await stack.channel.send(CHAT, Outgoing(text="x"), "e4")
    assert unauthorised.value.permanent and not unauthorised.value.unreachable
    stack.app.settings.zalo_bot_token = original


async def test_long_polling_when_there_is_no_public_url(bare_stack: ZaloStack, db):  # noqa: ANN001
    stack = bare_stack
    stack.app.settings.public_url = ""
    stack.fake.webhook = {"url": "https://old.example/webhook", "secret_token": "x" * 10}
    stack.channel.poll_timeout = 1
    await stack.channel.start()
    assert stack.fake.webhook == {}  # deleteWebhook first, or getUpdates would be refused
    await asyncio.sleep(1.3)  # at least one empty poll (HTTP 408) goes by
    assert any(c.method == "getUpdates" for c in stack.fake.calls)
    update = text_update(CHAT, "Xin chào", "poll-1", wrapped=False)
    await stack.fake.updates.put(update)
    await stack.fake.updates.put(update)  # the same update twice: handled once
    for _ in range(100):
        if await count(db, InboundUpdate) == 1 and stack.fake.updates.empty():
            break
        await asyncio.sleep(0.05)
    await stack.channel.wait_idle()  # recorded, then handled by the inbox's worker
    await stack.sender.drain_once()
    assert await count(db, InboundUpdate) == 1
    assert len(stack.fake.bot_texts(CHAT)) == 1
    await stack.channel.stop()
