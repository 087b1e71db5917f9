"""The sender keeps sending while the database makes its writes wait (a sweep's batch holding
SQLite's one writer): it marks beside the sending, not in its way, and claims its next batch
while the current one goes out; stopping gives a batch claimed ahead back to the queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlmodel import col, select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import Outbox, OutboxStatus
from tests.helpers.telegram_harness import Harness, harness


@pytest.fixture
async def tg(settings: Settings, db: Database, framework: Framework) -> AsyncIterator[Harness]:
    async with harness(settings, db, framework) as h:
        h.runtime.sender.limits = {}  # the platform's pace is not what these tests are about
        yield h


async def rows_of(tg: Harness, chats: list[int]) -> list[tuple[str, int]]:
    """(status, attempts) of the messages to `chats`."""
    async with tg.db.session() as session:
        return list(
            (
                await session.exec(
                    select(Outbox.status, Outbox.attempts).where(
                        col(Outbox.external_id).in_([str(chat) for chat in chats])
                    )
                )
            ).all()
        )


async def statuses(tg: Harness, chats: list[int]) -> dict[str, int]:
    found: dict[str, int] = {}
    for status, _attempts in await rows_of(tg, chats):
        found[str(status)] = found.get(str(status), 0) + 1
    return found


def sends_to(tg: Harness, chats: list[int]) -> list[int]:
    wanted = set(chats)
    return [
        call.params["chat_id"]
        for call in tg.fake.calls
        if call.ok and call.method.lower() == "sendmessage" and call.params["chat_id"] in wanted
    ]


async def test_a_batch_goes_out_while_its_marks_wait_for_the_writer(tg: Harness) -> None:
    if not tg.db.is_sqlite:
        pytest.skip("the writer turn exists on SQLite only (PostgreSQL has many writers)")
    sender = tg.runtime.sender
    chats = await tg.queue("busy", 24, 9_100_000)  # one lane: a batch of 30 keeps 6 for the others
    rows = await sender._claim()
    assert len(rows) == 24
    async with tg.db.writer():  # another writer's transaction (a sweep's batch) holds it
        sending = asyncio.create_task(sender._send_batch(rows))
        for _ in range(200):  # bounded: 10 s
            if len(sends_to(tg, chats)) == 24 or sending.done():
                break
            await asyncio.sleep(0.05)
        assert sorted(sends_to(tg, chats)) == chats, "every row sent while the writer was held"
        assert await statuses(tg, chats) == {"sending": 24}, "none marked before its turn"
    assert await asyncio.wait_for(sending, timeout=30) == 24
    assert await statuses(tg, chats) == {"sent": 24}
    assert sorted(sends_to(tg, chats)) == chats, "none sent twice"


async def test_the_running_sender_sends_every_row_once_claiming_ahead(tg: Harness) -> None:
    sender = tg.runtime.sender
    sender.claim_size = 10
    chats = await tg.queue("busy", 95, 9_200_000)
    task = asyncio.create_task(sender.run(idle_poll=0.05))
    try:
        for _ in range(400):  # bounded: 20 s
            if (await statuses(tg, chats)).get("sent") == 95:
                break
            await asyncio.sleep(0.05)
    finally:
        sender.stop()
        await asyncio.wait_for(task, timeout=30)
    assert await statuses(tg, chats) == {"sent": 95}
    assert sorted(sends_to(tg, chats)) == chats, "every row once"


async def test_stopping_gives_a_batch_claimed_ahead_back_to_the_queue(tg: Harness) -> None:
    sender = tg.runtime.sender
    sender.claim_size = 10
    chats = await tg.queue("busy", 20, 9_300_000)  # two batches
    claims: list[list[int]] = []
    claim, send_batch = sender._claim, sender._send_batch

    async def recorded_claim() -> list[Outbox]:
        rows = await claim()
        claims.append([int(row.external_id) for row in rows])
        return rows

    async def send_then_stop(rows: list[Outbox], **how: bool) -> int:
        delivered = await send_batch(rows, **how)
        sender.stop()  # told to stop while the next batch is claimed, or just after
        return delivered

    sender._claim = recorded_claim  # type: ignore[method-assign]
    sender._send_batch = send_then_stop  # type: ignore[method-assign]
    await asyncio.wait_for(sender.run(idle_poll=0.05), timeout=30)
    assert len(claims) == 2 and claims[1], "the second batch was claimed ahead"
    first, ahead = claims
    assert not set(first) & set(ahead) and set(first + ahead) <= set(chats)
    assert await statuses(tg, first) == {"sent": len(first)}
    assert sends_to(tg, ahead) == [], "nothing of the batch claimed ahead was sent"
    rows = await rows_of(tg, ahead)
    assert sorted(rows) == [(OutboxStatus.pending, 0)] * len(ahead), "back in the queue, untried"
