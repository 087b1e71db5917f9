"""The inbox (bot/core/inbox.py): a webhook records its update and answers; the worker handles it.

Through the real Telegram webhook of a running papibot app, against the fake Bot API, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from bot.core import inbox as inbox_module
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.messages import Incoming, IncomingFile, Kind
from bot.core.models import InboundUpdate, Outbox
from handlers import router
from handlers.conversation import Conversation
from handlers.router import Dispatcher
from tests.helpers.drill_support import wait_for
from tests.helpers.telegram_harness import Harness, harness


@pytest.fixture
async def tg(settings: Settings, db: Database, framework: Framework) -> AsyncIterator[Harness]:
    async with harness(settings, db, framework) as h:
        yield h


async def inbound_rows(h: Harness) -> list[InboundUpdate]:
    async with h.db.session() as session:
        return list((await session.exec(select(InboundUpdate))).all())


async def replies_to(h: Harness, update_id: int) -> int:
    return await h.count(
        Outbox, col(Outbox.idempotency_key).startswith(f"reply:telegram:{update_id}:")
    )


def test_an_incoming_survives_its_stored_form() -> None:
    async def download(ref: str) -> bytes:
        return f"bytes of {ref}".encode()

    incoming = Incoming(
        channel="telegram",
        external_id="42",
        update_id="7",
        kind=Kind.photo,
        text="chú thích",
        file=IncomingFile(file_name="a.jpg", mime="image/jpeg", size=1234, ref="FILE-1"),
        latitude=12.25,
        message_id="99",
        ack_id="cb-1",
    )
    back = Incoming.from_payload(incoming.to_payload(), download)
    assert back.file is not None and back.file.fetch is not None
    assert asyncio.run(back.file.fetch()) == b"bytes of FILE-1"
    back.file.fetch = incoming.file.fetch = None  # type: ignore[union-attr]
    assert back == incoming


def hold_the_worker(h: Harness) -> asyncio.Event:
    """The worker waits before each round (before it reads the recorded updates, and before
    it takes the one writer's place) until the returned event is set."""
    inbox = h.runtime.dispatcher.inbox
    handle_round = inbox._handle_round
    gate = asyncio.Event()

    async def held() -> tuple[int, int]:
        await gate.wait()
        return await handle_round()

    inbox._handle_round = held  # type: ignore[method-assign]
    return gate


async def test_the_webhook_answers_once_recorded_and_the_worker_handles_it(tg: Harness) -> None:
    gate = hold_the_worker(tg)
    update = tg.fake.command(501, "help")
    assert await tg.fake.deliver(update) == 200
    [row] = await inbound_rows(tg)
    assert row.handled_at is None and row.payload and '"command": "help"' in row.payload
    assert await replies_to(tg, update["update_id"]) == 0

    gate.set()
    await tg.settle()
    [row] = await inbound_rows(tg)
    assert row.handled_at is not None and row.payload is None  # nothing kept once handled
    assert await replies_to(tg, update["update_id"]) == 1
    assert tg.fake.sent_to(501), "the reply was not delivered"


async def test_a_redelivery_while_waiting_and_after_handling_changes_nothing(tg: Harness) -> None:
    gate = hold_the_worker(tg)
    update = tg.fake.command(502, "help")
    assert await tg.fake.deliver(update) == 200
    assert await tg.fake.deliver(update) == 200  # redelivered before it was handled
    gate.set()
    await tg.settle()
    assert await tg.fake.deliver(update) == 200  # and after
    await tg.settle()
    assert len(await inbound_rows(tg)) == 1
    assert await replies_to(tg, update["update_id"]) == 1
    assert len(tg.fake.sent_to(502)) == 1


async def test_updates_arriving_together_share_one_commit(tg: Harness) -> None:
    inserts: list[int] = []

    def count_inserts(_conn, _cursor, statement: str, parameters, *_rest) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO INBOUND_UPDATES"):
            inserts.append(len(parameters) if isinstance(parameters, list) else 1)

    updates = [tg.fake.command(600 + n, "help") for n in range(40)]
    event.listen(tg.db.engine.sync_engine, "before_cursor_execute", count_inserts)
    try:
        statuses = await asyncio.gather(*(tg.fake.deliver(update) for update in updates))
    finally:
        event.remove(tg.db.engine.sync_engine, "before_cursor_execute", count_inserts)
    await tg.settle()
    assert statuses == [200] * 40
    assert len(await inbound_rows(tg)) == 40
    # One executemany per commit; 40 concurrent requests never need 40 of them.
    assert len(inserts) < 40, inserts
    for update in updates:
        assert await replies_to(tg, update["update_id"]) == 1


async def test_updates_recorded_by_a_process_that_died_are_handled_at_start(tg: Harness) -> None:
    # A dispatcher with no channel registered records but never handles, like a process
    # killed between answering the webhook and handling the update.
    other = Dispatcher(tg.runtime.ctx)
    await other.accept(
        Incoming(
            channel="telegram",
            external_id="503",
            update_id="9503",
            kind=Kind.command,
            command="help",
        )
    )
    await other.inbox.stop()
    [row] = await inbound_rows(tg)
    assert row.handled_at is None

    await tg.runtime.dispatcher.inbox.stop()
    tg.runtime.dispatcher.inbox.start()  # what `papibot run` does at start

    async def replied() -> bool:
        return await replies_to(tg, 9503) == 1

    await wait_for(replied, "the left-over update to be handled", within=10)
    [row] = await inbound_rows(tg)
    assert row.handled_at is not None and row.payload is None


async def test_a_channel_not_configured_here_keeps_its_updates(tg: Harness) -> None:
    """Rows of a channel this process does not have wait for one that has it: never dropped."""
    async with tg.db.session() as session:
        session.add(InboundUpdate(channel="zalo_bot", update_id="z-1", payload="{}"))
        await session.commit()
    update = tg.fake.command(504, "help")
    assert await tg.fake.deliver(update) == 200
    await tg.settle()
    rows = {row.channel: row for row in await inbound_rows(tg)}
    assert rows["telegram"].handled_at is not None
    assert rows["zalo_bot"].handled_at is None and rows["zalo_bot"].payload == "{}"


async def test_a_polled_update_with_a_lone_surrogate_is_recorded_and_answered(tg: Harness) -> None:
    """Webhooks refuse text UTF-8 cannot hold (a lone "\\ud800"), but long polling hands
    updates over without that check: one must not block the inbox (nor the poll) for ever."""
    await tg.runtime.dispatcher.accept(
        Incoming(
            channel="telegram",
            external_id="505",
            update_id="9505",
            kind=Kind.text,
            text="xong \ud800 rồi",
        )
    )
    await tg.settle()
    [row] = await inbound_rows(tg)
    assert row.handled_at is not None
    assert await replies_to(tg, 9505) == 1


async def test_an_update_that_keeps_failing_gets_the_apology_and_holds_nobody_up(
    tg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement the database refuses every time (SQLite reports it as an OperationalError,
    like a lost connection) must not stop the inbox: after MAX_ATTEMPTS, the apology."""
    monkeypatch.setattr(inbox_module, "RETRY_SECONDS", (0.05, 0.1))
    stranger = router.onboarding.stranger  # what an unregistered chat's message gets

    async def broken_for_506(convo: Conversation) -> None:
        if convo.incoming.external_id == "506":
            raise OperationalError("SELECT nope", {}, Exception("no such column: nope"))
        await stranger(convo)

    monkeypatch.setattr(router.onboarding, "stranger", broken_for_506)
    poison, fine = tg.fake.command(506, "help"), tg.fake.command(507, "help")
    assert await tg.fake.deliver(poison) == 200
    assert await tg.fake.deliver(fine) == 200
    await tg.settle()
    apology = f"reply:telegram:{poison['update_id']}:error"
    assert await tg.count(Outbox, Outbox.idempotency_key == apology) == 1
    assert await replies_to(tg, fine["update_id"]) == 1
    assert all(row.handled_at is not None for row in await inbound_rows(tg))


async def test_a_tap_stops_its_spinner_once_recorded_before_it_is_handled(tg: Harness) -> None:
    assert await tg.say(tg.fake.command(508, "help")) == 200  # a message to tap on
    gate = hold_the_worker(tg)
    tap = tg.fake.callback(508, "menu:help")
    assert await tg.fake.deliver(tap) == 200

    async def answered() -> bool:
        return bool(tg.fake.calls_to("answerCallbackQuery"))

    await wait_for(answered, "the callback query to be answered", within=5)
    assert await replies_to(tg, tap["update_id"]) == 0  # not handled yet
    gate.set()
    await tg.settle()
    assert await replies_to(tg, tap["update_id"]) == 1
