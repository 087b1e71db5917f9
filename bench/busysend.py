"""Benchmark `busysend`: the outbox sender while a morning sweep and inbound webhooks run.

    python -m bench.run --scale province --database sqlite --only busysend
    python -m bench.busysend --rate 50 --seconds 15        # the same, on its own

One server process composed as `papibot run` composes it (`bot.app.runtime.build_runtime`,
`bot.app.server.build_app` and `start_runtime`: the Telegram webhook, the inbox's worker and the
outbox sender on one event loop), on a copy of the province data set (bench/generate.py), its
Telegram channel pointed at the fake Bot API enforcing 30 sends/s. Its scheduler is off (it
would sweep at the real clock); instead, once the inbound traffic is under way, the server runs
the scheduler's sweep job at the data set's busy moment (`bench_meta.busy_at`, the morning that
bench.run's `morning` figure sweeps): batch after batch of 2,000 occurrences within the sweep's
45 s budget, its reminders queued as it goes. Meanwhile this process (the fake Bot API and the
open-loop load client of bench/inbound.py, bench/load_client.py) offers webhook updates at a
steady rate from the village heads of the data set (/viec, a ✅ tap, a photo, a menu tap).

Figures (one JSON line each, bench.run's format):

    rate_over_limit        deliveries (sends and edits, what the sender's limiter governs) per
                           second over the longest stretch in which the outbox always held at
                           least a claim's worth of due rows (sampled every 0.25 s) while the
                           inbound traffic ran, over Telegram's 30/s; target >= 0.97
    rate_over_limit_during_sweep   the same, over the part of that stretch the sweep ran in
    lost, duplicated       every outbox row of the run against what the fake accepted, per chat
    refused_429            sends the fake refused for the rate
    reply_seconds          a reply's latency, webhook recorded → sent (p50, p99), and its wait
                           in the outbox (queued → sent)
    loop_lag               the server's event loop: how late a 10 ms timer fired (p99, max)
                           during the stretch, what holds the loop (`--loop-debug` also logs
                           every callback that held it over 50 ms, by coroutine)

A run whose stretch is empty (the outbox never held a claim's worth) says "not measured".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 30  # Telegram's messages per second, as the fake enforces it
WEBHOOK_SECRET = "bench-busysend-secret"
SECRET_KEY = "bench-busysend-not-a-secret-0123456789abcdef"  # 32+ characters
OUTBOX_METHODS = {
    "sendmessage",
    "sendphoto",
    "senddocument",
    "editmessagetext",
    "editmessagecaption",
}
SAMPLE_EVERY = 0.25
ACCEPTED = ("sent", "delivered", "seen")  # outbox states of a row the platform accepted


def log(message: str) -> None:
    print(f"# busysend: {message}", file=sys.stderr, flush=True)


# --- what the figures are made of (pure, so tests can check them) ---------------------------


def busy_stretch(
    samples: list[tuple[float, int]], full: int, start: float, end: float
) -> tuple[float, float]:
    """The longest stretch within [start, end] in which every sample (moment, due rows in the
    outbox) showed at least `full` rows: the sender always had a whole claim to send. (0, 0)
    when there is none."""
    best = (0.0, 0.0)
    began: float | None = None
    previous: float | None = None
    for moment, due in samples:
        if moment < start or moment > end:
            continue
        if due >= full:
            if began is None:
                began = moment
            previous = moment
            if previous - began > best[1] - best[0]:
                best = (began, previous)
        else:
            began = previous = None
    return best


def rate_over(moments: list[float], start: float, end: float) -> float | None:
    """Deliveries per second between two moments; None for an empty stretch."""
    if end <= start:
        return None
    return sum(1 for at in moments if start <= at < end) / (end - start)


def delivery_balance(sent_per_chat: Counter, accepted_per_chat: Counter) -> tuple[int, int]:
    """(lost, duplicated): rows marked sent the platform never accepted, and acceptances beyond
    the rows marked sent, chat by chat."""
    lost = sum(max(0, n - accepted_per_chat.get(chat, 0)) for chat, n in sent_per_chat.items())
    duplicated = sum(
        max(0, n - sent_per_chat.get(chat, 0)) for chat, n in accepted_per_chat.items()
    )
    return lost, duplicated


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- the server: one process as `papibot run` composes it ----------------------------------


async def serve(args: argparse.Namespace) -> None:
    """`papibot run`'s pieces on the data set copy; a sweep at `busy_at` when told on stdin."""
    from aiohttp import web

    from bot.app.runtime import build_runtime
    from bot.app.server import build_app, start_runtime, stop_runtime
    from bot.core.config import Settings
    from bot.core.context import AppContext
    from scheduler.commands import run_sweep
    from scheduler.jobs import _job

    loop = asyncio.get_running_loop()
    if args.loop_debug:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.05
    settings = Settings(
        _env_file=None,
        database_url=args.url,
        data_dir=Path(args.data_dir),
        secret_key=SECRET_KEY,
        http_host="127.0.0.1",
        http_port=args.port,
        public_url=f"http://127.0.0.1:{args.port}",
        telegram_token=args.token,
        telegram_api_url=args.api_url,
        telegram_webhook_secret=WEBHOOK_SECRET,
        scheduler_enabled=False,  # the sweep below runs at the data set's moment instead
        simulator_enabled=False,
    )
    ctx = AppContext.build(settings)
    runtime = build_runtime(ctx)
    app = build_app(runtime)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    tasks = await start_runtime(runtime)
    busy_at = datetime.fromisoformat(args.busy_at)
    lags: list[tuple[float, float]] = []

    async def watch_loop() -> None:
        while True:  # until cancelled at the end
            planned = time.monotonic() + 0.01
            await asyncio.sleep(0.01)
            lags.append((planned, time.monotonic() - planned))

    watcher = asyncio.create_task(watch_loop())

    def say(**fields: Any) -> None:
        print(json.dumps(fields), flush=True)

    say(ready=True, claim_size=runtime.sender.claim_size)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "sweep":
            # The scheduler's own job (its logging, the sender woken after), at the busy moment.
            report: list[str] = []

            async def at_busy_moment(
                ctx: AppContext, _now: datetime, report: list[str] = report
            ) -> object:
                result = await run_sweep(ctx, busy_at)
                report.append(str(result))
                return result

            started = time.monotonic()
            await _job(ctx, runtime.sender.wake, "sweep", at_busy_moment)()
            say(sweep_started=started, sweep_ended=time.monotonic(), report=report)
        elif line.startswith("lags "):
            # How late the 10 ms timer fired between two moments (monotonic: the same clock in
            # every process of the machine).
            start, end = (float(part) for part in line.split()[1:3])
            late = [lag for at, lag in lags if start <= at < end]
            say(
                p99_ms=None if not late else round(1000 * percentile(late, 0.99), 1),
                max_ms=None if not late else round(1000 * max(late), 1),
                over_50ms=sum(1 for lag in late if lag > 0.05),
                samples=len(late),
            )
        elif line == "stop":
            break
    watcher.cancel()
    await stop_runtime(runtime, tasks)
    await runner.cleanup()
    await ctx.db.dispose()


# --- the driver ---------------------------------------------------------------------------


async def village_heads(url: str, count: int) -> tuple[list[int], list[tuple[int, list[int]]]]:
    """Every Telegram chat of the data set, and (chat, open occurrence ids) of up to `count`
    village heads who have something open now."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            chats = [
                int(row[0])
                for row in await connection.execute(
                    text("SELECT external_id FROM channel_identities WHERE channel = 'telegram'")
                )
            ]
            rows = await connection.execute(
                text(
                    "SELECT i.external_id, o.id FROM channel_identities i"
                    " JOIN users u ON u.id = i.user_id JOIN units n ON n.id = u.unit_id"
                    " JOIN occurrences o ON o.unit_id = n.id"
                    " WHERE i.channel = 'telegram' AND n.level = 'village'"
                    " AND o.status IN ('open', 'overdue', 'escalated')"
                    " ORDER BY n.code, o.id"
                )
            )
            open_by_chat: dict[int, list[int]] = {}
            for chat, occurrence in rows:
                found = open_by_chat.setdefault(int(chat), [])
                if len(found) < 5:
                    found.append(int(occurrence))
    finally:
        await engine.dispose()
    return chats, list(open_by_chat.items())[:count]


async def due_rows(engine) -> int:  # noqa: ANN001
    """Outbox rows the sender could claim now (by the models' own column types)."""
    from sqlmodel import col, func, select

    from bot.core.models import Outbox, OutboxStatus

    async with engine.connect() as connection:
        found = await connection.execute(
            select(func.count())
            .select_from(Outbox)
            .where(
                Outbox.status == OutboxStatus.pending,
                col(Outbox.next_attempt_at) <= datetime.now(UTC),
            )
        )
        return int(found.scalar_one())


async def outcome(url: str, first_row: int) -> dict[str, Any]:
    """The run's outbox rows (id > first_row): by status, sent per chat, reply latencies."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    def moment(value: Any) -> float:  # noqa: ANN401
        value = datetime.fromisoformat(value) if isinstance(value, str) else value
        return value.replace(tzinfo=value.tzinfo or UTC).timestamp()

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT idempotency_key, external_id, status, created_at, sent_at"
                        " FROM outbox WHERE id > :first AND channel = 'telegram'"
                    ),
                    {"first": first_row},
                )
            ).all()
            received = {
                str(update_id): moment(at)
                for update_id, at in await connection.execute(
                    text("SELECT update_id, received_at FROM inbound_updates")
                )
            }
    finally:
        await engine.dispose()
    states = Counter(row[2] for row in rows)
    sent_per_chat = Counter(int(row[1]) for row in rows if row[2] in ACCEPTED)
    end_to_end, in_outbox = [], []
    for key, _chat, status, created, sent in rows:
        if status not in ACCEPTED or not key.startswith("reply:telegram:"):
            continue
        update_id = key.split(":")[2]
        if update_id in received:
            end_to_end.append(moment(sent) - received[update_id])
        in_outbox.append(moment(sent) - moment(created))
    return {
        "states": dict(states),
        "sent_per_chat": sent_per_chat,
        "reply_end_to_end": end_to_end,
        "reply_in_outbox": in_outbox,
        "reminders": sum(1 for row in rows if row[0].startswith("remind:")),
        "replies": sum(1 for row in rows if row[0].startswith("reply:")),
    }


async def copy_postgres_database(source_url: str, url: str) -> None:
    """A copy of the data set (`CREATE DATABASE … TEMPLATE`), so the run changes nothing."""
    import asyncpg

    base, source = source_url.replace("postgresql+asyncpg://", "postgresql://", 1).rsplit("/", 1)
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    finally:
        await connection.close()


def copy_sqlite(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


async def bench_busysend(
    out: Any,  # noqa: ANN401  (bench.run.Out)
    database: str,
    source_url: str,
    meta: dict,
    rate: float = 50.0,
    seconds: float = 15.0,
    sweep_after: float = 3.0,
    drain_limit: float = 240.0,
    users: int = 417,
    loop_debug: bool = False,
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from bench.generate import drop_postgres_database
    from bench.load_client import LoadClient, Person, Updates
    from bench.run import free_port
    from tests.helpers.fake_telegram import FakeTelegram

    with tempfile.TemporaryDirectory(prefix="papibot-busysend-") as tmp_name:
        tmp = Path(tmp_name)
        if database == "sqlite":
            source = Path(source_url.split("///", 1)[1])
            copy = tmp / "busysend.sqlite"
            copy_sqlite(source, copy)
            url = f"sqlite+aiosqlite:///{copy}"
        else:
            url = source_url + "_busysend"
            await copy_postgres_database(source_url, url)
        fake = FakeTelegram(limit_per_second=LIMIT)
        await fake.start()
        process = None
        engine = create_async_engine(url)
        try:
            chats, heads = await village_heads(url, users)
            for chat in chats:
                fake.user(chat)
            if not heads:
                raise RuntimeError("no village head has an open occurrence: nothing to tap")
            first_row = await max_outbox_id(engine)
            port = free_port()
            log_path = tmp / "server.log"
            command = [
                sys.executable,
                "-m",
                "bench.busysend",
                "serve",
                "--url",
                url,
                "--data-dir",
                str(tmp / "data"),
                "--port",
                str(port),
                "--token",
                fake.token,
                "--api-url",
                fake.api_url,
                "--busy-at",
                meta["busy_at"],
            ] + (["--loop-debug"] if loop_debug else [])
            with log_path.open("wb") as server_log:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    cwd=ROOT,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=server_log,
                    limit=2**20,
                )
            hello = await asyncio.wait_for(_said(process), timeout=120)
            claim_size = int(hello["claim_size"])
            for _ in range(200):  # bounded: 20 s for the webhook to be set
                if fake.webhook_url:
                    break
                await asyncio.sleep(0.1)
            log(f"server pid {process.pid} ready; {len(heads)} village heads; claim {claim_size}")

            samples: list[tuple[float, int]] = []

            async def sample() -> None:
                while True:  # until cancelled
                    samples.append((time.monotonic(), await due_rows(engine)))
                    await asyncio.sleep(SAMPLE_EVERY)

            sampler = asyncio.create_task(sample())
            people = [Person(chat, occurrences) for chat, occurrences in heads]
            updates = Updates(fake, people, first_update_id=500_000_000)
            fake.calls.clear()
            load_avg = os.getloadavg()[0]
            async with LoadClient(
                f"http://127.0.0.1:{port}/webhook/telegram", WEBHOOK_SECRET, updates
            ) as client:
                inbound = asyncio.create_task(client.run(rate, seconds))
                traffic_began = time.monotonic()
                await asyncio.sleep(sweep_after)
                process.stdin.write(b"sweep\n")
                await process.stdin.drain()
                swept = await asyncio.wait_for(_said(process), timeout=seconds + 120)
                accepted = await inbound
                traffic_ended = time.monotonic()
            deadline = time.monotonic() + drain_limit
            while time.monotonic() < deadline:  # bounded: the drain limit
                await asyncio.sleep(1.0)
                if not await due_rows(engine) and not await sending_rows(engine):
                    break
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            await asyncio.sleep(1.0)  # the last marks
            start, end = busy_stretch(samples, claim_size, traffic_began, traffic_ended)
            process.stdin.write(f"lags {start} {end}\n".encode())
            await process.stdin.drain()
            lags = await asyncio.wait_for(_said(process), timeout=60)
            process.stdin.write(b"stop\n")
            await process.stdin.drain()
            await asyncio.wait_for(process.wait(), timeout=60)
            load_after = os.getloadavg()[0]
            done = await outcome(url, first_row)
        finally:
            await engine.dispose()
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), timeout=30)
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            await fake.close()
            if database == "postgres":
                await drop_postgres_database(url)
            kept = ROOT / "bench" / "results" / f"busysend-server-{database}.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            if log_path.exists():
                kept.write_bytes(log_path.read_bytes())

    delivered = [c for c in fake.calls if c.method.lower() in OUTBOX_METHODS and c.ok]
    refused = sum(1 for c in fake.calls if c.method.lower() in OUTBOX_METHODS and c.status == 429)
    moments = [c.at for c in delivered]
    window = end - start
    over = rate_over(moments, start, end)
    sweep_start = max(start, swept["sweep_started"])
    sweep_end = min(end, swept["sweep_ended"])
    during_sweep = rate_over(moments, sweep_start, sweep_end)
    accepted_per_chat = Counter(int(c.params.get("chat_id", 0)) for c in delivered)
    lost, duplicated = delivery_balance(done["sent_per_chat"], accepted_per_chat)
    unsent = sum(n for state, n in done["states"].items() if state not in ACCEPTED)
    context = {
        "limit_per_second": LIMIT,
        "offered_inbound_per_second": rate,
        "inbound_seconds": seconds,
        "load_average_1m": [round(load_avg, 2), round(load_after, 2)],
    }
    out.emit(
        "busysend",
        database,
        "rate_over_limit",
        None if over is None else round(over / LIMIT, 3),
        "ratio",
        achieved_per_second=None if over is None else round(over, 2),
        stretch_seconds=round(window, 2),
        claim_size=claim_size,
        edits=sum(1 for c in delivered if c.method.lower().startswith("edit")),
        **context,
    )
    out.emit(
        "busysend",
        database,
        "rate_over_limit_during_sweep",
        None if during_sweep is None else round(during_sweep / LIMIT, 3),
        "ratio",
        sweep_seconds_in_stretch=round(max(0.0, sweep_end - sweep_start), 2),
        sweep_seconds=round(swept["sweep_ended"] - swept["sweep_started"], 2),
        sweep=swept["report"],
        **context,
    )
    work = len(delivered)
    out.emit(
        "busysend",
        database,
        "lost",
        None if not work else lost + unsent,
        "messages",
        outbox=done["states"],
        reminders=done["reminders"],
        replies=done["replies"],
        **context,
    )
    out.emit("busysend", database, "duplicated", None if not work else duplicated, "messages")
    out.emit("busysend", database, "refused_429", None if not work else refused, "sends")
    ends, waits = done["reply_end_to_end"], done["reply_in_outbox"]
    out.emit(
        "busysend",
        database,
        "reply_p99_seconds",
        None if not ends else round(percentile(ends, 0.99), 3),
        "s",
        p50=None if not ends else round(statistics.median(ends), 3),
        max=None if not ends else round(max(ends), 3),
        in_outbox_p50=None if not waits else round(statistics.median(waits), 3),
        in_outbox_p99=None if not waits else round(percentile(waits, 0.99), 3),
        replies_sent=len(ends),
        inbound=accepted.summary(),
    )
    out.emit(
        "busysend",
        database,
        "loop_lag_p99_ms",
        lags["p99_ms"],
        "ms",
        max_ms=lags["max_ms"],
        over_50ms=lags["over_50ms"],
        samples=lags["samples"],
    )


async def max_outbox_id(engine) -> int:  # noqa: ANN001
    from sqlalchemy import text

    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT max(id) FROM outbox"))).scalar() or 0)


async def sending_rows(engine) -> int:  # noqa: ANN001
    from sqlalchemy import text

    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT count(*) FROM outbox WHERE status = 'sending'")
        )
        return int(found.scalar_one())


async def _said(process: asyncio.subprocess.Process) -> dict[str, Any]:
    """The server's next JSON line on stdout."""
    while True:  # bounded by the caller's timeout
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError("the busysend server exited; see bench/results/busysend-server-*")
        with contextlib.suppress(ValueError):
            return json.loads(line)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.busysend", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command")
    server = sub.add_parser("serve", help="the server side (started by the benchmark)")
    for name in ("--url", "--data-dir", "--token", "--api-url", "--busy-at"):
        server.add_argument(name, required=True)
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--loop-debug", action="store_true")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rate", type=float, default=50.0, help="webhook updates offered per s")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long they are offered")
    parser.add_argument("--loop-debug", action="store_true", help="log what holds the loop")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    from bench.run import Out, dataset_url, ensure_datasets

    out = Out("province")
    metas = await ensure_datasets(out, args.database, "province", [1], False)
    await bench_busysend(
        out,
        args.database,
        dataset_url(args.database, "province", 1),
        metas[1],
        rate=args.rate,
        seconds=args.seconds,
        loop_debug=args.loop_debug,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "serve":
        asyncio.run(serve(args))
    else:
        asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
