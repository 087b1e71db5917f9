"""Drill: abuse on the Zalo channels, end to end (our server on loopback, fake Zalo platforms,
a real database).

Telegram and the simulator already cover a wrong or expired code, a forged button and a
non-image document (tests/test_telegram_e2e.py, tests/test_web_simulator.py); here is what was
missing: a brute-forced code (the rate limit, on any channel), an invite used twice, a forged
button on Zalo OA, a 25 MB photo and a non-image renamed `.jpg` on Zalo. Each must get a clear
answer (the exact sentence the person reads), an audit row, and no change.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.channels.zalo_bot import SECRET_HEADER, ZaloBotChannel
from bot.channels.zalo_oa import ZaloOAChannel
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.i18n import translator
from bot.core.models import (
    AuditLog,
    ChannelIdentity,
    Evidence,
    Invite,
    Occurrence,
    Report,
    User,
)
from bot.core.services.evidence import MAX_PHOTO_BYTES
from bot.core.services.people import WRONG_CODE_LIMIT
from tests.helpers.drill_support import row_counts
from tests.helpers.fake_zalo import ZaloStack, fixture, start_stack
from tests.helpers.rows import count
from tests.helpers.telegram_harness import small_world

pytestmark = pytest.mark.drill

vi = translator("vi")
TOO_MANY = vi(
    "Too many wrong codes. Please wait an hour and try again, or call the commune "
    "office to check your code."
)
UNKNOWN = vi("I cannot find the code {code}. Please check it and type it again.")
USED = vi("The code {code} has already been used. Please ask the commune office for a new one.")
NOT_YOURS = vi(
    "This task is not one of yours, so I cannot change it. Type /viec to see your tasks."
)
TOO_LARGE = vi("This file is larger than 20 MB. Please send a smaller photo.")
NOT_IMAGE = vi("I can only take photos as evidence. Please send a picture (JPG or PNG).")


async def audits(db: Database, subject: str) -> list[AuditLog]:
    async with db.session() as session:
        return list(
            (
                await session.exec(
                    select(AuditLog).where(AuditLog.subject == subject).order_by(col(AuditLog.id))
                )
            ).all()
        )


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Rows added per table; the OA token store (filled on the first send) is not state."""
    return {
        name: after[name] - before[name]
        for name in after
        if after[name] != before[name] and name != "platform_tokens"
    }


def evidence_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "evidence"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
async def world(settings: Settings, db: Database, framework: Framework):  # noqa: ANN201
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await small_world(settings, db, framework)


@pytest.fixture
async def bot_stack(world) -> AsyncIterator[ZaloStack]:  # noqa: ANN001
    stack = await start_stack(world.app, ZaloBotChannel)
    yield stack
    await stack.close()


@pytest.fixture
async def oa_stack(world) -> AsyncIterator[ZaloStack]:  # noqa: ANN001
    stack = await start_stack(world.app, ZaloOAChannel)
    yield stack
    await stack.close()


# --------------------------------------------------------------------------- Zalo Bot


def bot_text(chat: str, text: str) -> dict:
    body = copy.deepcopy(fixture("bot_text.json"))
    message = body["result"]["message"]
    message["from"]["id"] = message["chat"]["id"] = chat
    message["text"] = text
    message["message_id"] = uuid.uuid4().hex[:20]
    return body


def bot_image(chat: str, url: str) -> dict:
    body = copy.deepcopy(fixture("bot_image.json"))
    message = body["message"]
    message["from"]["id"] = message["chat"]["id"] = chat
    message["photo_url"] = url
    message["message_id"] = uuid.uuid4().hex[:20]
    return body


async def bot_says(stack: ZaloStack, update: dict) -> list[str]:
    chat = (update.get("result") or update)["message"]["chat"]["id"]
    before = len(stack.fake.bot_texts(chat))
    headers = {
        SECRET_HEADER: stack.app.settings.zalo_bot_webhook_secret,
        "Content-Type": "application/json",
    }
    response = await stack.post("/webhook/zalo-bot", json.dumps(update).encode(), headers)
    assert response.status == 200
    await stack.settle()
    return stack.fake.bot_texts(chat)[before:]


async def test_a_brute_forced_code_is_refused_even_when_the_guess_is_right(
    bot_stack: ZaloStack, world
) -> None:  # noqa: ANN001
    stack, db = bot_stack, world.db
    chat = "b1f0rce0000000000001"
    invite = await world.invite(world.villages[0], "village_head")
    guesses = [f"ZZZZ{n}{n}{n}{n}" for n in range(2, 2 + WRONG_CODE_LIMIT)]
    assert invite.code not in guesses
    for guess in guesses:
        assert await bot_says(stack, bot_text(chat, guess)) == [UNKNOWN.format(code=guess)]
    before = await row_counts(db)

    # The sixth try within the hour is the right code: refused all the same.
    assert await bot_says(stack, bot_text(chat, invite.code)) == [TOO_MANY]
    assert await bot_says(stack, bot_text(chat, f"/start {invite.code}")) == [TOO_MANY]

    after = await row_counts(db)
    assert await count(db, User) == 0 and await count(db, ChannelIdentity) == 0
    async with db.session() as session:
        assert (await session.get(Invite, invite.id)).used_at is None
    rows = await audits(db, f"zalo_bot:{chat}")
    assert [(r.action, r.detail.get("reason")) for r in rows] == [
        ("invite.wrong_code", "unknown")
    ] * WRONG_CODE_LIMIT + [("invite.rate_limited", None)] * 2
    assert [r.detail["code"] for r in rows] == [*guesses, invite.code, invite.code]
    # Besides the two refusals (their inbound rows, replies and audit rows), nothing changed.
    grew = growth(before, after)
    assert grew == {"inbound_updates": 2, "outbox": 2, "audit_log": 2}, grew

    # An hour later the window has passed: the same right code registers the chat.
    async with db.session() as session:
        for row in (
            await session.exec(select(AuditLog).where(AuditLog.subject == f"zalo_bot:{chat}"))
        ).all():
            row.at -= timedelta(minutes=61)
            session.add(row)
        await session.commit()
    await bot_says(stack, bot_text(chat, invite.code))
    assert await count(db, User) == 1
    async with db.session() as session:
        assert (await session.get(Invite, invite.id)).used_at is not None


async def test_a_25_mb_photo_on_zalo_bot_is_refused_and_nothing_is_kept(
    bot_stack: ZaloStack, world, settings: Settings
) -> None:  # noqa: ANN001
    stack, db = bot_stack, world.db
    chat = "b1g0000000000000000f"
    head = await world.person("Trưởng thôn", world.villages[0], "village_head", "zalo_bot", chat)
    url = stack.fake.add_cdn("huge.jpg", b"\xff\xd8\xff\xe0" + bytes(25 * 1024 * 1024))
    before = await row_counts(db)

    assert await bot_says(stack, bot_image(chat, url)) == [TOO_LARGE]

    rows = await audits(db, f"zalo_bot:{chat}")
    assert [(r.action, r.actor_user_id) for r in rows] == [("evidence.too_large", head.id)]
    assert rows[0].detail["size"] > MAX_PHOTO_BYTES
    assert await count(db, Evidence) == 0 and evidence_files(settings) == []
    after = await row_counts(db)
    grew = growth(before, after)
    assert grew == {"inbound_updates": 1, "dialog_states": 1, "outbox": 1, "audit_log": 1}, grew


# --------------------------------------------------------------------------- Zalo OA


def oa_event(name: str, user: str, **message: object) -> dict:
    from datetime import UTC, datetime

    body = copy.deepcopy(fixture(f"oa_{name}.json"))
    body["timestamp"] = str(int(datetime.now(UTC).timestamp() * 1000))
    body["sender"]["id"] = user
    body["message"]["msg_id"] = uuid.uuid4().hex
    body["message"].update(message)
    return body


async def oa_says(stack: ZaloStack, body: dict) -> list[str]:
    user = body["sender"]["id"]
    before = len(stack.fake.oa_texts(user))
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = stack.fake.oa_headers(raw, stack.app.settings.zalo_oa_secret_key, body["timestamp"])
    response = await stack.post("/webhook/zalo-oa", raw, headers)
    assert response.status == 200
    await stack.settle()
    return stack.fake.oa_texts(user)[before:]


async def test_an_invite_used_twice_registers_only_the_first(oa_stack: ZaloStack, world) -> None:  # noqa: ANN001
    stack, db = oa_stack, world.db
    first, second = "1000000000000000001", "1000000000000000002"
    invite = await world.invite(world.villages[0], "village_head")
    await oa_says(stack, oa_event("user_send_text", first, text=invite.code))
    assert await count(db, User) == 1
    before = await row_counts(db)

    answer = await oa_says(stack, oa_event("user_send_text", second, text=invite.code))

    assert answer == [USED.format(code=invite.code)]
    rows = await audits(db, f"zalo_oa:{second}")
    assert [(r.action, r.detail["reason"], r.detail["code"]) for r in rows] == [
        ("invite.wrong_code", "used", invite.code)
    ]
    async with db.session() as session:
        identities = (await session.exec(select(ChannelIdentity))).all()
        used = await session.get(Invite, invite.id)
    assert [i.external_id for i in identities] == [first]
    assert used.used_by_user_id == identities[0].user_id
    after = await row_counts(db)
    grew = growth(before, after)
    # The stranger's inbound row, dialog state, the refusal and its audit row: nothing else.
    assert grew == {"inbound_updates": 1, "dialog_states": 1, "outbox": 1, "audit_log": 1}, grew


async def test_a_forged_button_for_another_village_is_refused_on_zalo_oa(
    oa_stack: ZaloStack, world
) -> None:  # noqa: ANN001
    stack, db = oa_stack, world.db
    user = "2000000000000000001"
    head = await world.person("Trưởng thôn", world.villages[0], "village_head", "zalo_oa", user)
    async with db.session() as session:
        theirs = (
            await session.exec(
                select(Occurrence)
                .where(Occurrence.unit_id == world.villages[1].id)
                .order_by(col(Occurrence.id))
            )
        ).first()
    assert theirs is not None and theirs.status == "open"
    forged = [f"done:{theirs.id}", f"ext:{theirs.id}", f"qdone:{theirs.id}"]

    for data in forged:  # a button payload is text on Zalo OA: anyone can type one
        assert await oa_says(stack, oa_event("user_send_text", user, text=data)) == [NOT_YOURS]

    async with db.session() as session:
        after = await session.get(Occurrence, theirs.id)
    assert (after.status, after.done_at, after.due_at) == ("open", None, theirs.due_at)
    assert await count(db, Report) == 0
    rows = await audits(db, f"zalo_oa:{user}")
    assert [(r.action, r.actor_user_id, r.detail["data"]) for r in rows] == [
        ("forbidden", head.id, data) for data in forged
    ]


async def test_a_non_image_renamed_jpg_on_zalo_oa_is_refused(
    oa_stack: ZaloStack, world, settings: Settings
) -> None:  # noqa: ANN001
    stack, db = oa_stack, world.db
    user = "3000000000000000001"
    head = await world.person("Trưởng thôn", world.villages[0], "village_head", "zalo_oa", user)
    url = stack.fake.add_cdn("bien-ban.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3 not a picture")
    attachment = {"type": "image", "payload": {"url": url, "thumbnail": url}}
    before = await row_counts(db)

    answer = await oa_says(stack, oa_event("user_send_image", user, attachments=[attachment]))

    assert answer == [NOT_IMAGE]
    assert len(stack.fake.calls_to("cdn")) == 1  # it was looked at, not trusted by its name
    rows = await audits(db, f"zalo_oa:{user}")
    assert [(r.action, r.actor_user_id) for r in rows] == [("evidence.not_image", head.id)]
    assert await count(db, Evidence) == 0 and evidence_files(settings) == []
    after = await row_counts(db)
    grew = growth(before, after)
    assert grew == {"inbound_updates": 1, "dialog_states": 1, "outbox": 1, "audit_log": 1}, grew


async def test_a_25_mb_file_on_zalo_oa_is_refused_before_it_is_downloaded(
    oa_stack: ZaloStack, world, settings: Settings
) -> None:  # noqa: ANN001
    stack, db = oa_stack, world.db
    user = "3000000000000000002"
    await world.person("Trưởng thôn", world.villages[0], "village_head", "zalo_oa", user)
    url = stack.fake.add_cdn("lon.jpg", b"\xff\xd8\xff\xe0")
    size = 25 * 1024 * 1024
    attachment = {"type": "file", "payload": {"url": url, "name": "lon.jpg", "size": str(size)}}
    body = oa_event("user_send_image", user, attachments=[attachment])
    body["event_name"] = "user_send_file"

    assert await oa_says(stack, body) == [TOO_LARGE]

    assert stack.fake.calls_to("cdn") == []  # the announced size was enough
    rows = await audits(db, f"zalo_oa:{user}")
    assert [(r.action, r.detail["size"]) for r in rows] == [("evidence.too_large", size)]
    assert await count(db, Evidence) == 0 and evidence_files(settings) == []
