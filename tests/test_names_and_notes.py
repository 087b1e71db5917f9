"""People have names (asked at registration, with an optional phone number), and nothing a
village head writes is lost: a photo's caption is the note, an over-long note is refused whole."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import Outbox, Report, User
from handlers.onboarding import clean_name, normalise_mobile
from handlers.router import Dispatcher
from tests.helpers.world import build_world
from tests.test_every_message import Chat, _last_report, _open_ids


async def outbox(db: Database, external_id: str) -> list[Outbox]:
    async with db.session() as session:
        rows = await session.exec(
            select(Outbox).where(Outbox.external_id == external_id).order_by(col(Outbox.id))
        )
        return list(rows.all())


async def the_user(db: Database, user_id: int) -> User:
    async with db.session() as session:
        return await session.get(User, user_id)


def test_a_vietnamese_mobile_is_stored_as_84_and_anything_else_refused() -> None:
    assert normalise_mobile("0905 123 456") == "84905123456"
    assert normalise_mobile("+84 905-123-456") == "84905123456"
    assert normalise_mobile("84.383.123.456") == "84383123456"
    for wrong in ("0205123456", "090512345", "12345678", "0905 123 4567", "abc"):
        assert normalise_mobile(wrong) is None
    assert clean_name("  nguyễn  văn an ") == "Nguyễn Văn An"
    assert clean_name("xong") is None and clean_name("3") is None and clean_name("done:12") is None


@pytest.mark.parametrize("channel", ["telegram", "zalo_bot"])
async def test_registration_asks_the_name_then_a_phone_and_greets_by_name(
    channel: str, settings: Settings, db: Database, framework: Framework
) -> None:
    world = await build_world(settings, db, framework)
    chat = Chat(Dispatcher(world.app), channel, "new-head")
    invite = await world.invite(world.villages[0], "village_head")
    await chat.say(f"/start {invite.code}")
    welcome = (await outbox(db, "new-head"))[-1].payload["text"]
    assert welcome.startswith("Chào mừng") and "quay lại" not in welcome
    assert "Tổ trưởng Tổ dân phố 1, phường Vĩnh Hòa" in welcome
    assert "họ và tên" in welcome
    user_id = (await outbox(db, "new-head"))[-1].user_id

    await chat.say("nguyễn văn an")
    assert (await the_user(db, user_id)).name == "Nguyễn Văn An"
    ask = (await outbox(db, "new-head"))[-1].payload
    assert "Nguyễn Văn An" in ask["text"]
    assert bool(ask["contact_label"]) == (channel == "telegram")  # Telegram's contact button

    await chat.say("12345678")
    refused = (await outbox(db, "new-head"))[-1].payload["text"]
    assert "12345678" in refused and "không phải số di động" in refused
    assert (await the_user(db, user_id)).phone is None

    await chat.say("0905 123 456")
    assert (await the_user(db, user_id)).phone == "84905123456"

    await chat.say("/start")
    greeting = (await outbox(db, "new-head"))[-1].payload["text"]
    assert greeting.startswith("Chào anh/chị Nguyễn Văn An (Tổ trưởng Tổ dân phố 1")
    assert "quay lại" not in greeting and "Chào mừng" not in greeting


async def test_a_shared_telegram_contact_is_the_phone_and_a_non_name_is_handled_as_usual(
    settings: Settings, db: Database, framework: Framework
) -> None:
    world = await build_world(settings, db, framework)
    chat = Chat(Dispatcher(world.app), "telegram", "head-2")
    invite = await world.invite(world.villages[0], "village_head")
    await chat.say(f"/start {invite.code}")
    user_id = (await outbox(db, "head-2"))[-1].user_id
    await chat.say("da xong")  # not a name: the "đã xong" journey, as without the question
    asked = (await outbox(db, "head-2"))[-1].payload
    assert any(b["data"].startswith("qdone:") for row in asked["buttons"] for b in row)
    assert (await the_user(db, user_id)).name == ""  # nothing taken as a name

    await chat.say("/start")
    await chat.say("Trần Thị Bình")
    from bot.core.messages import Kind

    await chat.send(Kind.contact, text="+84905123456")
    person = await the_user(db, user_id)
    assert (person.name, person.phone) == ("Trần Thị Bình", "84905123456")


async def test_a_photo_caption_is_the_note_and_a_long_note_is_refused_whole(
    settings: Settings, db: Database, framework: Framework
) -> None:
    world = await build_world(settings, db, framework)
    head = await world.person("Nguyễn Văn An", world.villages[0], "village_head", "zalo_bot", "h")
    chat = Chat(Dispatcher(world.app), "zalo_bot", "h")
    occurrence_id = (await _open_ids(db, world.villages[0]))[0]
    await chat.tap(f"done:{occurrence_id}")
    report_id = await _last_report(db, "done")
    await chat.photo("Đã niêm yết tại nhà văn hóa tổ dân phố")
    await chat.photo("Ảnh thứ hai")
    async with db.session() as session:
        assert (await session.get(Report, report_id)).note == (
            "Đã niêm yết tại nhà văn hóa tổ dân phố\nẢnh thứ hai"
        )
    await chat.tap(f"next:{report_id}")
    await chat.say("x" * 2001)
    answer = (await outbox(db, "h"))[-1].payload["text"]
    assert "2.001" in answer and "2.000" in answer
    async with db.session() as session:
        kept = await session.get(Report, report_id)
    assert kept.note == "Đã niêm yết tại nhà văn hóa tổ dân phố\nẢnh thứ hai"  # not cut
    await chat.tap(f"skip:{report_id}")
    await chat.tap(f"send:{report_id}")
    async with db.session() as session:
        sent = await session.get(Report, report_id)
    assert (sent.status, sent.user_id) == ("submitted", head.id)
    assert sent.note.endswith("Ảnh thứ hai")


def test_telegram_shows_the_contact_button_as_a_reply_keyboard() -> None:
    from telegram import ReplyKeyboardMarkup

    from bot.channels.telegram import _markup
    from bot.core.messages import Button, Outgoing

    markup = _markup(
        Outgoing(
            text="…",
            buttons=[[Button("⏭️ Bỏ qua", "skipphone:")]],
            contact_label="📱 Gửi số điện thoại",
        )
    )
    assert isinstance(markup, ReplyKeyboardMarkup)
    first, second = markup.keyboard
    assert first[0].request_contact and first[0].text == "📱 Gửi số điện thoại"
    assert second[0].text == "⏭️ Bỏ qua"  # sent back as text, read as "skip"


async def test_an_over_long_reason_for_more_time_is_refused_whole(
    settings: Settings, db: Database, framework: Framework
) -> None:
    world = await build_world(settings, db, framework)
    await world.person("Nguyễn Văn An", world.villages[0], "village_head", "web", "h")
    chat = Chat(Dispatcher(world.app), "web", "h")
    occurrence_id = (await _open_ids(db, world.villages[0]))[0]
    await chat.tap(f"ext:{occurrence_id}")
    await chat.tap(f"extd:{occurrence_id}:7")
    await chat.say("y" * 2400)
    assert "2.400" in (await outbox(db, "h"))[-1].payload["text"]
    assert await _last_report(db, "extension") is None  # nothing recorded, nothing cut
    await chat.say("Mưa bão")
    async with db.session() as session:
        request = await session.get(Report, await _last_report(db, "extension"))
    assert request.note == "Mưa bão"
