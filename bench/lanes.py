"""Reply latency during a fan-out: the real Sender and TelegramChannel against the fake Bot API
enforcing 30 messages/s, with 20,000 reminders queued; a reply to a tap is queued every
`every` seconds, and its latency is from its commit to the fake's accepting it."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def bench_reply_latency(
    out: Any,  # noqa: ANN401  (bench.run.Out)
    database: str,
    url_for: Any,  # noqa: ANN401  (a name → its database URL)
    reminders: int = 20_000,
    replies: int = 40,
    every: float = 0.75,
) -> None:
    from bench.generate import create_postgres_database, drop_postgres_database
    from bench.run import context_for
    from bot.app.runtime import rate_limits
    from bot.channels.sender import Sender
    from bot.channels.telegram import TelegramChannel
    from bot.core.messages import Outgoing
    from bot.core.services.outbox import Queued, enqueue, enqueue_many
    from handlers.router import Dispatcher
    from tests.helpers.fake_telegram import FakeTelegram

    limit = 30
    fake = FakeTelegram(limit_per_second=limit)
    await fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        url = (
            f"sqlite+aiosqlite:///{tmp}/lanes.sqlite" if database == "sqlite" else url_for("lanes")
        )
        if database == "postgres":
            await create_postgres_database(url)
        ctx = context_for(url, Path(tmp), telegram_token=fake.token, telegram_api_url=fake.api_url)
        sender_task = None
        try:
            await ctx.db.upgrade()
            first = 8_000_000_000
            for number in range(reminders + replies):
                fake.user(first + number)
            async with ctx.db.session() as session:
                await enqueue_many(
                    session,
                    [
                        Queued(
                            "telegram",
                            str(first + n),
                            Outgoing(text=f"🔔 Nhắc việc #{n}: Niêm yết công khai ngân sách xã"),
                            f"remind:{n}:20261118:bench",
                        )
                        for n in range(reminders)
                    ],
                )
                await session.commit()
            dispatcher = Dispatcher(ctx)
            channel = TelegramChannel(ctx, dispatcher)  # sends only
            await channel._ensure_ready()
            sender = Sender(ctx.db, {"telegram": channel}, limits=rate_limits(ctx))
            sender_task = asyncio.create_task(sender.run(idle_poll=0.2))
            await asyncio.sleep(2.0)  # the fan-out is under way
            queued_at: dict[int, float] = {}
            for n in range(replies):
                chat = first + reminders + n
                async with ctx.db.writer(), ctx.db.session() as session:
                    await enqueue(
                        session,
                        "telegram",
                        str(chat),
                        Outgoing(text="✅ Đã ghi nhận: Niêm yết công khai ngân sách xã"),
                        f"reply:telegram:{n}:1",
                    )
                    await session.commit()
                queued_at[chat] = time.monotonic()
                sender.wake()  # as the dispatcher does after its commit
                await asyncio.sleep(every)
            deadline = time.monotonic() + 30
            answered: dict[int, float] = {}
            while time.monotonic() < deadline and len(answered) < replies:
                for call in fake.calls:
                    chat = int(call.params.get("chat_id", 0) or 0) if call.ok else 0
                    if chat in queued_at and chat not in answered:
                        answered[chat] = call.at - queued_at[chat]
                await asyncio.sleep(0.2)
            sent_reminders = sum(
                1 for m in fake.messages if m.chat_id < first + reminders and m.chat_id >= first
            )
            sender.stop()
            await asyncio.wait_for(sender_task, timeout=15)
            latencies = list(answered.values())
            out.emit(
                "lanes",
                database,
                "reply_p99_seconds_during_fan_out",
                round(percentile(latencies, 0.99), 3) if latencies else None,
                "s",
                p50=round(statistics.median(latencies), 3) if latencies else None,
                max=round(max(latencies), 3) if latencies else None,
                replies=replies,
                answered=len(answered),
                reminders_queued=reminders,
                reminders_sent_meanwhile=sent_reminders,
                refused_429=sum(1 for c in fake.calls if c.status == 429),
                claim_size=getattr(sender, "claim_size", sender.batch_size),
            )
            await channel.stop()
            await dispatcher.inbox.stop()  # the channel's stop waits on it, which wakes it
        finally:
            if sender_task is not None and not sender_task.done():
                sender_task.cancel()
            await ctx.db.dispose()
            await fake.close()
            if database == "postgres":
                await drop_postgres_database(url)
