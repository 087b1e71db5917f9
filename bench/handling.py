"""Benchmark `handling`: what one handled inbound update costs, measured inside the process.

    python -m bench.handling                     # 2,000 updates, the inbound mix, SQLite
    python -m bench.handling --updates 4000 --profile

The same world as `bench.inbound` (the Khánh Hòa sample, `papibot init` and `papibot plan`, one
Telegram village head per village) and the same mix of updates (bench/load_client.py: /viec, a
✅ tap on an open task, a photo, a menu tap). The updates are first recorded exactly as the
webhook records them (the Telegram channel's parsing, `Inbox._write`); then the inbox's worker
handles them all, alone, and this process measures:

- statements per handled update: every statement the database receives, counted by an
  SQLAlchemy `before_cursor_execute` listener on the engine (the claim of the recorded row, the
  look-ups, the journey, the replies' inserts), and commits per handled update (`commit` event);
- CPU per handled update: `time.process_time()` of this process over the handling (every
  thread: aiosqlite's included), which is what papibot's worker spends;
- handled per second (wall clock, the worker alone: an upper bound for `bench.inbound`'s
  handled side, which shares the process with the webhook and the sender).

Then the sender drains the replies against the fake Bot API without a rate limit (the limit is
`bench.run --only send`'s figure): statements and commits per message sent.

Each figure is one JSON line (appended to --results when given). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.inbound import RESULTS, UNITS_CSV, papibot_env, register_village_heads, run_cli

STATEMENTS_TARGET = 6.0
CPU_TARGET_MS = 4.0
HANDLED_TARGET = 300.0


class Counted:
    """Statements and commits the engine sends, by kind (the first word of the statement)."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        from sqlalchemy import event

        self.engine = engine.sync_engine
        self.kinds: Counter[str] = Counter()
        self.commits = 0
        self._event = event

    def _statement(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, PLR0913
        self.kinds[statement.lstrip().split(None, 1)[0].upper()] += 1

    def _commit(self, conn) -> None:  # noqa: ANN001
        self.commits += 1

    def __enter__(self) -> Counted:
        self._event.listen(self.engine, "before_cursor_execute", self._statement)
        self._event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *exc: object) -> None:
        self._event.remove(self.engine, "before_cursor_execute", self._statement)
        self._event.remove(self.engine, "commit", self._commit)

    @property
    def statements(self) -> int:
        return sum(self.kinds.values())


def emit(results: Path | None, figure: str, **fields: Any) -> None:
    line = {"bench": "handling", "database": "sqlite", "figure": figure, **fields}
    line["at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    line["load_average_1m"] = round(os.getloadavg()[0], 2)
    text = json.dumps(line, ensure_ascii=False)
    print(text, flush=True)
    if results is not None:
        with results.open("a", encoding="utf-8") as file:
            file.write(text + "\n")


async def bench_handling(args: argparse.Namespace) -> None:
    from sqlalchemy import text
    from telegram import Update

    from bench.load_client import Person, Updates
    from bot.app.runtime import build_runtime
    from bot.core.config import Settings
    from bot.core.context import AppContext
    from tests.helpers.fake_telegram import FakeTelegram

    results = Path(args.results) if args.results else None
    with tempfile.TemporaryDirectory(prefix="papibot-handling-") as tmp_name:
        work = Path(tmp_name)
        data_dir = work / "data"
        env = papibot_env(data_dir)
        await run_cli(["init", "--units", str(UNITS_CSV)], work, env, 600)
        await run_cli(["plan"], work, env, 600)
        registered = await register_village_heads(data_dir, args.users)

        fake = FakeTelegram()
        await fake.start()
        settings = Settings(
            data_dir=data_dir,
            public_url="http://127.0.0.1:9",  # webhook mode: the worker handles, nobody polls
            telegram_token=fake.token,
            telegram_api_url=fake.api_url,
            telegram_webhook_secret="bench-handling",
            scheduler_enabled=False,
            _env_file=None,
        )
        ctx = AppContext.build(settings)
        runtime = build_runtime(ctx)
        channel = runtime.channels["telegram"]
        inbox = runtime.dispatcher.inbox
        try:
            await channel.start()
            people = [Person(chat_id, occurrences) for chat_id, occurrences in registered]
            updates = Updates(fake, people, first_update_id=100_000)
            kinds: Counter[str] = Counter()
            incomings = []
            for k in range(args.updates):
                kind, data = updates.next(k)
                kinds[kind] += 1
                incomings.append(channel.to_incoming(Update.de_json(data, channel.bot)))
            for start in range(0, len(incomings), 100):  # as bursts of webhooks record them
                await inbox._write(incomings[start : start + 100])
            inbox._recorded = len(incomings)

            profiler = cProfile.Profile() if args.profile else None
            with Counted(ctx.db.engine) as counted:
                cpu0, wall0 = time.process_time(), time.monotonic()
                if profiler:
                    profiler.enable()
                inbox.start()
                await inbox.idle()
                if profiler:
                    profiler.disable()
                cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            await channel.idle()  # the taps' acknowledgements, outside the measure
            async with ctx.db.session() as session:
                handled = (
                    await session.exec(  # type: ignore[call-overload]
                        text("SELECT count(*) FROM inbound_updates WHERE handled_at IS NOT NULL")
                    )
                ).scalar_one()
                replies = (
                    await session.exec(  # type: ignore[call-overload]
                        text("SELECT count(*) FROM outbox WHERE status = 'pending'")
                    )
                ).scalar_one()
            n = max(handled, 1)
            statements_per = counted.statements / n
            cpu_per = cpu * 1000 / n
            emit(
                results,
                "handled",
                updates=len(incomings),
                mix=dict(kinds),
                handled=handled,
                replies_queued=replies,
                statements_per_update=round(statements_per, 2),
                statements_by_kind={k: round(v / n, 2) for k, v in counted.kinds.most_common()},
                commits_per_update=round(counted.commits / n, 2),
                cpu_ms_per_update=round(cpu_per, 2),
                handled_per_second=round(handled / wall, 1),
                seconds=round(wall, 2),
                targets={
                    "statements_per_update": STATEMENTS_TARGET,
                    "cpu_ms_per_update": CPU_TARGET_MS,
                    "handled_per_second": HANDLED_TARGET,
                },
                met={
                    "statements_per_update": statements_per <= STATEMENTS_TARGET,
                    "cpu_ms_per_update": cpu_per <= CPU_TARGET_MS,
                    "handled_per_second": handled / wall >= HANDLED_TARGET,
                },
            )
            if profiler:
                RESULTS.mkdir(parents=True, exist_ok=True)
                path = RESULTS / f"profile-handling{args.profile_suffix}.txt"
                with path.open("w") as file:
                    stats = pstats.Stats(profiler, stream=file)
                    stats.sort_stats("tottime").print_stats(60)
                    stats.sort_stats("cumulative").print_stats(60)
                print(f"# handling: profile in {path}", file=sys.stderr)

            sender = runtime.sender
            sender.limits = {}  # the platform's limit is the send benchmark's figure
            with Counted(ctx.db.engine) as counted:
                cpu0, wall0 = time.process_time(), time.monotonic()
                sent = 0
                for _round in range(10_000):  # bounded: each round sends a claim's worth
                    done = await sender.drain_once()
                    if done == 0:
                        break
                    sent += done
                cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            m = max(sent, 1)
            emit(
                results,
                "sent",
                sent=sent,
                claim_size=sender.claim_size,
                statements_per_message=round(counted.statements / m, 2),
                commits_per_message=round(counted.commits / m, 3),
                cpu_ms_per_message=round(cpu * 1000 / m, 2),
                seconds=round(wall, 2),
            )
        finally:
            await channel.stop()
            await inbox.stop()  # the channel's stop waits on it, which wakes it
            await fake.close()
            await ctx.db.dispose()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--users", type=int, default=417, help="village heads (417 = all)")
    parser.add_argument("--profile", action="store_true", help="cProfile of the handling")
    parser.add_argument("--profile-suffix", default="")
    parser.add_argument("--results", default="", help="also append the JSON lines to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = datetime.now(UTC)
    asyncio.run(bench_handling(args))
    print(f"# handling: {datetime.now(UTC) - started} in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
