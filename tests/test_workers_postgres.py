"""Two `papibot worker` processes on one PostgreSQL share the inbox and the outbox.

20 chats × 15 updates are written into the inbox (interleaved, as they would arrive) once both
workers run; each worker sends through a port of its own on a fake Telegram (loopback), so
the fake knows who sent what. What must hold:

* every update is handled once (marked handled, its replies queued once: one key each);
* every reply reaches the platform once, none doubled, none missing;
* per chat, the replies are queued in the order of the chat's updates (the outbox ids follow
  the update ids: handling kept the order) and reach the platform in that order (the fake's
  message ids follow the outbox ids: sending kept it too), whichever worker took each;
* both workers did part of the work (otherwise nothing above was tested across processes).

SQLite allows one such process: `test_a_second_worker_on_sqlite_is_refused`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.core.db import Database
from bot.core.models import InboundUpdate, Outbox, OutboxStatus
from tests.conftest import POSTGRES_URL
from tests.helpers.drill_support import Child, child_env, wait_for
from tests.helpers.worker_rig import (
    FIRST_CHAT,
    TOKEN,
    PortedTelegram,
    Workers,
    create_database,
    drop_database,
    fill_inbox,
    time_to_handle,
    update_rows,
)

CHATS = 20
PER_CHAT = 15


def update_of(key: str) -> int:
    """`reply:telegram:<update id>:<n>` → the update id."""
    return int(key.split(":")[2])


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
        workers = await Workers.start(2, url, fake, tmp_path)
        rows = update_rows(CHATS, PER_CHAT)
        await fill_inbox(db, rows)
        await time_to_handle(db, len(rows), workers, within=60)
        assert await workers.stop() == [0, 0], workers.logs()

        async with db.session() as session:
            inbox = (await session.exec(select(InboundUpdate))).all()
            outbox = (await session.exec(select(Outbox).order_by(col(Outbox.id)))).all()
    finally:
        if workers is not None:
            await workers.kill()
        await fake.close()
        await db.dispose()
        await drop_database(POSTGRES_URL, name)

    # Every update handled once, each with its replies queued once.
    assert len(inbox) == CHATS * PER_CHAT
    assert all(row.handled_at is not None and row.payload is None for row in inbox)
    keys = [row.idempotency_key for row in outbox]
    assert len(keys) == len(set(keys))
    answered = Counter(update_of(key) for key in keys)
    assert set(answered) == {int(row.update_id) for row in inbox}
    assert all(row.status == OutboxStatus.sent for row in outbox), Counter(
        row.status for row in outbox
    )

    # Every reply sent once: the fake got exactly the outbox's rows, none twice.
    sent = [(message.chat_id, message.message_id) for message in fake.messages]
    assert len(sent) == len(set(sent)) == len(outbox)
    recorded = {(int(row.external_id), int(row.platform_message_id)) for row in outbox}
    assert recorded == set(sent)

    # Per chat: handled in the order of its updates, sent in the order handled.
    by_chat: dict[int, list[Outbox]] = defaultdict(list)
    for row in outbox:  # in id order: the order the replies were queued
        by_chat[int(row.external_id)].append(row)
    assert len(by_chat) == CHATS
    for chat, replies in by_chat.items():
        updates = [update_of(row.idempotency_key) for row in replies]
        assert updates == sorted(updates), (chat, updates)
        arrived = [int(row.platform_message_id) for row in replies]
        assert arrived == sorted(arrived), (chat, arrived)
        texts = [message.text for message in fake.messages if message.chat_id == chat]
        assert texts == [row.payload["text"] for row in replies], chat

    # Both processes took part, in handling and in sending.
    by_port = Counter(fake.senders.values())
    assert set(by_port) == set(fake.ports), by_port
    assert min(by_port.values()) >= len(outbox) // 10, by_port


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
