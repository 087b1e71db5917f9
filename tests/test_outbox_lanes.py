"""Priority lanes in the outbox: the person who is talking is answered before a fan-out of
reminders, and no lane waits forever behind another (the real sender, over real HTTP to the fake
Bot API, which refuses more than 30 messages a second)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, select

from bot.channels.sender import RateLimiter
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import Outbox, OutboxLane, OutboxStatus
from bot.core.services.outbox import lane_for
from tests.helpers.telegram_harness import VILLAGE_HEAD, Harness, harness

FAN_OUT = 90  # three seconds of Telegram's limit


@pytest.fixture
async def tg(settings: Settings, db: Database, framework: Framework) -> AsyncIterator[Harness]:
    async with harness(settings, db, framework) as h:
        yield h


async def limit_like_telegram(tg: Harness) -> None:
    # What the harness sent at its test pace (no limit) leaves the fake's one-second window
    # first: the limiter starts counting now, and so does the fake.
    await asyncio.sleep(1.0)
    tg.fake.limit_per_second = 30
    tg.runtime.sender.limits["telegram"] = RateLimiter(per_second=30, per_chat_interval=0)


async def test_a_tap_is_answered_before_a_fan_out_of_queued_reminders(tg: Harness) -> None:
    chat = 701
    await tg.register(chat, tg.world.villages[0], VILLAGE_HEAD)
    assert await tg.say(tg.fake.command(chat, "viec")) == 200
    occurrence_id = int(tg.buttons_to(chat, "done:")[0].split(":")[1])
    await limit_like_telegram(tg)
    reminded = set(await tg.queue("remind", FAN_OUT, 9_000_000))
    before = len(tg.fake.calls)

    await tg.press(chat, f"done:{occurrence_id}")  # the sender drains everything due

    # What reached a chat, in order: new messages, and the tapped card edited into the answer.
    after = [
        call
        for call in tg.fake.calls[before:]
        if call.ok and call.method.lower() in ("sendmessage", "editmessagetext")
    ]
    to_reminded = [n for n, call in enumerate(after) if call.params["chat_id"] in reminded]
    to_tapper = [n for n, call in enumerate(after) if call.params["chat_id"] == chat]
    assert len(to_reminded) == FAN_OUT, "every reminder went out, none twice"
    assert to_tapper, "the tap was answered"
    assert max(to_tapper) < min(to_reminded), "the answer went before every queued reminder"
    async with tg.db.session() as session:
        states = set(
            (
                await session.exec(select(Outbox.status).where(Outbox.lane == OutboxLane.reminder))
            ).all()
        )
    assert states == {OutboxStatus.sent}
    assert not [c for c in tg.fake.calls if c.status == 429], "within Telegram's limit"


async def test_no_lane_waits_for_another_to_empty(tg: Harness) -> None:
    await limit_like_telegram(tg)
    # More replies, news and reminders than one batch holds, and a few digests last.
    await tg.queue("reply:telegram", 40, 1_000)
    await tg.queue("notify:approval", 40, 2_000)
    await tg.queue("remind", 40, 3_000)
    digests = set(await tg.queue("digest", 5, 4_000))

    assert await tg.runtime.sender.drain_once() > 0  # one batch
    first_batch = {sent.chat_id for sent in tg.fake.messages}
    assert len(first_batch) == tg.runtime.sender.claim_size == 30
    for first_chat in (1_000, 2_000, 3_000):
        assert len({c for c in first_batch if first_chat <= c < first_chat + 1_000}) >= 3
    assert first_batch & digests, "a digest rides in the first batch, behind everything else"
    async with tg.db.session() as session:
        order = (
            await session.exec(
                select(Outbox.lane)
                .where(col(Outbox.status) == OutboxStatus.sent)
                .order_by(col(Outbox.sent_at), col(Outbox.id))
            )
        ).all()
    assert list(order) == sorted(order), "within a batch, the lanes go in order"


def test_each_message_has_its_lane_by_what_it_is() -> None:
    assert lane_for("reply:telegram:17:1") == OutboxLane.reply
    assert lane_for("notify:approval:4") == OutboxLane.notify
    assert lane_for("flag:9:abc") == OutboxLane.notify
    assert lane_for("remind:4:20261118:ff") == OutboxLane.reminder
    assert lane_for("remind:4:20261118:ff:2", "remind:4:20261118:ff") == OutboxLane.reminder
    assert lane_for("digest:4:daily:20261118") == OutboxLane.digest
    assert lane_for("evidence:4:20261118") == OutboxLane.digest
