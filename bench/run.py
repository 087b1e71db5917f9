"""Run the benchmarks; print one JSON line per figure (and append it to bench/results/).

    python -m bench.run --scale province
    python -m bench.run --scale national --database postgres --only plan,sweep

plan    planning the next 62 days from scratch (occurrences per second), then the same plan
        again, which inserts nothing (its time as a share of the first)
sweep   one reminder-and-escalation sweep with 1 and with 24 months of history at the same live
        size: when nothing is due (at the data's as-of moment, 07:30) and at 08:05, when the
        morning's reminders and escalations are due (undone after each run, so it repeats)
send    the outbox sender and the Telegram channel against the fake Bot API enforcing 30
        messages/s: achieved rate / limit, messages lost, messages duplicated
lanes   reply latency (p99) while 20,000 queued reminders go out at Telegram's 30 messages/s
        (bench/lanes.py)
busysend  the sender's rate / limit in one `papibot run`-composed server while the morning sweep
        runs and webhooks arrive at a steady rate; lost, duplicated, 429s, reply latency
        (bench/busysend.py; the 1-month data set)
handling  statements, commits and CPU per handled inbound update, and per message sent, counted
        inside one process (bench/handling.py; the province sample on SQLite)
dashboard  server time of each dashboard page (bench/dashboard.py), 24 months of history
memory  peak RSS (VmHWM) of a real `papibot run` with the scheduler, until it has planned and
        swept (the not-yet-open occurrences are deleted first, so the plan really inserts)

Datasets are generated on first use (bench/generate.py) and kept: SQLite files in
bench/results/, PostgreSQL databases <prefix>_<scale>_m<months> (`--postgres-url`,
`--database-prefix`, default papibot_bench, or their PAPIBOT_BENCH_* variables); `--cleanup`
removes them. A figure whose run did no work (0 rows) says "status": "not measured".
No figure is asserted: each line says the target and whether it was met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.generate import drop_postgres_database, read_meta, remove_sqlite, schema_fingerprint

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# The PostgreSQL server and the prefix of the benchmark's database names: `--postgres-url` and
# `--database-prefix`, or PAPIBOT_BENCH_POSTGRES_URL and PAPIBOT_BENCH_DATABASE_PREFIX.
PG = {
    "base": os.environ.get(
        "PAPIBOT_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432"
    ).rstrip("/"),
    "prefix": os.environ.get("PAPIBOT_BENCH_DATABASE_PREFIX", "papibot_bench"),
}
ALL = (
    "plan",
    "sweep",
    "send",
    "lanes",
    "busysend",
    "memory",
    "inbound",
    "handling",
    "dashboard",
)
HISTORIES = (1, 24)
GENERATE_TIMEOUT = {"province": 900, "national": 5400}
BENCH_TIMEOUT = {"province": 900, "national": 3600}
ACTIVE = ("open", "overdue", "escalated")

TARGETS = {
    ("plan", "occurrences_per_second"): (">=", 50_000),
    ("plan", "second_run_share"): ("<=", 0.05),
    ("sweep", "idle_history_ratio"): ("<=", 1.5),
    ("sweep", "busy_history_ratio"): ("<=", 1.5),
    ("sweep", "idle_seconds_24_months"): ("<=", 2.0),
    ("send", "rate_over_limit"): (">=", 0.95),
    ("send", "lost"): ("<=", 0),
    ("send", "duplicated"): ("<=", 0),
    ("memory", "peak_rss_mb"): ("<=", 300),
    ("lanes", "reply_p99_seconds_during_fan_out"): ("<=", 2.0),
    ("busysend", "rate_over_limit"): (">=", 0.97),
    ("busysend", "lost"): ("<=", 0),
    ("busysend", "duplicated"): ("<=", 0),
}


class Out:
    """Where the figures go: stdout, one JSON object a line, and results.jsonl."""

    def __init__(self, scale: str) -> None:
        self.scale = scale
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.file = (RESULTS / "results.jsonl").open("a", encoding="utf-8")
        self.stamp = datetime.now().astimezone().isoformat(timespec="seconds")

    def emit(
        self, bench: str, database: str, figure: str, value: Any, unit: str = "", **context
    ) -> None:
        line: dict[str, Any] = {
            "bench": bench,
            "scale": self.scale,
            "database": database,
            "figure": figure,
            "value": value,
            "unit": unit,
        }
        target = TARGETS.get((bench, figure))
        if value is None:
            # No work was done (0 rows): the figure says nothing, whatever its target.
            line["status"] = "not measured"
            target = None
        if (bench, figure) == ("sweep", "idle_seconds_24_months") and (
            self.scale != "national" or database != "postgres"
        ):
            target = None  # the 2-second target is for national scale on PostgreSQL
        if target is not None:
            op, limit = target
            line["target"] = f"{op} {limit}"
            line["met"] = bool(value >= limit if op == ">=" else value <= limit)
        line.update(context)
        line["at"] = self.stamp
        text_line = json.dumps(line, ensure_ascii=False)
        print(text_line, flush=True)
        self.file.write(text_line + "\n")
        self.file.flush()


# --- datasets --------------------------------------------------------------------------------


def dataset_url(database: str, scale: str, months: int) -> str:
    if database == "sqlite":
        return f"sqlite+aiosqlite:///{RESULTS / f'{scale}-m{months}.sqlite'}"
    return pg_url(f"{scale}_m{months}")


def pg_url(suffix: str) -> str:
    return f"{PG['base']}/{PG['prefix']}_{suffix}"


async def ensure_datasets(
    out: Out, database: str, scale: str, months_needed: list[int], regenerate: bool
) -> dict[int, dict]:
    """The datasets of these history lengths, generated when missing, all with the same as-of
    moment (so that their live parts are the same rows)."""
    metas: dict[int, dict | None] = {}
    for months in HISTORIES:
        meta = None if regenerate else await read_meta(dataset_url(database, scale, months))
        ok = (
            meta
            and meta.get("scale") == scale
            and meta.get("history_months") == months
            and meta.get("busy_at")  # older data sets have no busy moment of their own
            and meta.get("schema") == schema_fingerprint()  # nor the columns of today's models
        )
        metas[months] = meta if ok else None
    anchor = next((m["as_of"] for m in (metas[24], metas[1]) if m), None)
    for months in months_needed:
        meta = metas[months]
        if meta is None or meta["as_of"] != (anchor or meta["as_of"]):
            meta = await generate_dataset(out, database, scale, months, anchor)
            anchor = anchor or meta["as_of"]
            metas[months] = meta
    return {months: metas[months] for months in months_needed}


async def generate_dataset(
    out: Out, database: str, scale: str, months: int, as_of: str | None
) -> dict:
    url = dataset_url(database, scale, months)
    command = [
        sys.executable,
        "-m",
        "bench.generate",
        "--scale",
        scale,
        "--history-months",
        str(months),
        "--url",
        url,
    ]
    if as_of:
        command += ["--as-of", as_of]
    print(f"# generating {url} …", file=sys.stderr, flush=True)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=sys.stderr)
    try:
        code = await asyncio.wait_for(process.wait(), timeout=GENERATE_TIMEOUT[scale])
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"generating {url} took over {GENERATE_TIMEOUT[scale]} s") from None
    if code != 0:
        raise RuntimeError(f"generating {url} failed ({code})")
    meta = await read_meta(url)
    if meta is None:
        raise RuntimeError(f"generation of {url} did not finish")
    counts = meta["counts"]
    out.emit(
        "generate",
        database,
        "seconds",
        round(time.monotonic() - started, 1),
        "s",
        history_months=months,
        occurrences=counts["occurrences"],
        reminders=counts["reminders"],
        escalations=counts["escalations"],
        outbox=counts["outbox"],
        phases=meta.get("phases"),
    )
    return meta


def context_for(url: str, data_dir: Path, **settings: Any):  # noqa: ANN201
    """The app's context on `url`."""
    from bot.core.config import Settings
    from bot.core.context import AppContext

    config = Settings(
        _env_file=None, database_url=url, data_dir=data_dir, secret_key="bench", **settings
    )
    return AppContext.build(config)


def as_of_of(meta: dict, tz) -> datetime:  # noqa: ANN001
    return datetime.fromisoformat(meta["as_of"]).astimezone(tz)


def busy_of(meta: dict, tz) -> datetime:  # noqa: ANN001
    """The data set's own busy moment: just after its busiest reminder moment."""
    return datetime.fromisoformat(meta["busy_at"]).astimezone(tz)


def measured(value: float, work: int) -> float | None:
    """A figure of a run that did no work (0 rows) is not measured."""
    return value if work else None


def profile_to(path: Path, profiler: cProfile.Profile) -> None:
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats("cumulative")
    stats.print_stats(45)
    buffer.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(30)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    print(f"# profile written to {path}", file=sys.stderr, flush=True)


async def timed(
    action: Callable[[], Awaitable[Any]], profile: Path | None = None
) -> tuple[float, Any]:
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    result = await action()
    elapsed = time.perf_counter() - started
    if profiler:
        profiler.disable()
        profile_to(profile, profiler)
    return elapsed, result


# --- plan ------------------------------------------------------------------------------------


def next_year(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


async def bench_plan(
    out: Out, database: str, scale: str, meta: dict, url: str, profile: bool
) -> None:
    """Plan a 62-day window one year after the data's as-of day: nothing of it exists yet, and
    24 months of history are in the table (its indexes as large as in production)."""
    from scheduler.planner import plan

    with tempfile.TemporaryDirectory() as tmp:
        ctx = context_for(url, Path(tmp))
        settings = ctx.settings
        today = next_year(as_of_of(meta, settings.tz).date())
        try:
            await _delete_window(ctx, today)  # a previous run that stopped half-way

            async def once() -> Any:
                async with ctx.db.session() as session:
                    report = await plan(  # as `papibot plan` and the daily plan do
                        session,
                        ctx.framework,
                        settings,
                        today,
                        connections=settings.plan_connections,
                    )
                    await session.commit()
                return report

            tag = f"{scale}-{database}"
            first, report = await timed(
                once, RESULTS / f"profile-plan-{tag}.txt" if profile else None
            )
            second, again = await timed(
                once, RESULTS / f"profile-plan-again-{tag}.txt" if profile else None
            )
            rate = report.inserted / first if first else 0.0
            out.emit(
                "plan",
                database,
                "occurrences_per_second",
                round(rate),
                "occ/s",
                inserted=report.inserted,
                seconds=round(first, 2),
                today=today.isoformat(),
                horizon_days=settings.plan_horizon_days,
            )
            out.emit(
                "plan",
                database,
                "second_run_share",
                round(second / first, 4),
                "ratio",
                seconds=round(second, 3),
                inserted=again.inserted,
            )
            await _delete_window(ctx, today)
        finally:
            await ctx.db.dispose()


async def _delete_window(ctx, today: date) -> None:  # noqa: ANN001
    """Remove what planning `today` creates, so the benchmark can repeat: every occurrence due
    from `today` on. The data set's own rows are all due within its live window, a year before
    `today`. (Selecting by the periods of each task's schedule missed the periods of rules set
    per level, and a repeated run then planned 21 % fewer rows.)"""
    from bot.core.timeutil import local_moment, to_db

    start = to_db(local_moment(today, datetime.min.time(), ctx.settings.tz))
    async with ctx.db.session() as session:
        await session.exec(
            text("DELETE FROM occurrences WHERE due_at >= :start"), params={"start": start}
        )
        await session.commit()


# --- sweep -----------------------------------------------------------------------------------


class Checkpoint:
    """What a sweep (or a running papibot) may change, so it can be put back as it was:
    rows added to the append-only tables, and the statuses of the live occurrences."""

    TABLES = ("reminders", "escalations", "outbox", "audit_log", "dialog_states", "inbound_updates")

    def __init__(self, ctx) -> None:  # noqa: ANN001
        self.ctx = ctx
        self.max_ids: dict[str, int] = {}
        self.statuses: dict[int, tuple[str, Any]] = {}
        self.max_occurrence = 0

    async def take(self, since: datetime, until: datetime) -> None:
        from bot.core.timeutil import to_db

        async with self.ctx.db.session() as session:
            for table in self.TABLES:
                found = (await session.exec(text(f"SELECT max(id) FROM {table}"))).scalar()
                self.max_ids[table] = found or 0
            self.max_occurrence = (
                await session.exec(text("SELECT max(id) FROM occurrences"))
            ).scalar() or 0
            from sqlmodel import col, select

            from bot.core.models import Occurrence

            rows = await session.exec(
                select(Occurrence.id, Occurrence.status, Occurrence.updated_at).where(
                    col(Occurrence.status).in_(ACTIVE),
                    col(Occurrence.due_at) >= to_db(since),
                    col(Occurrence.due_at) < to_db(until),
                )
            )
            self.statuses = {row[0]: (row[1], row[2]) for row in rows.all()}

    async def restore(self) -> int:
        """Put the rows back; returns how many occurrences changed status."""
        from sqlmodel import col, select, update

        from bot.core.models import Occurrence

        async with self.ctx.db.session() as session:
            for table in self.TABLES:
                await session.exec(
                    text(f"DELETE FROM {table} WHERE id > :m"), params={"m": self.max_ids[table]}
                )
            changed = 0
            ids = list(self.statuses)
            for start in range(0, len(ids), 5000):
                chunk = ids[start : start + 5000]
                rows = await session.exec(
                    select(Occurrence.id, Occurrence.status, Occurrence.updated_at).where(
                        col(Occurrence.id).in_(chunk)
                    )
                )
                for occurrence_id, status, updated in rows.all():
                    before = self.statuses[occurrence_id]
                    if (status, updated) != before:
                        changed += 1
                        await session.exec(
                            update(Occurrence)
                            .where(col(Occurrence.id) == occurrence_id)
                            .values(status=before[0], updated_at=before[1])
                        )
            await session.commit()
        return changed


async def bench_sweep(
    out: Out,
    database: str,
    scale: str,
    metas: dict[int, dict],
    profile: bool,
    repeats: int,
) -> None:
    from scheduler.commands import run_sweep
    from scheduler.reminders import SWEEP_BUDGET_SECONDS, sweep

    figures: dict[int, dict[str, Any]] = {}
    for months in HISTORIES:
        url = dataset_url(database, scale, months)
        with tempfile.TemporaryDirectory() as tmp:
            ctx = context_for(url, Path(tmp))
            try:
                tz = ctx.settings.tz
                idle_at = as_of_of(metas[months], tz)
                busy_at = busy_of(metas[months], tz)
                tag = f"{scale}-{database}-m{months}"
                idle_times, idle_report = [], None
                for attempt in range(repeats):
                    path = (
                        RESULTS / f"profile-sweep-idle-{tag}.txt"
                        if profile and attempt == 0
                        else None
                    )
                    seconds, idle_report = await timed(
                        lambda ctx=ctx, at=idle_at: run_sweep(ctx, at), path
                    )
                    idle_times.append(seconds)
                busy_times, busy_report = [], None
                for attempt in range(max(1, repeats // 2 + 1)):
                    checkpoint = Checkpoint(ctx)
                    await checkpoint.take(busy_at - timedelta(days=40), busy_at + timedelta(days=8))
                    path = (
                        RESULTS / f"profile-sweep-busy-{tag}.txt"
                        if profile and attempt == 0
                        else None
                    )
                    # One claim (budget 0): the same work on both histories, so comparable.
                    seconds, busy_report = await timed(
                        lambda ctx=ctx, at=busy_at: sweep(ctx.db, ctx, at, budget_seconds=0), path
                    )
                    busy_times.append(seconds)
                    await checkpoint.restore()
                # A whole sweep, claiming batch after batch within its budget: the rate at
                # which a morning's reminders go out.
                checkpoint = Checkpoint(ctx)
                await checkpoint.take(busy_at - timedelta(days=40), busy_at + timedelta(days=8))
                morning_seconds, morning = await timed(
                    lambda ctx=ctx, at=busy_at: sweep(ctx.db, ctx, at), None
                )
                await checkpoint.restore()
                out.emit(
                    "sweep",
                    database,
                    f"morning_occurrences_per_second_{months}_months",
                    measured(
                        round(morning.claimed / max(morning_seconds, 1e-9), 1), morning.claimed
                    ),
                    "occ/s",
                    now=busy_at.isoformat(),
                    seconds=round(morning_seconds, 2),
                    budget_seconds=SWEEP_BUDGET_SECONDS,
                    claimed=morning.claimed,
                    sent=morning.sent,
                    escalations=morning.escalations,
                    messages=morning.messages,
                )
                figures[months] = {
                    "idle": statistics.median(idle_times),
                    "busy": measured(statistics.median(busy_times), busy_report.claimed),
                }
                out.emit(
                    "sweep",
                    database,
                    f"idle_seconds_{months}_months",
                    round(figures[months]["idle"], 4),
                    "s",
                    now=idle_at.isoformat(),
                    claimed=idle_report.claimed,
                    overdue_marked=idle_report.overdue_marked,
                    runs=[round(t, 4) for t in idle_times],
                    occurrences=metas[months]["counts"]["occurrences"],
                )
                out.emit(
                    "sweep",
                    database,
                    f"busy_seconds_{months}_months",
                    measured(round(statistics.median(busy_times), 3), busy_report.claimed),
                    "s",
                    now=busy_at.isoformat(),
                    claimed=busy_report.claimed,
                    sent=busy_report.sent,
                    escalations=busy_report.escalations,
                    messages=busy_report.messages,
                    runs=[round(t, 3) for t in busy_times],
                )
            finally:
                await ctx.db.dispose()
    for kind in ("idle", "busy"):
        short, long = figures[1][kind], figures[24][kind]
        ratio = round(long / short, 3) if short and long is not None else None
        out.emit(
            "sweep",
            database,
            f"{kind}_history_ratio",
            ratio,
            "ratio",
            seconds_1_month=None if short is None else round(short, 4),
            seconds_24_months=None if long is None else round(long, 4),
        )


# --- send ------------------------------------------------------------------------------------


async def bench_send(out: Out, database: str, messages: int, chats: int) -> None:
    """The real Sender and TelegramChannel against the fake Bot API limited to 30 sends/s."""
    from bench.generate import create_postgres_database
    from bot.app.runtime import rate_limits
    from bot.channels.sender import Sender
    from bot.channels.telegram import TelegramChannel
    from bot.core.messages import Button, Outgoing
    from bot.core.models import Outbox
    from handlers.router import Dispatcher
    from tests.helpers.fake_telegram import FakeTelegram

    limit = 30
    fake = FakeTelegram(limit_per_second=limit)
    await fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        if database == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp}/send.sqlite"
        else:
            url = pg_url("send")
            await create_postgres_database(url)
        ctx = context_for(url, Path(tmp), telegram_token=fake.token, telegram_api_url=fake.api_url)
        sender_task = None
        try:
            await ctx.db.upgrade()
            chat_ids = [8_000_000_000 + i for i in range(chats)]
            for chat in chat_ids:
                fake.user(chat)
            async with ctx.db.session() as session:
                for number in range(messages):
                    chat = chat_ids[number % chats]
                    message = Outgoing(
                        text=f"🔔 Nhắc việc #{number}: Niêm yết công khai ngân sách xã\n"
                        "   Hạn: 25/11/2026 (còn 1 ngày)",
                        buttons=[
                            [
                                Button("✅ Xong", f"done:{number}"),
                                Button("📷 Gửi ảnh", f"photo:{number}"),
                            ]
                        ],
                    )
                    session.add(
                        Outbox(
                            idempotency_key=f"bench:{number}",
                            channel="telegram",
                            external_id=str(chat),
                            payload=message.to_payload(),
                        )
                    )
                await session.commit()
            dispatcher = Dispatcher(ctx)
            channel = TelegramChannel(ctx, dispatcher)  # sends only
            await channel._ensure_ready()  # getMe, as at start-up
            limiter = rate_limits(ctx)["telegram"]  # as `papibot run` configures it
            sender = Sender(ctx.db, {"telegram": channel}, limits={"telegram": limiter})
            fake.calls.clear()
            started = time.monotonic()
            sender_task = asyncio.create_task(sender.run(idle_poll=0.2))
            deadline = started + messages / limit * 3 + 30
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                async with ctx.db.session() as session:
                    left = (
                        await session.exec(
                            text(
                                "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
                            )
                        )
                    ).scalar()
                if not left:
                    break
            sender.stop()
            await asyncio.wait_for(sender_task, timeout=15)
            accepted = [c for c in fake.calls if c.method.lower() == "sendmessage" and c.ok]
            refused = [
                c for c in fake.calls if c.method.lower() == "sendmessage" and c.status == 429
            ]
            elapsed = (accepted[-1].at - started) if accepted else float("inf")
            seen: dict[str, int] = {}
            for message in fake.messages:
                token = (
                    message.text.split("#", 1)[1].split(":", 1)[0] if "#" in message.text else ""
                )
                seen[token] = seen.get(token, 0) + 1
            lost = sum(1 for number in range(messages) if str(number) not in seen)
            duplicated = sum(count - 1 for count in seen.values() if count > 1)
            async with ctx.db.session() as session:
                states = dict(
                    (
                        await session.exec(
                            text("SELECT status, count(*) FROM outbox GROUP BY status")
                        )
                    ).all()
                )
            rate = len(accepted) / elapsed if accepted else 0.0
            context = {"messages": messages, "chats": chats, "limit_per_second": limit}
            out.emit(
                "send",
                database,
                "rate_over_limit",
                round(rate / limit, 3),
                "ratio",
                achieved_per_second=round(rate, 2),
                seconds=round(elapsed, 2),
                refused_429=len(refused),
                outbox=states,
                **context,
            )
            out.emit("send", database, "lost", lost, "messages", **context)
            out.emit("send", database, "duplicated", duplicated, "messages", **context)
            await channel.stop()
            await dispatcher.inbox.stop()  # the channel's stop waits on it, which wakes it
        finally:
            if sender_task is not None and not sender_task.done():
                sender_task.cancel()
            await ctx.db.dispose()
            await fake.close()
            if database == "postgres":
                await drop_postgres_database(url)


# --- memory ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def vm_kb(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


async def bench_memory(out: Out, database: str, scale: str, months: int, within: float) -> None:
    """`papibot run` on the dataset, the fake Telegram API on loopback, the real clock.

    The occurrences whose window has not opened yet are deleted first (nothing refers to them
    yet), so the start-up plan really inserts them, as the daily plan does when a new month
    enters the horizon. Quiet hours are switched off (bench/overrides), so the sweep does its
    work whatever the hour. Everything the run changed is put back afterwards."""
    from tests.helpers.fake_telegram import FakeTelegram

    url = dataset_url(database, scale, months)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = context_for(url, Path(tmp))
        fake = FakeTelegram(limit_per_second=30)
        await fake.start()
        process = None
        checkpoint = Checkpoint(ctx)
        try:
            from bot.core.timeutil import to_db

            now = datetime.now(ctx.settings.tz)
            async with ctx.db.session() as session:
                external = (
                    (
                        await session.exec(
                            text(
                                "SELECT external_id FROM channel_identities WHERE channel = 'telegram'"
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
                for chat in external:
                    fake.user(int(chat))
            await checkpoint.take(now - timedelta(days=40), now + timedelta(days=8))
            async with ctx.db.session() as session:
                deleted = (
                    await session.exec(
                        text("DELETE FROM occurrences WHERE window_start > :now"),
                        params={"now": to_db(now)},
                    )
                ).rowcount
                await session.commit()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("PAPIBOT_")},
                "PAPIBOT_DATABASE_URL": url,
                "PAPIBOT_DATA_DIR": str(Path(tmp) / "data"),
                "PAPIBOT_HTTP_HOST": "127.0.0.1",
                "PAPIBOT_HTTP_PORT": str(free_port()),
                "PAPIBOT_SECRET_KEY": "bench",
                "PAPIBOT_TELEGRAM_TOKEN": fake.token,
                "PAPIBOT_TELEGRAM_API_URL": fake.api_url,
                "PAPIBOT_FRAMEWORK_OVERRIDES": str(ROOT / "bench" / "overrides"),
            }
            log_path = Path(tmp) / "papibot.log"
            log_file = log_path.open("wb")
            papibot = Path(sys.executable).parent / "papibot"
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                str(papibot), "run", cwd=tmp, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
            peak = rss = 0
            seen: dict[str, Any] = {}
            failures: dict[str, str] = {}
            while time.monotonic() - started < within and process.returncode is None:
                await asyncio.sleep(0.2)
                peak = max(peak, vm_kb(process.pid, "VmHWM"))
                rss = vm_kb(process.pid, "VmRSS") or rss
                lines = log_path.read_text(errors="replace").splitlines()
                for number, line in enumerate(lines):
                    for job in ("plan", "sweep", "digest"):
                        if f"scheduler.jobs {job}: " in line and job not in seen:
                            seen[job] = line.split(f"{job}: ", 1)[1][:300]
                            seen[job + "_at_s"] = round(time.monotonic() - started, 1)
                        if f"scheduler job {job} failed" in line and job not in failures:
                            # the exception's last line ends the traceback that follows
                            after = [x for x in lines[number + 1 : number + 80] if x.strip()]
                            cause = next(
                                (x for x in after if not x.startswith((" ", "Traceback"))), ""
                            )
                            failures[job] = f"{line[:19]} {cause[:300]}"
                # a plan and a sweep that worked (a failed sweep is retried a minute later)
                if "plan" in seen and "sweep" in seen:
                    for _ in range(50):  # 10 s more: what follows (sending) counts too
                        await asyncio.sleep(0.2)
                        peak = max(peak, vm_kb(process.pid, "VmHWM"))
                    break
            if failures:
                seen["failed"] = failures
            out.emit(
                "memory",
                database,
                "peak_rss_mb",
                round(peak / 1024, 1),
                "MB",
                rss_at_end_mb=round(rss / 1024, 1),
                seconds=round(time.monotonic() - started, 1),
                deleted_for_replan=deleted,
                jobs=seen,
                telegram_sent=len(fake.messages),
                completed="plan" in seen and "sweep" in seen,
                local_time=now.isoformat(timespec="minutes"),
            )
            kept = RESULTS / f"papibot-run-{scale}-{database}.log"
            kept.write_bytes(log_path.read_bytes())
            print(f"# the papibot log is in {kept}", file=sys.stderr)
        finally:
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout=30)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            await fake.close()
            try:
                changed = await checkpoint.restore()
                print(f"# memory: restored {changed} statuses", file=sys.stderr)
            finally:
                await ctx.db.dispose()


# --- the command ---------------------------------------------------------------------------


def machine() -> dict:
    memory = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {"cpus": os.cpu_count(), "memory": memory, "python": platform.python_version()}


async def main_async(args: argparse.Namespace) -> None:
    out = Out(args.scale)
    out.emit("machine", "-", "info", machine())
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    for name in only:
        if name not in ALL:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(ALL)}")
    limit = args.timeout or BENCH_TIMEOUT[args.scale]
    for database in databases:
        needs = {
            "sweep": HISTORIES,
            "plan": (24,),
            "memory": (24,),
            "dashboard": (24,),
            "busysend": (1,),
        }
        months_needed = sorted({m for name in only for m in needs.get(name, ())})
        metas = await ensure_datasets(out, database, args.scale, months_needed, args.regenerate)

        async def bounded(name: str, action: Awaitable[None], database: str = database) -> None:
            try:
                await asyncio.wait_for(action, timeout=limit)
            except TimeoutError:
                out.emit(
                    name,
                    database,
                    "timeout",
                    limit,
                    "s",
                    note="stopped: took longer than the bound",
                )

        if "sweep" in only:
            await bounded(
                "sweep", bench_sweep(out, database, args.scale, metas, args.profile, args.repeats)
            )
        if "plan" in only:
            url = dataset_url(database, args.scale, 24)
            await bounded(
                "plan", bench_plan(out, database, args.scale, metas[24], url, args.profile)
            )
        if "send" in only:
            await bounded("send", bench_send(out, database, args.messages, args.messages))
        if "lanes" in only:
            from bench.lanes import bench_reply_latency

            await bounded("lanes", bench_reply_latency(out, database, pg_url, args.fan_out))
        if "busysend" in only:
            from bench.busysend import bench_busysend

            await bounded(
                "busysend",
                bench_busysend(
                    out, database, dataset_url(database, args.scale, 1), metas[1], args.inbound_rate
                ),
            )
        if "dashboard" in only:
            from bench.dashboard import bench_dashboard

            url = dataset_url(database, args.scale, 24)
            await bounded("dashboard", bench_dashboard(out, database, url, args.repeats))
        if "memory" in only:
            await bounded("memory", bench_memory(out, database, args.scale, 24, min(limit, 900)))
    if "inbound" in only:
        # Its own server and data (the province sample, SQLite), whatever --scale/--database.
        from bench import inbound

        await inbound.main_async(["--results", str(RESULTS / "results.jsonl")])
    if "handling" in only:
        # Statements, commits and CPU per handled update, inside one process (bench/handling.py).
        from bench import handling

        await handling.bench_handling(handling.parse(["--results", str(RESULTS / "results.jsonl")]))


async def cleanup() -> None:
    for scale in ("province", "national"):
        for months in HISTORIES:
            await drop_postgres_database(dataset_url("postgres", scale, months))
            remove_sqlite(RESULTS / f"{scale}-m{months}.sqlite")
    await drop_postgres_database(pg_url("send"))
    await drop_postgres_database(pg_url("lanes"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=("province", "national"), default="province")
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated: " + ",".join(ALL))
    parser.add_argument("--regenerate", action="store_true", help="generate the datasets again")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile plan and sweep into bench/results/"
    )
    parser.add_argument("--repeats", type=int, default=5, help="sweeps per measurement (median)")
    parser.add_argument("--messages", type=int, default=600, help="outbox rows for `send`")
    parser.add_argument(
        "--inbound-rate", type=float, default=50.0, help="webhook updates/s for `busysend`"
    )
    parser.add_argument("--fan-out", type=int, default=20_000, help="reminders queued for `lanes`")
    parser.add_argument(
        "--timeout", type=float, default=0, help="seconds per benchmark (default by scale)"
    )
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="no longer does anything: the claim and mark_overdue queries it measured have "
        "shipped in scheduler/reminders.py, so a plain sweep run measures them",
    )
    parser.add_argument(
        "--cleanup", action="store_true", help="drop every benchmark database and file, then exit"
    )
    parser.add_argument(
        "--postgres-url",
        default=PG["base"],
        help="PostgreSQL server URL without a database (env PAPIBOT_BENCH_POSTGRES_URL)",
    )
    parser.add_argument(
        "--database-prefix",
        default=PG["prefix"],
        help="prefix of the benchmark's PostgreSQL database names "
        "(env PAPIBOT_BENCH_DATABASE_PREFIX)",
    )
    args = parser.parse_args(argv)
    PG["base"], PG["prefix"] = args.postgres_url.rstrip("/"), args.database_prefix
    if args.what_if:
        print(
            "# --what-if: the proposed queries have shipped; the sweep figures measure them",
            file=sys.stderr,
        )
    if args.cleanup:
        asyncio.run(cleanup())
        return 0
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
