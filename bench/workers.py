"""Scale-out: how many recorded updates N `papibot worker` processes handle per second on one
PostgreSQL, for N in `--workers` (default 1 and 2), and the ratio of each to one process.

Each run: a fresh database (`Database.upgrade()`), a fake Telegram on loopback
(tests/helpers/worker_rig.py, the rig of tests/test_workers_postgres.py), N workers started and
running, then `--chats` × `--per-chat` text updates written into the inbox at once (as
`papibot run` records them from webhooks), after a warm-up of 2 updates per chat that every
process takes part in (imports, caches). The clock runs from that commit until every update
is handled (`handled`), and until every reply is accepted by the fake (`answered`: bounded by
Telegram's one message a second per chat after a burst of five, so it says little about the
workers). `worker_cpu_ms_per_update`: the workers' CPU, all together, per handled update.
Nothing is asserted: a line carries its target and `"met"`.

    .venv/bin/python -m bench.workers --workers 1,2 --chats 200 --per-chat 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, func, select

from bench.inbound import cpu_seconds
from bot.core.db import Database
from bot.core.models import InboundUpdate
from tests.helpers.drill_support import wait_for
from tests.helpers.worker_rig import (
    FIRST_CHAT,
    TOKEN,
    PortedTelegram,
    Workers,
    create_database,
    drop_database,
    fill_inbox,
    handled_and_sent,
    update_rows,
)

RESULTS = Path(__file__).resolve().parent / "results" / "results.jsonl"
TARGET_RATIO = 1.7  # two workers handle at least this many times what one does


def emit(figure: str, **fields: Any) -> None:
    line = {"bench": "workers", "database": "postgres", "figure": figure, **fields}
    line["at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    line["load"] = [round(value, 2) for value in os.getloadavg()]
    text = json.dumps(line, ensure_ascii=False)
    print(text, flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as file:
        file.write(text + "\n")


async def handled(db: Database) -> int:
    async with db.session() as session:
        count = await session.exec(
            select(func.count()).where(col(InboundUpdate.handled_at).is_not(None))
        )
        return int(count.one())


async def one_run(admin_url: str, count: int, chats: int, per_chat: int) -> dict[str, Any]:
    name, url = await create_database(admin_url)
    db = Database(url)
    fake = PortedTelegram(token=TOKEN)
    workers: Workers | None = None
    try:
        await db.upgrade()
        for chat in range(chats):
            fake.user(FIRST_CHAT + chat)
        await fake.start()
        with tempfile.TemporaryDirectory() as folder:
            workers = await Workers.start(count, url, fake, Path(folder))
            # Warm up every process (imports, caches, prepared statements) before the clock.
            warmup = update_rows(chats, 2, first_update=10_000)
            await fill_inbox(db, warmup)

            async def warm() -> bool:
                return (await handled_and_sent(db))[1] >= len(warmup)

            await wait_for(warm, "the warm-up updates answered", 900, 0.1, workers.logs)
            rows = update_rows(chats, per_chat)
            pids = [child.process.pid for child in workers.children if child.process]
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            await fill_inbox(db, rows)
            started = time.monotonic()
            total = len(rows)

            async def all_handled() -> bool:
                return await handled(db) >= total + len(warmup)

            await wait_for(all_handled, "every update handled", 900, 0.05, workers.logs)
            handled_s = time.monotonic() - started
            cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before

            async def all_answered() -> bool:
                return (await handled_and_sent(db))[1] >= total + len(warmup)

            await wait_for(all_answered, "every reply sent", 900, 0.1, workers.logs)
            answered_s = time.monotonic() - started
            await workers.stop()
    finally:
        if workers is not None:
            await workers.kill()
        await fake.close()
        await db.dispose()
        await drop_database(admin_url, name)
    return {
        "workers": count,
        "updates": total,
        "handled_s": round(handled_s, 2),
        "handled_per_s": round(total / handled_s, 1),
        "answered_s": round(answered_s, 2),
        # The workers' own CPU per handled update, all of them together: about the same for 1
        # and 2 means the second process wastes no work on the first one's chats.
        "worker_cpu_ms_per_update": round(1000 * cpu / total, 1),
    }


async def main_async(args: argparse.Namespace) -> int:
    counts = [int(part) for part in args.workers.split(",")]
    runs: dict[int, list[dict[str, Any]]] = {}
    for _repeat in range(args.repeats):
        for count in counts:
            run = await one_run(args.postgres_url, count, args.chats, args.per_chat)
            emit("handled", **run)
            runs.setdefault(count, []).append(run)
    best = {count: max(r["handled_per_s"] for r in found) for count, found in runs.items()}
    if 1 in best:
        for count, rate in best.items():
            if count == 1:
                continue
            ratio = round(rate / best[1], 2)
            target = TARGET_RATIO if count == 2 else None
            extra = {"target": target, "met": ratio >= target} if target else {}
            emit("handled_ratio", workers=count, value=ratio, unit="× one process", **extra)
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2,3")
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--per-chat", type=int, default=10, help="updates per chat")
    parser.add_argument("--repeats", type=int, default=1, help="runs per count (best kept)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "PAPIBOT_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a database on the server (each run creates and drops one beside it)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
