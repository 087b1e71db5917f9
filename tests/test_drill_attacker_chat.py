"""Drill: an attacker in the chat, on a real database (SQLite; PostgreSQL when configured).

What was reproduced on the old main and must not happen again: one single-use code
registering six chats at once on PostgreSQL, a brute force that starts over from every new chat
id, a village head declaring an election by typing `evk:election`, dates in the year 9999 and
negative extensions, a replayed old Zalo OA `unfollow`, and the Zalo Bot adapter downloading a
"photo" from loopback. Each refusal is the sentence the person reads, an audit row, and nothing
else written.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.config import Settings
from bot.db import Database
from bot.framework import Framework
from bot.i18n import translator
from bot.messages import Incoming, Kind
from bot.models import AuditLog, ChannelIdentity, Invite, Outbox, User
from handlers.router import Dispatcher
from tests.helpers.drill_support import changed, row_counts
from tests.helpers.rows import count
from tests.helpers.telegram_harness import small_world
from tests.helpers.world import World

pytestmark = pytest.mark.drill

vi = translator("vi")
USED = vi("The code {code} has already been used. Please ask the commune office for a new one.")
UNKNOWN = vi("I cannot find the code {code}. Please check it and type it again.")
BUSY = vi(
    "Many wrong codes have been typed in the last minute, so registration is paused "
    "for a moment. Please wait a minute and type your code again."
)


@pytest.fixture
async def world(settings: Settings, db: Database, framework: Framework) -> World:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await small_world(settings, db, framework)


def typed(chat: str, text: str, channel: str = "telegram") -> Incoming:
    return Incoming(
        channel=channel,
        external_id=chat,
        update_id=uuid.uuid4().hex,
        kind=Kind.text,
        text=text,
        display_name=f"chat {chat}",
    )


async def replies(db: Database, chat: str) -> list[str]:
    async with db.session() as session:
        rows = await session.exec(
            select(Outbox).where(Outbox.external_id == chat).order_by(col(Outbox.id))
        )
        return [row.payload["text"] for row in rows.all()]


async def audit_rows(db: Database, *actions: str) -> list[AuditLog]:
    async with db.session() as session:
        rows = await session.exec(
            select(AuditLog).where(col(AuditLog.action).in_(actions)).order_by(col(AuditLog.id))
        )
        return list(rows.all())


# --------------------------------------------------------------------------- invites


async def test_twenty_chats_sending_one_code_at_once_register_exactly_one(world: World) -> None:
    db = world.db
    invite = await world.invite(world.villages[0], "village_head")
    dispatcher = Dispatcher(world.app)
    chats = [f"77000{n:02d}" for n in range(20)]

    # Twenty registrations at the same moment, each in its own session and connection.
    await asyncio.gather(*(dispatcher.handle(typed(chat, invite.code)) for chat in chats))

    assert await count(db, User) == 1
    async with db.session() as session:
        identities = list((await session.exec(select(ChannelIdentity))).all())
        used = await session.get(Invite, invite.id)
    assert len(identities) == 1
    winner = identities[0].external_id
    assert used.used_at is not None and used.used_by_user_id == identities[0].user_id
    for chat in chats:
        answer = await replies(db, chat)
        if chat == winner:
            assert len(answer) == 1 and answer[0] != USED.format(code=invite.code)
        else:
            assert answer == [USED.format(code=invite.code)], (chat, answer)
    refusals = await audit_rows(db, "invite.wrong_code")
    assert sorted(r.subject for r in refusals) == sorted(
        f"telegram:{chat}" for chat in chats if chat != winner
    )
    assert {r.detail["reason"] for r in refusals} == {"used"}
    assert [r.subject for r in await audit_rows(db, "invite.redeemed")] == [f"telegram:{winner}"]


async def test_new_chat_ids_do_not_buy_new_guesses(world: World, settings: Settings) -> None:
    db = world.db
    settings.invite_wrong_codes_per_minute = 6
    invite = await world.invite(world.villages[0], "village_head")
    dispatcher = Dispatcher(world.app)
    guesses = [f"ZZZZ{n}{n}{n}{n}" for n in range(2, 8)]
    assert invite.code not in guesses

    # Six wrong codes, each from a chat never seen before: each one answered as unknown.
    for number, guess in enumerate(guesses):
        await dispatcher.handle(typed(f"88000{number}", guess))
        assert await replies(db, f"88000{number}") == [UNKNOWN.format(code=guess)]
    before = await row_counts(db)

    # The right code from yet another new chat: the code space is closed for the minute.
    await dispatcher.handle(typed("8800099", invite.code))

    assert await replies(db, "8800099") == [BUSY]
    assert await count(db, User) == 0 and await count(db, ChannelIdentity) == 0
    async with db.session() as session:
        assert (await session.get(Invite, invite.id)).used_at is None
    limited = await audit_rows(db, "invite.rate_limited")
    assert [(r.subject, r.detail["scope"], r.detail["code"]) for r in limited] == [
        ("telegram:8800099", "all", invite.code)
    ]
    grew = changed(before, await row_counts(db))
    assert grew == {"inbound_updates": 1, "dialog_states": 1, "outbox": 1, "audit_log": 1}, grew

    # A minute later the window has passed: the same code registers that chat.
    async with db.session() as session:
        for row in (await session.exec(select(AuditLog))).all():
            row.at -= timedelta(seconds=61)
            session.add(row)
        await session.commit()
    await dispatcher.handle(typed("8800099", invite.code))
    assert await count(db, User) == 1
