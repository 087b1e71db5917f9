"""Drain the outbox: at least once to the platform, exactly once in effect.

Rows are claimed (`sending`) in one transaction and marked in another, so two workers never take
the same row (PostgreSQL: FOR UPDATE SKIP LOCKED). A claim is a lease: the worker renews it
(`next_attempt_at`) every quarter of `stale_after` while it sends the batch, so a row whose lease
ran out belongs to a worker that died (a crash, `kill -9`) and is taken again, by another worker
or by the same one restarted, at most `stale_after` later. Only such a row can be sent twice (it
may have reached the platform just before the crash); the channel gets the row's idempotency key
to make that resend a no-op where the platform allows it.

A row is `sent` only when the platform accepted it (with its message id); a row that fails for
good is `dead` with its reason (`failure`). A row that belongs to a reach chain tells the chain
in the same transaction (bot/core/services/reach.py): its reminders count as sent only then, and a
failure lets the sweep try the person's next step.

Rows are claimed by lane (OutboxLane): the reply to the person who is talking, then news for
other people, then reminders, then digests. Every lane with work gets at least LANE_SHARE of each
batch, so none starves; and a batch is what the fastest channel sends in about a second, so a
reply queued during a fan-out of reminders waits for one batch at most, not for the fan-out.
Within a lane, rows go in the order they were queued.

Claims are partitioned by chat, so that several senders (one per `papibot run` or `papibot
worker` process on one PostgreSQL) keep each chat's order: a chat that has a row `sending` is
not claimed by anyone else until that row is marked, and on PostgreSQL the claims themselves take
turns (an advisory lock held for the claim's few milliseconds, not while sending), so two
claims never read the same chat as free. One chat is then in one sender's hands at a time, and so
is its per-chat rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, literal
from sqlalchemy.orm import aliased
from sqlmodel import col, select, update

from bot.channels.base import ChannelSender, DeliveryError, EditImpossible
from bot.core.db import Database
from bot.core.messages import Outgoing
from bot.core.models import ChannelIdentity, Outbox, OutboxLane, OutboxStatus, utcnow
from bot.core.services.reach import message_failed, message_sent
from bot.core.sqlutil import dialect_name, for_update_skip_locked

log = logging.getLogger(__name__)


class RateLimiter:
    """A per-channel rate plus a per-chat token bucket.

    Telegram asks for at most 30 messages/s overall and about one per second in one chat, but
    allows short bursts: a task list of five cards should arrive at once, not over five seconds.
    """

    def __init__(
        self, per_second: float, per_chat_interval: float, per_chat_burst: int = 5
    ) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.per_chat_interval = per_chat_interval
        self.per_chat_burst = per_chat_burst
        self._next_slot = 0.0
        # When the last `per_second` sends finished: the platform counts arrivals, which fall
        # between a send's start and its end, so send i starts no sooner than 1 s after send
        # i - per_second ended, and jitter can never put one message too many in a second.
        self._finished: deque[float] = deque(maxlen=max(int(per_second), 1))
        # Per chat: the moment its bucket would be full again (empty dict entry = full bucket).
        self._chat_full_at: dict[str, float] = {}
        self._lock = asyncio.Lock()

    def _chat_slot(self, chat: str, now: float) -> float:
        """The earliest moment this chat may receive one more message; takes the token."""
        window = self.per_chat_interval * self.per_chat_burst
        full_at = max(self._chat_full_at.get(chat, now), now)
        # Sending one message pushes "full again" one interval further; if that is more than a
        # burst away, wait until it is not.
        slot = max(now, full_at + self.per_chat_interval - window)
        self._chat_full_at[chat] = full_at + self.per_chat_interval
        return slot

    async def wait(self, chat: str) -> None:
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot, self._chat_slot(chat, now))
            if self.interval and len(self._finished) == self._finished.maxlen:
                slot = max(slot, self._finished[0] + 1.0)
            self._next_slot = slot + self.interval
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def done(self) -> None:
        """A send has finished (delivered or not)."""
        self._finished.append(time.monotonic())

    def pause(self, seconds: float) -> None:
        """The platform said "too many requests": nobody sends on this channel for a while."""
        self._next_slot = max(self._next_slot, time.monotonic() + seconds)


class _SentMarks:
    """The rows of one batch the platform accepted, waiting to be marked sent together.

    A row is marked only once the platform accepted it, with its message id; until then it is
    `sending` under the batch's lease. A crash before the mark leaves it so: the lease runs out
    and the row is sent again (at least once, the idempotency key given to the platform), never
    marked sent without having been accepted. Marked at the end of the batch, or sooner when
    MARK_EVERY_SECONDS have passed since the oldest waiting one (a batch spread by the rate
    limit), so a receipt finds its message id soon after the send."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.waiting: list[tuple[Outbox, str, datetime, str]] = []
        self.oldest = 0.0
        self._lock = asyncio.Lock()
        self._marking: asyncio.Task | None = None

    def add(self, row: Outbox, message_id: str, edit_result: str = "") -> None:
        """Note an accepted row. The mark itself is written beside the sending, never in its
        way: a commit that waits for the database (another writer holds SQLite's lock: a
        sweep's batch) must not stop the next send."""
        if not self.waiting:
            self.oldest = time.monotonic()
        self.waiting.append((row, str(message_id)[:64], self.sender.clock(), edit_result))
        due = time.monotonic() - self.oldest >= MARK_EVERY_SECONDS
        if due and (self._marking is None or self._marking.done()):
            self._marking = asyncio.create_task(self._flush_quietly())

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except Exception:  # noqa: BLE001  (kept `waiting`: the batch's last flush tries again)
            log.warning("could not mark delivered outbox rows yet", exc_info=True)

    async def flush(self) -> None:
        """Mark what is waiting (after a mark already under way); raises if the commit fails,
        and the rows stay `sending` under their lease."""
        if self._marking is not None and self._marking is not asyncio.current_task():
            await asyncio.gather(self._marking, return_exceptions=True)
        async with self._lock:
            delivered, self.waiting = self.waiting, []
            if delivered:
                try:
                    await self.sender._mark_sent(delivered)
                except BaseException:
                    self.waiting = delivered + self.waiting
                    raise


MARK_EVERY_SECONDS = 0.25  # a delivered row is marked sent at most about this late
LANE_SHARE = 0.1  # of each batch, kept for every lane below the one being claimed
CLAIM_LOCK = (0x70617069, 0)  # advisory lock (PostgreSQL) the senders' claims take turns on
MAX_CLAIMS_AHEAD = 1  # batches claimed ahead (2 measured no better while a sweep runs)
CLAIM_LEAD = 0.3  # seconds before a batch's last send that the next one is claimed
MAX_IMMEDIATE_RETRIES = 5  # 429s honoured in place before the row goes back to the queue


def _chat_in_hand():  # noqa: ANN202  (a SQL expression)
    """The row's chat has a row being sent (by this sender's last batch, or another's)."""
    held = aliased(Outbox)
    return (
        select(literal(1))
        .where(
            held.status == OutboxStatus.sending,
            and_(held.channel == Outbox.channel, held.external_id == Outbox.external_id),
        )
        .exists()
    )


def backoff_seconds(attempt: int) -> float:
    return min(2.0**attempt, 3600.0)


class Sender:
    def __init__(
        self,
        db: Database,
        channels: dict[str, ChannelSender],
        limits: dict[str, RateLimiter] | None = None,
        max_attempts: int = 8,
        batch_size: int = 100,
        stale_after: timedelta = timedelta(minutes=1),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.clock = clock  # when a row was sent, as its chain and receipts read it
        self.channels = channels
        self.limits = limits or {}
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        # A batch no longer than the fastest channel sends in a second: a reply queued behind
        # it waits about that long.
        rates = [1.0 / limit.interval for limit in self.limits.values() if limit.interval]
        self.claim_size = max(1, min(batch_size, int(max(rates)))) if rates else batch_size
        self.stale_after = stale_after
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._finishing: set[asyncio.Task] = set()  # batches whose last marks are being written

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def run(self, idle_poll: float = 1.0) -> None:
        """Drain until stopped. While a batch is being sent, the next one is claimed beside it,
        so it is ready when the rate limit allows its first send: a claim that waits (for a
        busy event loop, or for SQLite's lock while a sweep's batch holds it) costs no send."""
        ahead: deque[asyncio.Task[list[Outbox]]] = deque()
        late = False
        try:
            while not self._stopping:
                sent = 0
                try:
                    if ahead:
                        late = not ahead[0].done()
                        rows = await ahead.popleft()
                    else:
                        rows = await self._claim()
                    if rows:
                        # Claimed as late as will do, so that a reply queued meanwhile still
                        # makes the next batch; at once when the last claim came too late.
                        lead = 0.0 if late else self._sending_seconds(rows) - CLAIM_LEAD
                        while len(ahead) < MAX_CLAIMS_AHEAD:
                            claim = self._claim_after(lead)
                            ahead.append(asyncio.create_task(claim, name="sender-ahead"))
                        sent = await self._send_batch(rows, mark_beside=True)
                except Exception:  # noqa: BLE001  (a database blip must not kill the sender)
                    log.exception("sender pass failed; retrying")
                if sent == 0 and not ahead:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=idle_poll)
                    except TimeoutError:
                        pass
        finally:
            for task in ahead:
                await self._release(task)
            await asyncio.gather(*self._finishing, return_exceptions=True)

    def _sending_seconds(self, rows: list[Outbox]) -> float:
        """About how long the rate limits take to let these rows out."""
        intervals = [
            self.limits[row.channel].interval if row.channel in self.limits else 0.0 for row in rows
        ]
        return sum(intervals) / max(1, len({row.channel for row in rows}))

    async def _claim_after(self, seconds: float) -> list[Outbox]:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=seconds)
        if self._stopping:
            return []
        return await self._claim()

    async def _release(self, ahead: asyncio.Task[list[Outbox]]) -> None:
        """A batch claimed ahead and never sent goes back to the queue (stopping), instead of
        waiting out its lease."""
        try:
            rows = await ahead
        except BaseException:  # noqa: BLE001  (stopping: a claim that failed holds nothing)
            return
        if not rows:
            return
        try:
            async with self.db.writer(), self.db.session() as session:
                await session.exec(
                    update(Outbox)
                    .where(
                        col(Outbox.id).in_([row.id for row in rows]),
                        Outbox.status == OutboxStatus.sending,
                    )
                    .values(status=OutboxStatus.pending, attempts=Outbox.attempts - 1)
                )
                await session.commit()
        except Exception:  # noqa: BLE001  (the lease runs out instead, and they are sent then)
            log.warning("could not give back %d claimed outbox rows", len(rows), exc_info=True)

    async def _claim(self) -> list[Outbox]:
        now = utcnow()
        async with self.db.writer(), self.db.session() as session:
            if dialect_name(session) == "postgresql":
                # First, alone: what the previous claim committed is then visible below.
                await session.exec(select(func.pg_advisory_xact_lock(*CLAIM_LOCK)))
            stale = now - self.stale_after
            await session.exec(
                update(Outbox)
                .where(Outbox.status == OutboxStatus.sending, col(Outbox.next_attempt_at) < stale)
                .values(status=OutboxStatus.pending)
            )
            rows: list[Outbox] = []
            lanes = list(OutboxLane)
            # Kept for each lower lane (none under 10 rows a batch: then strictly by lane).
            reserve = int(self.claim_size * LANE_SHARE)
            for place, lane in enumerate(lanes):
                room = self.claim_size - len(rows) - reserve * (len(lanes) - place - 1)
                if room <= 0:
                    continue
                query = (
                    select(Outbox)
                    .where(
                        Outbox.status == OutboxStatus.pending,
                        Outbox.lane == int(lane),
                        col(Outbox.next_attempt_at) <= now,
                        col(Outbox.channel).in_(list(self.channels)),
                        ~_chat_in_hand(),
                    )
                    .order_by(col(Outbox.id))
                    .limit(room)
                )
                rows += (await session.exec(for_update_skip_locked(session, query))).all()
            for row in rows:
                row.status = OutboxStatus.sending
                row.attempts += 1
                row.next_attempt_at = now  # the lease: renewed while the batch is being sent
                session.add(row)
            await session.commit()
            return rows

    async def drain_once(self) -> int:
        """Send what is due now (one batch); returns how many rows were delivered."""
        rows = await self._claim()
        if not rows:
            return 0
        return await self._send_batch(rows)

    async def _send_batch(self, rows: list[Outbox], mark_beside: bool = False) -> int:
        """Send a claimed batch; returns how many the platform accepted. `mark_beside`: the
        batch's last marks are written in the background (the next batch can start sending;
        its chats wait, as `sending` rows hold them, until their rows are marked)."""
        by_channel: dict[str, list[Outbox]] = defaultdict(list)
        for row in rows:
            by_channel[row.channel].append(row)
        done = asyncio.Event()
        lease = asyncio.create_task(self._renew_lease([row.id for row in rows], done))
        marks = _SentMarks(self)
        try:
            results = await asyncio.gather(
                *(self._send_lane(lane, marks) for lane in by_channel.values())
            )
        except BaseException:
            await self._finish(marks, done, lease)
            raise
        if mark_beside:
            finishing = asyncio.create_task(self._finish(marks, done, lease, quietly=True))
            self._finishing.add(finishing)
            finishing.add_done_callback(self._finishing.discard)
        else:
            await self._finish(marks, done, lease)
        return sum(results)

    async def _finish(
        self,
        marks: _SentMarks,
        done: asyncio.Event,
        lease: asyncio.Task,
        quietly: bool = False,
    ) -> None:
        """The batch's last marks, then its lease ends (a row not marked stays `sending`
        under it, and is sent again once it runs out: at least once, never marked unsent)."""
        try:
            await marks.flush()
        except Exception:
            if not quietly:
                raise
            log.exception("could not mark a sent batch; its lease will run out")
        finally:
            done.set()
            with contextlib.suppress(Exception):
                await lease

    async def _renew_lease(self, ids: list[int | None], done: asyncio.Event) -> None:
        """Keep this batch's claim alive until it is sent (rows still `sending` only)."""
        every = self.stale_after.total_seconds() / 4
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=every)
                return
            try:
                async with self.db.writer(), self.db.session() as session:
                    await session.exec(
                        update(Outbox)
                        .where(col(Outbox.id).in_(ids), Outbox.status == OutboxStatus.sending)
                        .values(next_attempt_at=utcnow())
                    )
                    await session.commit()
            except Exception:  # noqa: BLE001  (a database blip: try again on the next beat)
                log.warning("could not renew the claim on %d outbox rows", len(ids), exc_info=True)

    async def _send_lane(self, rows: list[Outbox], marks: _SentMarks) -> int:
        delivered = 0
        for row in rows:
            delivered += await self._send_one(row, marks)
        return delivered

    async def _send_one(self, row: Outbox, marks: _SentMarks) -> int:
        channel = self.channels[row.channel]
        limiter = self.limits.get(row.channel)
        retries = 0
        while True:
            if limiter:
                await limiter.wait(row.external_id)
            try:
                message_id, edit_result = await self._deliver(channel, row)
            except DeliveryError as error:
                if limiter:
                    limiter.done()
                short_wait = error.retry_after is not None and error.retry_after <= 60
                if short_wait and limiter and retries < MAX_IMMEDIATE_RETRIES:
                    # Honour the platform's wait, then try the same row again.
                    retries += 1
                    limiter.pause(error.retry_after)
                    continue
                await self._mark_failed(row, error)
                return 0
            except Exception as error:  # noqa: BLE001  (network errors: retry with backoff)
                if limiter:
                    limiter.done()
                await self._mark_failed(row, DeliveryError(f"{type(error).__name__}: {error}"))
                return 0
            if limiter:
                limiter.done()
            marks.add(row, message_id, edit_result)
            return 1

    @staticmethod
    async def _deliver(channel: ChannelSender, row: Outbox) -> tuple[str, str]:
        """The platform's message id, and the row's `edit_result` (empty for a new message)."""
        # A template channel (ZNS) reads the payload itself: it is not a chat message.
        send_payload = getattr(channel, "send_payload", None)
        if send_payload is not None:
            return await send_payload(row.external_id, row.payload, row.idempotency_key), ""
        message = Outgoing.from_payload(row.payload)
        edit = getattr(channel, "edit", None)
        if row.edit_of and edit is not None:
            try:
                return row.edit_of, await edit(row.external_id, row.edit_of, message)
            except EditImpossible as why:
                # The card is gone: the person still gets the answer, as a new message.
                log.info("outbox %s: card %s not edited (%s); sent anew", row.id, row.edit_of, why)
                return await channel.send(row.external_id, message, row.idempotency_key), "resent"
        return await channel.send(row.external_id, message, row.idempotency_key), ""

    async def _mark_sent(self, delivered: list[tuple[Outbox, str, datetime, str]]) -> None:
        """Rows the platform accepted (row, its message id, when, what became of an edit):
        sent, in one transaction (one UPDATE for them all), each with its message id; their
        reach chains told."""
        table = Outbox.__table__
        statement = (
            table.update()
            .where(table.c.id == bindparam("row_id"))
            .values(
                status=OutboxStatus.sent,
                sent_at=bindparam("at"),
                platform_message_id=bindparam("message_id"),
                edit_result=bindparam("edit_result"),
            )
        )
        async with self.db.writer(), self.db.session() as session:
            await session.exec(  # type: ignore[call-overload]
                statement,
                params=[
                    {"row_id": row.id, "at": at, "message_id": message_id, "edit_result": edit}
                    for row, message_id, at, edit in delivered
                ],
            )
            for row, _message_id, at, _edit in delivered:
                if row.chain_key:
                    await message_sent(session, row, at)
            await session.commit()

    async def _mark_failed(self, row: Outbox, error: DeliveryError) -> None:
        dead = error.permanent or row.attempts >= self.max_attempts
        delay = (
            error.retry_after if error.retry_after is not None else backoff_seconds(row.attempts)
        )
        values = {
            "status": OutboxStatus.dead if dead else OutboxStatus.pending,
            "last_error": str(error)[:1000],
            "next_attempt_at": utcnow() + timedelta(seconds=delay),
            "failure": error.reason if dead else "",
        }
        async with self.db.writer(), self.db.session() as session:
            await session.exec(update(Outbox).where(Outbox.id == row.id).values(**values))
            if dead:
                await message_failed(session, row, error.reason, self.clock())
            if error.unreachable:
                await session.exec(
                    update(ChannelIdentity)
                    .where(
                        ChannelIdentity.channel == row.channel,
                        ChannelIdentity.external_id == row.external_id,
                    )
                    .values(blocked=True)
                )
            await session.commit()
        log.warning("outbox %s %s: %s", row.id, "dead" if dead else "will retry", error)
