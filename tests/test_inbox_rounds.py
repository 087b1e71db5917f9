"""The inbox's worker handles recorded updates in rounds: several in one transaction, one commit.

A failing update in a round must not take its neighbours down with it (the round is rolled back
and handled again one update at a time), nothing of a round is sent or acknowledged before its
commit, and a webhook waiting to record its update does not wait for the whole round. Through
the real Telegram webhook, against the fake Bot API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.messages import Incoming
from bot.core.models import InboundUpdate, Outbox
from handlers import router
from handlers.conversation import Conversation
from tests.helpers.drill_support import wait_for
from tests.helpers.telegram_harness import Harness, harness


@pytest.fixture
async def tg(settings: Settings, db: Database, framework: Framework) -> AsyncIterator[Harness]:
    async with harness(settings, db, framework) as h:
        yield h


async def replies_to(h: Harness, update_id: int, suffix: str = "") -> int:
    return await h.count(
        Outbox, col(Outbox.idempotency_key).startswith(f"reply:telegram:{update_id}:{suffix}")
    )


class Journal:
    """What happened, in order: each update handled in a round, each commit of the engine,
    each wake of the sender, each `after_handled` hook."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.events: list[str] = []
        self.gate = asyncio.Event()
        dispatcher = h.runtime.dispatcher
        self._round = dispatcher.inbox._handle_round
        dispatcher.inbox._handle_round = self._held  # type: ignore[method-assign]
        self._in_round = dispatcher.handle_in_round
        self._after_commit = dispatcher.after_commit
        dispatcher.handle_in_round = self._handled  # type: ignore[method-assign]
        dispatcher.after_commit = self._woken
        hooks = dispatcher.inbox._channels["telegram"]
        self._after_handled = hooks.after_handled
        hooks.after_handled = self._acknowledged
        event.listen(h.db.engine.sync_engine, "commit", self._commit)

    async def _held(self) -> tuple[int, int]:
        await self.gate.wait()  # the updates pile up until the test lets the worker go
        return await self._round()

    async def _handled(self, session: AsyncSession, row_id: int, incoming: Incoming) -> bool:
        self.events.append(f"try:{incoming.external_id}")
        handled = await self._in_round(session, row_id, incoming)
        self.events.append(f"round:{incoming.external_id}")
        return handled

    def _woken(self) -> None:
        self.events.append("wake")
        self._after_commit()

    def _acknowledged(self, incoming: Incoming) -> None:
        self.events.append(f"ack:{incoming.external_id}")
        if self._after_handled is not None:
            self._after_handled(incoming)

    def _commit(self, _conn) -> None:  # noqa: ANN001
        self.events.append("commit")

    def close(self) -> None:
        event.remove(self.h.db.engine.sync_engine, "commit", self._commit)


async def deliver_all(h: Harness, updates: list[dict]) -> None:
    for update in updates:
        assert await h.fake.deliver(update) == 200


async def test_a_round_commits_once_and_its_replies_go_out_after_the_commit(
    tg: Harness,
) -> None:
    await tg.say(tg.fake.command(801, "help"))  # a message to tap on later
    journal = Journal(tg)
    try:
        updates = [tg.fake.command(800 + n, "help") for n in range(2, 6)]
        updates.append(tg.fake.callback(801, "menu:help"))
        await deliver_all(tg, updates)
        journal.events.clear()  # the recording's commits
        journal.gate.set()
        await tg.settle()
    finally:
        journal.close()
    handled = [e for e in journal.events if e.startswith("round:")]
    # (PostgreSQL: the chats in a random order, so that several workers start on different ones)
    assert sorted(handled) == ["round:801", "round:802", "round:803", "round:804", "round:805"]
    # One commit for the five, then the sender is woken and the tap acknowledged, not before.
    first_commit = journal.events.index("commit")
    before = [e for e in journal.events[:first_commit] if not e.startswith("try:")]
    assert before == handled, journal.events
    assert journal.events.index("wake") > first_commit
    assert journal.events.index("ack:801") > first_commit
    for update in updates:
        assert await replies_to(tg, update["update_id"]) == 1
    for chat in (802, 803, 804, 805):
        assert len(tg.fake.sent_to(chat)) == 1


async def test_a_failing_update_leaves_its_neighbours_in_the_round_handled_once(
    tg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = router.onboarding.stranger  # what an unregistered chat's message gets

    async def broken_for_812(convo: Conversation) -> None:
        await stranger(convo)  # its replies are queued, then it fails
        if convo.incoming.external_id == "812":
            raise RuntimeError("a bug in a journey")

    monkeypatch.setattr(router.onboarding, "stranger", broken_for_812)
    journal = Journal(tg)
    try:
        updates = [tg.fake.command(810 + n, "help") for n in range(5)]
        await deliver_all(tg, updates)
        journal.gate.set()
        await tg.settle()
    finally:
        journal.close()
    # The round got as far as the failing update (the first two handled in it, then rolled
    # back), and was handled again one at a time; the round after it took the last two.
    tried = [e for e in journal.events if e.startswith(("try:", "round:"))]
    if tg.db.is_sqlite:  # (PostgreSQL: the chats in a random order)
        assert tried[:5] == ["try:810", "round:810", "try:811", "round:811", "try:812"], tried
    assert tried.count("try:812") == 1 and "round:812" not in tried, tried
    bad = updates[2]["update_id"]
    assert await replies_to(tg, bad, "error") == 1  # the apology, and nothing else of it
    assert await replies_to(tg, bad) == 1
    for update in updates[:2] + updates[3:]:
        assert await replies_to(tg, update["update_id"]) == 1
    for chat in (810, 811, 813, 814):
        assert len(tg.fake.sent_to(chat)) == 1, chat
    assert len(tg.fake.sent_to(812)) == 1
    async with tg.db.session() as session:
        rows = (await session.exec(select(InboundUpdate))).all()
    assert len(rows) == 5 and all(row.handled_at is not None for row in rows)


async def test_a_webhook_waiting_to_record_ends_the_round_early(
    tg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the webhook's commit needs the one writer, which the round holds: the round
    commits what it has at the next update's turn, and the webhook is answered before the
    round's remaining updates are handled."""
    inbox = tg.runtime.dispatcher.inbox
    journal = Journal(tg)
    late = tg.fake.command(829, "help")
    answered: list[int] = []
    started: list[str] = []

    async def webhook() -> None:
        answered.append(await tg.fake.deliver(late))
        journal.events.append("answered")

    async def first_then_a_webhook(session: AsyncSession, row_id: int, incoming: Incoming) -> bool:
        handled = await Journal._handled(journal, session, row_id, incoming)
        if not started:  # a webhook arrives while the round is under way
            started.append(incoming.external_id)
            asyncio.get_running_loop().create_task(webhook())
            await wait_for(lambda: _true(inbox._webhooks_wait()), "the webhook to wait", 5, 0.001)
            await asyncio.sleep(0.02)  # longer than the round's least time before it yields
        return handled

    tg.runtime.dispatcher.handle_in_round = first_then_a_webhook  # type: ignore[method-assign]
    try:
        updates = [tg.fake.command(820 + n, "help") for n in range(4)]
        await deliver_all(tg, updates)
        journal.events.clear()
        journal.gate.set()
        await wait_for(lambda: _true(bool(answered)), "the webhook's answer", within=10)
        await tg.settle()
    finally:
        journal.close()
    assert answered == [200]
    events = journal.events
    rounds = [n for n, e in enumerate(events) if e.startswith("round:")]
    # The round's first update committed, the webhook answered, then the rest of the round.
    assert events[rounds[0]] == f"round:{started[0]}" and len(rounds) == 5  # the late one too
    assert rounds[0] < events.index("commit") < events.index("answered") < rounds[1], events
    for update in [*updates, late]:
        assert await replies_to(tg, update["update_id"]) == 1


async def _true(value: bool) -> bool:
    return value
