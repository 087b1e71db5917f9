"""Cheap handling: a typical inbound update costs a handful of statements, whatever it is.

Counted on the engine (an SQLAlchemy `before_cursor_execute` listener), as the database sees
them, for the worker's handling of one recorded update in a round of its own (the worker
handles several in one transaction; here the round is cut to one update, so that whatever the
round itself costs is counted in full against it): the claim of its inbound row, who is talking
(identity, person, unit, dialog state), the journey, its replies, the commit. Statement
counts are deterministic, so the bound is asserted; times are the benchmark's (bench/handling.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.inbox import Recorded
from tests.helpers.telegram_harness import VILLAGE_HEAD, Harness, harness, jpeg

MOST_STATEMENTS = 6  # per handled update (the target of issue 18)


@pytest.fixture
async def tg(settings: Settings, db: Database, framework: Framework) -> AsyncIterator[Harness]:
    async with harness(settings, db, framework) as h:
        yield h


@contextmanager
def handled_statements(h: Harness) -> Iterator[list[list[str]]]:
    """The statements of each update the worker handles meanwhile, one list per update."""
    per_update: list[list[str]] = []
    current: list[str] | None = None

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, PLR0913
        if current is not None:
            current.append(statement)

    inbox = h.runtime.dispatcher.inbox
    handle_together = inbox._handle_together

    async def counted(queue: list[Recorded]) -> tuple[int, bool]:
        # The round's transaction, from its first statement to its commit, on its own.
        nonlocal current
        current = []
        try:
            return await handle_together(queue[:1])
        finally:
            per_update.append(current)
            current = None

    engine = h.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    inbox._handle_together = counted  # type: ignore[method-assign]
    try:
        yield per_update
    finally:
        inbox._handle_together = handle_together  # type: ignore[method-assign]
        event.remove(engine, "before_cursor_execute", note)


async def statements_of(h: Harness, update: dict) -> list[str]:
    with handled_statements(h) as per_update:
        assert await h.say(update) == 200
    assert len(per_update) == 1, "one update handled"
    return per_update[0]


def show(name: str, statements: list[str]) -> str:
    lines = "\n".join(f"  {s.split(chr(10))[0][:160]}" for s in statements)
    return f"{name}: {len(statements)} statements\n{lines}"


async def test_typical_updates_cost_at_most_six_statements(tg: Harness) -> None:
    chat = 701
    village = tg.world.villages[0]
    await tg.register(chat, village, VILLAGE_HEAD)

    typical: dict[str, list[str]] = {}
    typical["/start"] = await statements_of(tg, tg.fake.command(chat, "start"))
    typical["/viec"] = await statements_of(tg, tg.fake.command(chat, "viec"))
    occurrence_id = int(tg.buttons_to(chat, "done:")[0].split(":")[1])
    typical["✅ tap"] = await statements_of(tg, tg.fake.press(chat, f"done:{occurrence_id}"))
    report_id = int(tg.buttons_to(chat, "next:")[-1].split(":")[1])
    rich: dict[str, list[str]] = {}
    rich["photo"] = await statements_of(tg, tg.fake.photo(chat, jpeg((200, 30, 30))))
    typical["next tap"] = await statements_of(tg, tg.fake.press(chat, f"next:{report_id}"))
    rich["note text"] = await statements_of(tg, tg.fake.text(chat, "Đã họp dân"))
    typical["menu tap"] = await statements_of(tg, tg.fake.press(chat, "menu:viec"))
    typical["text, not understood"] = await statements_of(tg, tg.fake.text(chat, "xin chào"))

    report = "\n".join(show(name, s) for name, s in {**typical, **rich}.items())
    print(report)
    for name, statements in {**typical, **rich}.items():
        # Who is talking: one query; the replies (five task cards for /viec): one insert.
        assert sum("channel_identities" in s for s in statements) == 1, (name, report)
        assert sum(s.startswith("INSERT INTO outbox") for s in statements) == 1, (name, report)
        assert not [s for s in statements if "FROM outbox" in s], (name, report)
    # On PostgreSQL one more: the chat's lock, taken in a statement of its own before the claim
    # so that several workers keep the chat's order (bot/core/inbox.py, claim_recorded).
    chat_lock = int(not tg.db.is_sqlite)
    for statements in {**typical, **rich}.values():
        assert sum("pg_try_advisory_xact_lock" in s for s in statements) == chat_lock, report
    assert all(len(s) <= MOST_STATEMENTS + chat_lock for s in typical.values()), report
    # A photo is also stored (evidence, the upload quota's audit row), and a note shows the
    # report's summary with its photo checks (duplicates among every stored fingerprint): each
    # statement there is a piece of work, not a look-up of who is talking.
    assert len(rich["photo"]) <= 8 + chat_lock, report
    assert len(rich["note text"]) <= 11 + chat_lock, report
