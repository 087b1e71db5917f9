"""The inbox claim that lets several workers share one inbox (bot/core/inbox.py,
`claim_recorded`): an update is claimed only when no earlier update of its chat waits, and on
PostgreSQL only by the transaction holding its chat, which another worker does not wait for.
"""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from sqlmodel import col, select

from bot.core.db import Database
from bot.core.inbox import chat_key, claim_recorded
from bot.core.models import InboundUpdate, utcnow

ANH = chat_key("telegram", "1001")
BINH = chat_key("telegram", "1002")


async def record(db: Database, *chats: str) -> list[int]:
    """One waiting update per entry of `chats`, in that order; their row ids."""
    async with db.session() as session:
        await session.exec(
            insert(InboundUpdate),
            params=[
                {
                    "channel": "telegram",
                    "update_id": str(number),
                    "chat_key": chat,
                    "received_at": utcnow(),
                    "payload": "{}",
                }
                for number, chat in enumerate(chats)
            ],
        )
        await session.commit()
        ids = await session.exec(select(InboundUpdate.id).order_by(col(InboundUpdate.id)))
        return list(ids.all())


async def claim(db: Database, row_id: int, chat: str | None) -> bool:
    async with db.session() as session:
        claimed = await claim_recorded(session, row_id, chat)
        await session.commit()
        return claimed


async def test_a_chats_later_update_waits_for_its_earlier_one(db: Database) -> None:
    first, other, second = await record(db, ANH, BINH, ANH)
    assert not await claim(db, second, ANH)  # the first one of the chat still waits
    assert await claim(db, other, BINH)  # another chat is not held up
    assert await claim(db, first, ANH)
    assert await claim(db, second, ANH)
    assert not await claim(db, second, ANH)  # handled once


async def test_a_dropped_row_is_claimed_whatever_waits_before_it(db: Database) -> None:
    _first, second = await record(db, ANH, ANH)
    assert await claim(db, second, None)


@pytest.mark.postgres
async def test_a_chat_held_by_one_worker_is_passed_by_another_without_waiting(
    db: Database,
) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite runs one worker (one writer at a time): nothing to hold")
    first, other, second = await record(db, ANH, BINH, ANH)
    async with db.session() as holder:  # worker A, in the middle of handling Anh's update
        assert await claim_recorded(holder, first, ANH)
        assert not await claim(db, first, ANH)  # worker B: at once, no wait for A's row
        assert not await claim(db, second, ANH)  # nor the next one of the chat
        assert await claim(db, other, BINH)  # another chat: B handles it meanwhile
        await holder.rollback()  # A's handling failed: its update waits again
    assert not await claim(db, second, ANH)  # still behind the first one
    assert await claim(db, first, ANH)
    assert await claim(db, second, ANH)
