"""Drill: a clean stop (SIGTERM, as `docker stop` or a deploy sends it) in the middle of sending
400 reminders, then a restart.

Unlike `kill -9` (tests/test_drill_kill9.py), a clean stop has time to finish what it holds: the
batch the sender has in hand is sent and marked before the channels close, so a restart sends
nothing twice. What must hold:

* the process exits 0 and logs no error (before, the sender's batch in flight met a closed
  Telegram client, which opened a new one that nobody closed: "Unclosed client session");
* at the stop, every message the platform accepted is marked sent, with its id: none is left
  `sending`;
* after the restart every message has reached the platform exactly once.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from bot.core.db import Database
from bot.core.models import OutboxStatus
from tests.helpers.drill_support import TrippingTelegram, wait_for
from tests.test_drill_kill9 import (
    FIRST_CHAT,
    TOKEN,
    by_status,
    reminder_text,
    restart_until_all_sent,
    seed,
    sending_child,
    texts_by_status,
)

pytestmark = pytest.mark.drill

MESSAGES = 400
STOP_AT = 150  # inside a batch: the sender holds claimed rows it has not sent yet


async def test_a_clean_stop_while_sending_finishes_its_batch_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    db_url = f"sqlite+aiosqlite:///{data_dir / 'papibot.db'}"
    db = Database(db_url)
    await db.upgrade()
    await seed(db, MESSAGES)

    fake = TrippingTelegram(token=TOKEN, trip_at=STOP_AT, delay=0.002)
    for n in range(MESSAGES):
        fake.user(FIRST_CHAT + n)
    await fake.start()
    child = sending_child(tmp_path, data_dir, db_url, fake)

    async def ask_it_to_stop() -> None:
        assert child.process is not None
        child.process.send_signal(signal.SIGTERM)

    fake.trip = ask_it_to_stop
    try:
        await child.start()

        async def stopped() -> bool:
            return fake.tripped and not child.alive

        await wait_for(stopped, "the child to stop cleanly", 60, 0.1, child.log_tail)
        assert child.process is not None and child.process.returncode == 0, child.log_tail()
        log = (tmp_path / "papibot.log").read_text(encoding="utf-8", errors="replace")
        assert " ERROR " not in log and "Unclosed" not in log, child.log_tail()

        at_stop = await by_status(db)
        marked = await texts_by_status(db)
        accepted = set(fake.texts)
        print(f"\n[clean stop drill] at the stop: {at_stop}; platform had {len(fake.texts)}")
        assert accepted == marked[OutboxStatus.sent], at_stop  # each accepted row is marked
        assert not marked[OutboxStatus.sending], at_stop
        assert len(fake.texts) >= STOP_AT

        await restart_until_all_sent(child, db, MESSAGES)
    finally:
        if child.alive:
            child.kill9()
            await child.wait(within=10)
        await fake.close()
        await db.dispose()

    counts = Counter(fake.texts)
    assert set(counts) == {reminder_text(n) for n in range(MESSAGES)}
    assert max(counts.values()) == 1, {text: n for text, n in counts.items() if n > 1}
