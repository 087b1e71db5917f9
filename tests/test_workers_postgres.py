"""Two `papibot worker` processes on one PostgreSQL share the inbox and the outbox.

Each worker sends through a port of its own on a fake Telegram (loopback), so the fake knows
which process sent what. Two phases, the same two processes:

1. 20 chats × 15 updates are written into the inbox (interleaved, as they would arrive) once
   both workers run. Every update is handled once (marked handled, its replies queued once);
   per chat, the replies are queued in the order of the chat's updates (outbox ids follow
   update ids: handling kept the order) and reach the platform in that order, whichever worker
   took each; every reply reaches the platform once.
2. 4 chats × 12 news messages are queued at once: two senders claim from one outbox. Each
   message reaches the platform once, each chat's in the order queued, although a claim of 30
   rows holds several messages of a chat that wait for the chat's rate (one a second after a
   burst of 5), and the other sender, with a full burst of its own, would go ahead of them.

Both workers must have done part of phase 1, or it tested nothing across processes.
SQLite allows one such process: `test_a_second_worker_on_sqlite_is_refused`.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.core.db import Database
from bot.core.models import InboundUpdate, Outbox, OutboxStatus
from tests.conftest import POSTGRES_URL
from tests.helpers.drill_support import Child, child_env, wait_for
from tests.helpers.fake_telegram import SentMessage
from tests.helpers.worker_rig import (
    FIRST_CHAT,
    TOKEN,
    PortedTelegram,
    Workers,
    create_database,
    drop_database,
    fill_inbox,
    fill_outbox,
    outbox_rows,
    sent_count,
    time_to_handle,
    update_rows,
)

CHATS = 20
PER_CHAT = 15  # updates per chat
NEWS_CHATS = 4  # chats of the fan-out (phase 2) …
NEWS_PER_CHAT = 12  # … and messages queued for each: more than a chat's burst of 5


def update_of(key: str) -> int:
    """`reply:telegram:<update id>:<n>` → the update id."""
    return int(key.split(":")[2])


def check_sent_once_in_order(messages: list[SentMessage], rows: list[Outbox], chats: int) -> None:
    """Every row reached the platform once, and each chat's rows arrived in `rows`' order."""
    assert all(row.status == OutboxStatus.sent for row in rows), Counter(r.status for r in rows)
    texts = Counter((message.chat_id, message.text) for message in messages)
    wanted = Counter((int(row.external_id), row.payload["text"]) for row in rows)
    assert texts == wanted  # none missing, none doubled
    by_chat: dict[int, list[Outbox]] = defaultdict(list)
    for row in rows:
        by_chat[int(row.external_id)].append(row)
    assert len(by_chat) == chats
    for chat, queued in by_chat.items():
        arrived = [message.text for message in messages if message.chat_id == chat]
        assert arrived == [row.payload["text"] for row in queued], chat


def check_both_took_part(fake: PortedTelegram, sent: list[tuple[int, int]]) -> None:
    by_port = Counter(fake.senders[message] for message in sent)
    assert set(by_port) == set(fake.ports), by_port
    assert min(by_port.values()) >= len(sent) // 10, by_port


@pytest.mark.postgres
@pytest.mark.skipif(
    not POSTGRES_URL, reason="several workers need PostgreSQL: set PAPIBOT_TEST_DATABASE_URL"
)
async def test_two_worker_processes_keep_each_chats_order_and_do_everything_once(
    tmp_path: Path,
) -> None:
    name, url = await create_database(POSTGRES_URL)
    db = Database(url)
    fake = PortedTelegram(token=TOKEN)
    workers: Workers | None = None
    try:
        await db.upgrade()  # what `papibot init` does
        for chat in range(CHATS):
            fake.user(FIRST_CHAT + chat)
        await fake.start()
        started = time.monotonic()
        workers = await Workers.start(2, url, fake, tmp_path)
        print(f"\n[two workers] started in {time.monotonic() - started:.1f} s")

        updates = update_rows(CHATS, PER_CHAT)
        await fill_inbox(db, updates)
        took = await time_to_handle(db, len(updates), workers, within=150)
        print(f"[two workers] {len(updates)} updates handled and answered in {took:.1f} s")
        async with db.session() as session:
            inbox = (await session.exec(select(InboundUpdate))).all()
            replies = (await session.exec(select(Outbox).order_by(col(Outbox.id)))).all()
        first_phase = list(fake.messages)

        news = outbox_rows(NEWS_CHATS, NEWS_PER_CHAT)
        await fill_outbox(db, news)

        async def all_sent() -> bool:
            return await sent_count(db) == len(replies) + len(news)

        started = time.monotonic()
        await wait_for(all_sent, "the queued news to be sent", 120, 0.05, workers.logs)
        print(
            f"[two workers] {len(news)} queued messages sent in {time.monotonic() - started:.1f} s"
        )
        assert await workers.stop() == [0, 0], workers.logs()
        async with db.session() as session:
            queued = (
                await session.exec(
                    select(Outbox)
                    .where(col(Outbox.idempotency_key).startswith("news:"))
                    .order_by(col(Outbox.id))
                )
            ).all()
    finally:
        if workers is not None:
            await workers.kill()
        await fake.close()
        await db.dispose()
        await drop_database(POSTGRES_URL, name)

    # 1. Every update handled once, each with its replies queued once …
    assert len(inbox) == CHATS * PER_CHAT
    assert all(row.handled_at is not None and row.payload is None for row in inbox)
    keys = [row.idempotency_key for row in replies]
    assert len(keys) == len(set(keys))
    assert {update_of(key) for key in keys} == {int(row.update_id) for row in inbox}
    # … in each chat's order (the outbox ids are the order the replies were queued) …
    for chat in range(CHATS):
        updates = [
            update_of(r.idempotency_key) for r in replies if r.external_id == str(FIRST_CHAT + chat)
        ]
        assert updates == sorted(updates), (chat, updates)
    # … and sent once each, in that order, by both workers.
    check_sent_once_in_order(first_phase, replies, CHATS)
    check_both_took_part(fake, [(m.chat_id, m.message_id) for m in first_phase])

    # 2. The fan-out: once each, each chat's in the order queued, by both senders.
    later = fake.messages[len(first_phase) :]
    check_sent_once_in_order(later, queued, NEWS_CHATS)


async def test_a_second_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    """SQLite allows one process: a second `papibot worker` (or `run`) says so and exits 2,
    and once the first is gone, one starts again (a lock the system lets go of)."""
    data = tmp_path / "data"
    url = f"sqlite+aiosqlite:///{data / 'papibot.db'}"
    db = Database(url)
    await db.upgrade()
    await db.dispose()
    env = child_env(
        data_dir=str(data),
        database_url=url,
        public_url="",
        simulator_enabled="false",
        scheduler_enabled="false",
        secret_key="workers-secret",
    )
    first = Child(env=env, cwd=tmp_path, log_path=tmp_path / "first.log", command="worker")
    second = Child(env=env, cwd=tmp_path, log_path=tmp_path / "second.log", command="worker")
    third = Child(env=env, cwd=tmp_path, log_path=tmp_path / "third.log", command="run")
    try:
        await first.start()

        async def running() -> bool:
            assert first.alive, first.log_tail()
            return "papibot worker is running" in first.log_path.read_text(errors="replace")

        await wait_for(running, "the first worker to start", 30, 0.05, first.log_tail)
        await second.start()
        await third.start()  # `papibot run` beside it is refused the same way
        assert await second.wait(within=30) == 2, second.log_tail()
        assert await third.wait(within=30) == 2, third.log_tail()
        said = second.log_path.read_text()
        assert "refusing to start `papibot worker`" in said
        assert "SQLite allows one process, several need PostgreSQL" in said
        assert "Traceback" not in said
        assert "refusing to start `papibot run`" in third.log_path.read_text()
        assert first.alive
        assert await first.stop() == 0, first.log_tail()
        await second.start()  # the first is gone: this one may run

        async def second_running() -> bool:
            assert second.alive, second.log_tail()
            return "papibot worker is running" in second.log_path.read_text(errors="replace")

        await wait_for(second_running, "the worker to start", 30, 0.05, second.log_tail)
        assert await second.stop() == 0, second.log_tail()
    finally:
        for child in (first, second, third):
            if child.alive:
                child.kill9()
                await child.wait(within=10)
