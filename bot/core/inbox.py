"""The inbox: an update from a platform is recorded and answered at once; a worker then
handles the recorded updates in the order they came.

Why not handle it inside the webhook: a platform waits for the answer (Zalo gives up after two
seconds and sends the update again), and handling costs tens of milliseconds of database work,
more with a photo to download. Recording costs one row, written in one commit together with
every update that arrived meanwhile, so the webhook answers in milliseconds even in a burst,
and a burst waits in the table, not in memory: a crash or a restart loses nothing (the worker
finds the rows again), and a redelivery finds its row and changes nothing.

The row is marked handled in the same transaction as the update's effects and replies. The
worker handles the recorded updates in rounds: up to ROUND of them in one transaction, one
commit (ended early when a webhook waits for the one writer); a round in which anything fails
is rolled back and its updates handled again one at a time, each in its own transaction. An
update that fails is tried again after a pause (the database may be away); one that fails
MAX_ATTEMPTS times while the database answers gets the apology instead, so that it cannot hold
the updates behind it. Replies are woken for, and buttons acknowledged, after the commit.

Several workers (PostgreSQL: `papibot run` and `papibot worker` processes on one database) share
the inbox and keep each chat's order: an update is claimed in its handling transaction only
while that transaction holds its chat's advisory lock (`pg_try_advisory_xact_lock`, never
waited for: a chat another worker holds is left to it) and no earlier update of the chat is still
waiting. Different chats are handled side by side; one chat's updates one after another, in the
order they were recorded, whichever worker takes each. On SQLite one process handles them all
(bot/app/single_process.py refuses a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, literal, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.db import Database
from bot.core.messages import Incoming, Kind
from bot.core.models import InboundUpdate, utcnow
from bot.core.services.evidence import MAX_PHOTO_BYTES
from bot.core.sqlutil import dialect_name, insert_new

if TYPE_CHECKING:
    from bot.core.dispatch import Dispatcher

log = logging.getLogger(__name__)

BATCH = 16  # recorded updates read per round
ROUND = BATCH  # updates handled in one transaction, at most (one commit for them all)
YIELD_SECONDS = 0.01  # a round runs at least this long before it commits for a waiting webhook
PREFETCH_BYTES = 48 * 1024 * 1024  # photos of a round downloaded ahead, at most this much
RECORDING_FIRST_SECONDS = 0.05  # at most this long, per round, for the webhooks to commit
POLL_SECONDS = 5.0  # SQLite: one process records and handles, so it is woken; a safety net
SHARED_POLL_SECONDS = 0.5  # PostgreSQL: rows another process recorded (`papibot worker`)
BUSY_SECONDS = 0.02  # every waiting chat is in another worker's hands: look again this soon
CHAT_LOCK_CLASS = 0x70617069  # the advisory lock space of inbox chats (the second key: the chat)
RETRY_SECONDS = (1.0, 30.0)  # after a failed round: first and longest pause
MAX_ATTEMPTS = 3  # an update that fails this often while the database answers gets the apology

UNIQUE = ("channel", "update_id")  # InboundUpdate's unique key

Download = Callable[[str], Awaitable[bytes]]
AfterHandled = Callable[[Incoming], None]


def chat_key(channel: str, external_id: str) -> str:
    """The chat an update belongs to: its updates are handled in order, by one worker at a time."""
    return f"{channel}:{external_id}"[:96]


async def claim_recorded(session: AsyncSession, row_id: int, chat: str | None) -> bool:
    """Mark a recorded update handled, in the transaction that handles it; False when it is not
    this worker's to handle now: handled already, its chat in another worker's hands, or an
    earlier update of its chat still waiting (`chat` None: no order to keep, a dropped row)."""
    if chat is not None and dialect_name(session) == "postgresql":
        # First, in a statement of its own: the query below then reads what the chat's previous
        # holder committed before it let go.
        locked = await session.exec(
            select(func.pg_try_advisory_xact_lock(CHAT_LOCK_CLASS, func.hashtext(chat)))
        )
        if not locked.one():
            return False
    claim = update(InboundUpdate).where(
        col(InboundUpdate.id) == row_id, col(InboundUpdate.handled_at).is_(None)
    )
    if chat is not None:
        earlier = aliased(InboundUpdate)
        claim = claim.where(
            ~select(literal(1))
            .where(
                earlier.chat_key == chat,
                col(earlier.handled_at).is_(None),
                col(earlier.id) < row_id,
            )
            .exists()
        )
    result = await session.exec(claim.values(handled_at=utcnow(), payload=None))
    return result.rowcount == 1


@dataclass
class Recorded:
    """A recorded update read for a round."""

    row_id: int
    chat: str
    channel: str
    payload: str | None
    incoming: Incoming | None = None  # as read back (None: it cannot be); photos fetched ahead


@dataclass
class ChannelHooks:
    """What the inbox needs from a channel to turn a stored update back into work."""

    download: Download | None = None  # fetches a file by its `ref`
    after_handled: AfterHandled | None = None  # e.g. acknowledge a button tap


async def fetch_first(incoming: Incoming) -> None:
    """Download a photo before the transaction (on SQLite: before taking the one writer's
    place), so that a slow download does not hold every other update up; the handler then
    reads the bytes from memory. A failed download is left to the handler, as before."""
    file = incoming.file
    if file is None or file.fetch is None or (file.size or 0) > MAX_PHOTO_BYTES:
        return
    if incoming.kind == Kind.document and file.mime and not file.mime.startswith("image/"):
        return
    try:
        data = await file.fetch()
    except Exception:  # noqa: BLE001  (the handler fetches again and answers the failure)
        return

    async def fetched() -> bytes:
        return data

    file.fetch = fetched


class Inbox:
    def __init__(self, db: Database, dispatcher: Dispatcher) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self._channels: dict[str, ChannelHooks] = {}
        self._waiting: list[tuple[Incoming, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self._worker: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._failures: dict[int, int] = {}  # row id → failed attempts, the database answering
        self._recorded = 0  # updates written so far by this process …
        self._caught_up = -1  # … and how many of them the worker had when it found none left
        self._stopped = False  # `stop` was called (and `start` not since)

    def register(self, channel: str, hooks: ChannelHooks) -> None:
        self._channels[channel] = hooks

    # ------------------------------------------------------------------ recording

    async def accept(self, incoming: Incoming) -> None:
        """Record the update durably; returns once it is committed (a redelivery: at once too).

        Raises when the database is unavailable: the caller answers with an error so that the
        platform delivers the update again."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((incoming, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="inbox-flush")
        await asyncio.shield(future)  # a client hanging up does not cancel the others' commit

    async def _flush(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # let the requests that arrived together join this commit
            batch, self._waiting = self._waiting, []
            try:
                await self._write([incoming for incoming, _future in batch])
            except Exception as error:  # noqa: BLE001  (each webhook answers it)
                for _incoming, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self._recorded += len(batch)
            for _incoming, future in batch:
                if not future.done():
                    future.set_result(None)
            self.start()
            self._wake.set()

    async def _write(self, incomings: list[Incoming]) -> None:
        now = utcnow()
        rows = {
            (incoming.channel, incoming.update_id): {
                "channel": incoming.channel,
                "update_id": incoming.update_id,
                "chat_key": chat_key(incoming.channel, incoming.external_id),
                "received_at": now,
                # ASCII (the default): even a lone surrogate, which UTF-8 cannot hold, fits.
                "payload": json.dumps(incoming.to_payload()),
            }
            for incoming in reversed(incomings)  # a repeat within the batch: the first one wins
        }
        # The platform waits for this commit: it goes before the writers already waiting.
        async with self.db.writer(first=True), self.db.session() as session:
            # A redelivery finds its row there and adds nothing.
            await insert_new(session, InboundUpdate.__table__, list(rows.values()), UNIQUE)
            await session.commit()

    # ------------------------------------------------------------------ handling

    def start(self) -> None:
        """Start the worker (it first handles what an earlier run left recorded)."""
        self._stopped = False
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="inbox-worker")

    async def stop(self) -> None:
        """Stop after the update in hand; what is left stays recorded for the next start."""
        self._stopped = True  # `idle` no longer wakes the worker (a channel's stop waits on it)
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
            self._worker = None

    async def idle(self) -> None:
        """Wait until every update recorded so far by this process has been handled (once
        stopped: at once, what is left waits for the next start)."""
        while not self._stopped:
            flushing = self._webhooks_wait()
            if not flushing and self._caught_up >= self._recorded:
                return
            if not flushing:
                self.start()
                self._wake.set()
            await asyncio.sleep(0.005)

    async def _work(self) -> None:
        pause = RETRY_SECONDS[0]
        poll = POLL_SECONDS if self.db.is_sqlite else SHARED_POLL_SECONDS
        while True:
            recorded = self._recorded
            try:
                seen, handled = await self._handle_round()
            except Exception as error:  # noqa: BLE001  (the database went away: try again later)
                log.warning(
                    "inbox: recorded updates not handled (%s); retrying in %.0f s", error, pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_SECONDS[1])
                continue
            pause = RETRY_SECONDS[0]
            if handled:
                continue
            if seen:  # all of them held by other workers, who are handling them now
                await asyncio.sleep(BUSY_SECONDS)
                continue
            self._caught_up = recorded
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll)

    async def _handle_round(self) -> tuple[int, int]:
        """Handle the oldest recorded updates of this process's channels; returns how many
        there were and how many of them this worker handled. (Another channel's rows wait for a
        process that has it configured.)"""
        if not self._channels:
            return 0, 0
        async with self.db.session() as session:
            rows = (
                await session.exec(
                    select(
                        InboundUpdate.id,
                        InboundUpdate.channel,
                        InboundUpdate.chat_key,
                        InboundUpdate.payload,
                    )
                    .where(
                        col(InboundUpdate.handled_at).is_(None),
                        col(InboundUpdate.channel).in_(list(self._channels)),
                    )
                    .order_by(col(InboundUpdate.id))
                    .limit(BATCH)
                )
            ).all()
        work = [
            Recorded(row_id, chat or f"row:{row_id}", channel, payload)
            for row_id, channel, chat, payload in rows
        ]
        for item in work:
            item.incoming = self._decode(item.channel, item.payload)
        await self._prefetch([item.incoming for item in work if item.incoming is not None])
        queue = self._spread(work)
        handled = 0
        while queue:
            await self._recording_first()
            if queue[0].incoming is None:
                await self.dispatcher.discard_recorded(queue.pop(0).row_id)
                handled += 1
                continue
            taken, stale = await self._handle_together(queue)
            handled += taken
            del queue[:taken]
            if stale:
                # Another worker has this chat, or took the update since this round's read: the
                # rest of the list is likely stale too, so read afresh rather than try each.
                break
        return len(rows), handled

    async def _handle_together(self, queue: list[Recorded]) -> tuple[int, bool]:
        """Handle the queue's first updates in one transaction, one commit for them all;
        returns how many were handled (from the front) and whether a claim was refused.

        The transaction ends early, at the next update's turn, when a webhook has waited
        for the one writer (SQLite) for a while, so that accepting never waits behind a whole
        round. When anything in it fails, it is rolled back whole and its updates are handled
        one at a time (`_one_at_a_time`): a failing update then gets the inbox's poison
        handling alone, and its neighbours' effects are committed once, in their own
        transactions. Replies are woken for, and buttons acknowledged, only after the commit
        that made them visible."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        done: list[Recorded] = []
        stale = False
        try:
            async with self.db.writer(), self.db.session() as session:
                for item in queue[:ROUND]:
                    if item.incoming is None:
                        break
                    if done and self._webhooks_wait() and loop.time() - started >= YIELD_SECONDS:
                        break
                    if not await self.dispatcher.handle_in_round(
                        session, item.row_id, item.incoming
                    ):
                        stale = True
                        break
                    # Each update as if in a transaction of its own: its changes written,
                    # nothing of it cached for the next one.
                    await session.flush()
                    session.expunge_all()
                    done.append(item)
                if done:
                    await session.commit()
        except Exception:  # noqa: BLE001  (told by the one-at-a-time handling, or raised there)
            return await self._one_at_a_time(queue[: len(done) + 1]), False
        if done:
            self.dispatcher.after_commit()
            for item in done:
                self._failures.pop(item.row_id, None)
                self._after_handled(item.incoming)
        return len(done), stale

    async def _one_at_a_time(self, items: list[Recorded]) -> int:
        """A round that failed, again, each update in its own transaction."""
        for count, item in enumerate(items):
            if item.incoming is None:
                await self.dispatcher.discard_recorded(item.row_id)
                continue
            await self._recording_first()
            handling = self._fresh(item)
            if not await self._handle_one(item.row_id, handling):
                return count
            self._after_handled(handling)
        return len(items)

    def _after_handled(self, incoming: Incoming) -> None:
        hooks = self._channels.get(incoming.channel)
        if hooks is not None and hooks.after_handled is not None:
            hooks.after_handled(incoming)

    def _fresh(self, item: Recorded) -> Incoming:
        """The update as recorded, to handle it again after a failed round (handling changes
        its Incoming: a number read as a button, a card replaced), with its photo as it was
        downloaded ahead."""
        prepared = item.incoming
        assert prepared is not None
        fresh = self._decode(item.channel, item.payload)
        if fresh is None:
            return prepared
        if fresh.file is not None and prepared.file is not None:
            fresh.file.fetch = prepared.file.fetch
        return fresh

    def _webhooks_wait(self) -> bool:
        """A webhook's update is waiting to be recorded (`accept` runs the flusher meanwhile)."""
        flusher = self._flusher
        return bool(self._waiting) or (flusher is not None and not flusher.done())

    def _spread(self, work: list[Recorded]) -> list[Recorded]:
        """The round's rows chat by chat, each chat's in order. On PostgreSQL the chats come in
        a random order, so that workers reading the same oldest rows start on different chats
        instead of meeting on each one in turn (one chat is never ahead of itself)."""
        if self.db.is_sqlite:
            return work
        chats: dict[str, list] = {}
        for item in work:
            chats.setdefault(item.chat, []).append(item)
        groups = list(chats.values())
        random.shuffle(groups)
        return [item for group in groups for item in group]

    async def _handle_one(self, row_id: int, incoming: Incoming) -> bool:
        """Handle one recorded update. A failure is raised (the round is tried again after a
        pause) unless the same update has failed MAX_ATTEMPTS times while the database
        answered: then it is a poison (a bug, a statement the database refuses every time) and
        gets the apology, so that the updates behind it are not held for ever."""
        try:
            handled = await self.dispatcher.handle_recorded(row_id, incoming)
        except Exception as error:
            lost = isinstance(error, DBAPIError) and error.connection_invalidated
            if lost or not await self._database_answers():
                raise  # the database is away, or was: every update waits, none is blamed
            failures = self._failures[row_id] = self._failures.get(row_id, 0) + 1
            if failures < MAX_ATTEMPTS:
                raise
            log.exception(
                "inbox: %s update %s failed %d times; answered with the apology",
                incoming.channel,
                incoming.update_id,
                failures,
            )
            handled = await self.dispatcher.give_up(row_id, incoming)
        self._failures.pop(row_id, None)
        return handled

    async def _database_answers(self) -> bool:
        try:
            async with self.db.session() as session:
                await session.exec(select(1))  # type: ignore[call-overload]
        except Exception:  # noqa: BLE001  (any failure means: not now)
            return False
        return True

    async def _recording_first(self) -> None:
        """Let the webhooks waiting for their commit have it before the next round takes the
        one writer (SQLite); during a round they wait at most until the next update's turn
        (`_handle_together`). Bounded, so that a steady stream of updates cannot starve the
        handling."""
        flusher = self._flusher  # running whenever a webhook waits (`accept` starts it)
        if flusher is not None and not flusher.done():
            await asyncio.wait({flusher}, timeout=RECORDING_FIRST_SECONDS)

    def _decode(self, channel: str, payload: str | None) -> Incoming | None:
        """None for a row that cannot be read back (it is marked handled, never retried)."""
        try:
            return Incoming.from_payload(
                json.loads(payload or ""), self._channels[channel].download
            )
        except (ValueError, TypeError, KeyError):
            log.exception("inbox: a recorded %s update cannot be read; dropped", channel)
            return None

    async def _prefetch(self, incomings: list[Incoming]) -> None:
        """Download the round's photos together (not one after the other), within a budget."""
        chosen, budget = [], PREFETCH_BYTES
        for incoming in incomings:
            size = incoming.file.size if incoming.file is not None else None
            if incoming.file is not None and (size or 0) <= budget:
                budget -= size or 0
                chosen.append(incoming)
        if chosen:
            await asyncio.gather(*(fetch_first(incoming) for incoming in chosen))
