"""Benchmark `inbound`: Telegram updates per second through `POST /webhook/telegram`, end to end.

    python -m bench.inbound                      # SQLite, province scale, ~3 minutes
    python -m bench.inbound --profile            # the same, papibot run under pyinstrument
    python -m bench.inbound --profile cprofile   # … under cProfile (bench/results/*.pstats)
    python -m bench.inbound --rate 200 --seconds 30 --ramp 200,300,400,500,600,800 --step-seconds 10

A real server (`papibot run` in a subprocess, SQLite in a temporary data directory, the
scheduler off, the webhook set because PAPIBOT_PUBLIC_URL is set) on the Khánh Hòa sample
(`papibot init --units framework_data/units/khanh-hoa-2022.csv`, `papibot plan`) with one
registered village head (Telegram identity) per village. This process is the load client
(bench/load_client.py: open loop at a fixed offered rate) and runs the fake Telegram Bot API that
papibot sends to, answers callback queries with, and downloads the photos from.

The webhook records an update and answers; the inbox's worker handles it afterwards
(bot/core/inbox.py). So every run has two sides, both measured: *accepted* (the webhook's answers,
timed by the client) and *handled* (from `inbound_updates.received_at` to `handled_at`, read
from the database once the server has worked off what it recorded).

Figures, one JSON line each on stdout (and appended to --results when given):

    latency_at_rate     p50 / p99 from each update's due moment at the fixed rate (target p99
                        <= 100 ms at 200/s), errors (non-200 answers, timeouts); and its
                        `handled` side: handled per second, recorded-to-handled p50 / p99
    ramp_step           one line per offered rate of the ramp, with the same two sides
    max_sustained       the highest ramp rate answered in full, at >= 97 % of the offered rate,
                        with p99 <= 1 s (no queue building up); target >= 500 updates/s
    max_sustained_handled  the same for handling: every update handled, recorded-to-handled
                        p99 <= 1 s (the rate papibot keeps up with)
    recorded            inbound_updates afterwards: every update answered 200 recorded exactly
                        once, a sample redelivered changes nothing; updates that failed inside
                        papibot (answered with the apology) counted

No figure is asserted; each line says its target and whether it was met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
UNITS_CSV = ROOT / "framework_data" / "units" / "khanh-hoa-2022.csv"
WEBHOOK_SECRET = "bench-inbound-secret"
LATENCY_TARGET_MS = 100.0
SUSTAINED_TARGET = 500.0
SUSTAINED_SHARE = 0.97
SUSTAINED_P99_MS = 1000.0
SETUP_TIMEOUT = 600.0  # init + plan
START_TIMEOUT = 60.0  # papibot run answering /healthz and having set its webhook
STOP_TIMEOUT = 60.0  # SIGTERM to exit (pyinstrument writes its report then)


class Out:
    def __init__(self, results: Path | None) -> None:
        self.file = results.open("a", encoding="utf-8") if results else None
        self.stamp = datetime.now().astimezone().isoformat(timespec="seconds")

    def emit(self, figure: str, **fields: Any) -> None:
        line = {"bench": "inbound", "database": "sqlite", "figure": figure, **fields}
        line["at"] = self.stamp
        text = json.dumps(line, ensure_ascii=False)
        print(text, flush=True)
        if self.file is not None:
            self.file.write(text + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def log(message: str) -> None:
    print(f"# inbound: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine() -> dict[str, Any]:
    memory = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "cpus": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def papibot_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPIBOT_")}
    env.update(
        {
            "PAPIBOT_DATA_DIR": str(data_dir),
            "PAPIBOT_SECRET_KEY": "bench-inbound-not-a-secret-0123456789abcdef",  # 32+ chars
            "PAPIBOT_SCHEDULER_ENABLED": "false",
            **(extra or {}),
        }
    )
    return env


def papibot_command() -> str:
    return str(Path(sys.executable).parent / "papibot")


async def run_cli(args: list[str], cwd: Path, env: dict[str, str], limit: float) -> float:
    """One `papibot …` command; its output goes to stderr; returns its seconds."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        papibot_command(), *args, cwd=cwd, env=env, stdout=sys.stderr, stderr=sys.stderr
    )
    try:
        code = await asyncio.wait_for(process.wait(), timeout=limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"papibot {' '.join(args)} took over {limit:.0f} s") from None
    if code != 0:
        raise RuntimeError(f"papibot {' '.join(args)} exited {code}")
    return time.monotonic() - started


async def register_village_heads(data_dir: Path, count: int) -> list[tuple[int, list[int]]]:
    """One village head per village (the first `count` by code), each with a Telegram identity;
    returns (chat id, their open occurrence ids) for those who have something open."""
    from sqlmodel import select

    from bench.load_client import CHAT_BASE
    from bot.core.config import Settings
    from bot.core.context import AppContext
    from bot.core.models import Unit
    from bot.core.services.occurrences import open_for_user
    from bot.core.services.people import add_user, link_identity
    from bot.core.timeutil import to_db

    ctx = AppContext.build(Settings(data_dir=data_dir, _env_file=None))
    people: list[tuple[int, list[int]]] = []
    try:
        async with ctx.db.session() as session:
            villages = (
                await session.exec(select(Unit).where(Unit.level == "village").order_by(Unit.code))
            ).all()
            now = to_db(datetime.now(UTC))
            for index, village in enumerate(villages[:count]):
                chat_id = CHAT_BASE + index
                user = await add_user(session, village, "village_head", f"Trưởng thôn {index}")
                await link_identity(session, user, "telegram", str(chat_id), user.name)
                items = await open_for_user(session, ctx.framework, user, now, 20)
                if items:
                    people.append((chat_id, [occurrence.id for occurrence, _task in items]))
            await session.commit()
    finally:
        await ctx.db.dispose()
    return people


async def check_recorded(data_dir: Path, answered: set[int], attempted: set[int]) -> dict[str, Any]:
    """Every update answered 200 recorded once; nothing recorded that was not sent (an update
    whose answer timed out may or may not be recorded: it is counted apart)."""
    from sqlalchemy import text

    from bot.core.config import Settings
    from bot.core.db import Database

    db = Database.from_settings(Settings(data_dir=data_dir, _env_file=None))
    try:
        async with db.session() as session:

            async def scalar(sql: str) -> int:
                return int((await session.exec(text(sql))).scalar_one())  # type: ignore[call-overload]

            rows = await scalar("SELECT count(*) FROM inbound_updates WHERE channel = 'telegram'")
            distinct = await scalar(
                "SELECT count(DISTINCT update_id) FROM inbound_updates WHERE channel = 'telegram'"
            )
            recorded = {
                int(value)
                for value in (
                    await session.exec(  # type: ignore[call-overload]
                        text("SELECT update_id FROM inbound_updates WHERE channel = 'telegram'")
                    )
                ).scalars()
            }
            apologies = int(
                (
                    await session.exec(  # type: ignore[call-overload]
                        text("SELECT count(*) FROM outbox WHERE idempotency_key LIKE :key"),
                        params={"key": "reply:telegram:%:error"},
                    )
                ).scalar_one()
            )
            outbox = await scalar("SELECT count(*) FROM outbox")
            evidence = await scalar("SELECT count(*) FROM evidence")
            reports = await scalar("SELECT count(*) FROM reports")
    finally:
        await db.dispose()
    return {
        "sent": len(attempted),
        "answered_200": len(answered),
        "inbound_rows": rows,
        "distinct_update_ids": distinct,
        "missing": len(answered - recorded),
        "recorded_without_200": len(recorded - answered),
        "unexpected": len(recorded - attempted),
        "exactly_once": rows == distinct and answered <= recorded <= attempted,
        "failed_inside_papibot": apologies,
        "outbox_rows": outbox,
        "evidence_rows": evidence,
        "report_rows": reports,
    }


async def wait_ready(base_url: str, fake, process, limit: float) -> None:  # noqa: ANN001
    from aiohttp import ClientError, ClientSession

    deadline = time.monotonic() + limit
    async with ClientSession() as session:
        while time.monotonic() < deadline:  # bounded in time
            if process.returncode is not None:
                raise RuntimeError(f"papibot run exited {process.returncode} at start")
            with contextlib.suppress(ClientError, OSError):
                async with session.get(f"{base_url}/healthz") as response:
                    if response.status == 200 and fake.webhook_url:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"papibot run not ready within {limit:.0f} s")


async def stop(process) -> None:  # noqa: ANN001
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (the SQLite driver runs in threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(client, pid: int, rate: float, seconds: float) -> dict[str, Any]:  # noqa: ANN001
    """One open-loop run, with the server's CPU per update and the machine's load beside it
    (other work on a shared machine shows there, and in the client's lateness)."""
    cpu_before, own_before = cpu_seconds(pid), time.process_time()
    result = await client.run(rate, seconds)
    cpu = cpu_seconds(pid) - cpu_before
    own = time.process_time() - own_before
    line = result.summary()
    line["server_cpu_ms_per_update"] = round(1000 * cpu / max(result.ok, 1), 2)
    line["server_cpu_share"] = round(cpu / max(result.last_done - result.first_due, 1e-9), 2)
    line["client_cpu_ms_per_update"] = round(1000 * own / max(result.planned, 1), 2)
    line["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return line


async def settle(data_dir: Path, sent: int, at_least: float, limit: float = 900.0) -> float:
    """Wait until the server has worked off its backlog: every update sent so far recorded
    and handled, or the count of handled updates still for 5 s; at least `at_least` s, at most
    `limit` s. Returns the seconds waited. The outbox sender may still be sending replies then,
    at Telegram's 30 messages/s."""
    from sqlalchemy import text

    from bot.core.config import Settings
    from bot.core.db import Database

    started = time.monotonic()
    await asyncio.sleep(at_least)
    db = Database.from_settings(Settings(data_dir=data_dir, _env_file=None))
    try:
        last, still_since = -1, time.monotonic()
        while time.monotonic() - started < limit:  # bounded in time
            async with db.session() as session:
                count = int(
                    (
                        await session.exec(  # type: ignore[call-overload]
                            text(
                                "SELECT count(*) FROM inbound_updates WHERE handled_at IS NOT NULL"
                            )
                        )
                    ).scalar_one()
                )
            if count >= sent:
                break
            if count != last:
                last, still_since = count, time.monotonic()
            elif time.monotonic() - still_since >= 5:
                break
            await asyncio.sleep(0.5)
    finally:
        await db.dispose()
    return round(time.monotonic() - started, 1)


async def handling(data_dir: Path, update_ids: list[int]) -> dict[str, Any]:
    """The handled side of a run (after `settle`): per update, recorded → handled."""
    from sqlalchemy import text

    from bot.core.config import Settings
    from bot.core.db import Database

    wanted = {str(update_id) for update_id in update_ids}
    db = Database.from_settings(Settings(data_dir=data_dir, _env_file=None))
    try:
        async with db.session() as session:
            rows = (
                await session.exec(  # type: ignore[call-overload]
                    text(
                        "SELECT update_id, received_at, handled_at FROM inbound_updates"
                        " WHERE channel = 'telegram' AND update_id >= :low"
                    ),
                    params={"low": str(min(update_ids)) if update_ids else "0"},
                )
            ).all()
    finally:
        await db.dispose()

    def moment(value: Any) -> float:
        value = datetime.fromisoformat(value) if isinstance(value, str) else value
        return value.replace(tzinfo=value.tzinfo or UTC).timestamp()

    mine = [(moment(r[1]), moment(r[2])) for r in rows if r[0] in wanted and r[2] is not None]
    if not mine:
        return {"handled": 0, "unhandled": len(wanted)}
    delays = sorted(1000 * (handled - received) for received, handled in mine)
    span = max(handled for _r, handled in mine) - min(received for received, _h in mine)
    rate = len(mine) / max(span, 1e-9)

    def pct(q: float) -> float:
        return round(delays[min(len(delays) - 1, int(q * len(delays)))], 1)

    return {
        "handled": len(mine),
        "unhandled": len(wanted) - len(mine),
        "handled_rate": round(rate, 1),
        "handled_p50_ms": pct(0.50),
        "handled_p99_ms": pct(0.99),
        "handled_max_ms": round(delays[-1], 1),
        # Kept up: all handled, none waiting over a second (a backlog would push p99 past it;
        # the rate over the span is a little under the offered one by the last update's wait).
        "kept_up": len(mine) == len(wanted) and pct(0.99) <= SUSTAINED_P99_MS,
    }


async def both_sides(
    client,
    pid: int,
    data_dir: Path,
    rate: float,
    seconds: float,
    pause: float,  # noqa: ANN001
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run at `rate`: the accepted side (the client's figures), then, once the server has
    worked off its backlog, the handled side with the server's CPU per handled update."""
    before, cpu_before = len(client.attempted), cpu_seconds(pid)
    accepted = await measured(client, pid, rate, seconds)
    settled = await settle(data_dir, len(client.attempted), pause)
    handled = await handling(data_dir, client.attempted[before:])
    cpu_ms = 1000 * (cpu_seconds(pid) - cpu_before)
    handled["server_cpu_ms_per_handled"] = round(cpu_ms / max(handled["handled"], 1), 2)
    handled["settle_s"] = settled
    return accepted, handled


def sustained(step: dict[str, Any]) -> bool:
    return (
        step["errors"] == 0
        and step["ok"] == step["updates"]
        and step["achieved_rate"] >= SUSTAINED_SHARE * step["offered_rate"]
        and step["p99_ms"] is not None
        and step["p99_ms"] <= SUSTAINED_P99_MS
    )


async def bench_inbound(args: argparse.Namespace, out: Out) -> None:
    from bench.load_client import LoadClient, Person, Updates
    from tests.helpers.fake_telegram import FakeTelegram

    out.emit("machine", **machine(), nproc=os.cpu_count())
    keep = Path(args.keep) if args.keep else None
    with tempfile.TemporaryDirectory(prefix="papibot-inbound-") as tmp_name:
        work = keep or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        data_dir = work / "data"
        env = papibot_env(data_dir)
        init_s = await run_cli(["init", "--units", str(UNITS_CSV)], work, env, SETUP_TIMEOUT)
        plan_s = await run_cli(["plan"], work, env, SETUP_TIMEOUT)
        registered = await register_village_heads(data_dir, args.users)
        if not registered:
            raise RuntimeError("no village head has an open occurrence: nothing to tap")
        log(f"init {init_s:.1f} s, plan {plan_s:.1f} s, {len(registered)} village heads")

        fake = FakeTelegram()
        await fake.start()
        people = [Person(chat_id, occurrences) for chat_id, occurrences in registered]
        updates = Updates(fake, people, first_update_id=100_000)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server_env = papibot_env(
            data_dir,
            {
                "PAPIBOT_HTTP_HOST": "127.0.0.1",
                "PAPIBOT_HTTP_PORT": str(port),
                "PAPIBOT_PUBLIC_URL": base_url,
                "PAPIBOT_TELEGRAM_TOKEN": fake.token,
                "PAPIBOT_TELEGRAM_API_URL": fake.api_url,
                "PAPIBOT_TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
        )
        command = [papibot_command(), "run"]
        profile_path = None
        if args.profile == "pyinstrument":
            RESULTS.mkdir(parents=True, exist_ok=True)
            profile_path = RESULTS / f"profile-inbound-sqlite{args.profile_suffix}.txt"
            command = [
                sys.executable, "-m", "pyinstrument", "-r", "text",
                "-o", str(profile_path), *command,
            ]  # fmt: skip
        elif args.profile == "cprofile":
            RESULTS.mkdir(parents=True, exist_ok=True)
            profile_path = RESULTS / f"profile-inbound-sqlite{args.profile_suffix}.pstats"
            command = [sys.executable, "-m", "cProfile", "-o", str(profile_path), *command]
        log_path = work / "papibot-run.log"
        log_file = log_path.open("wb")
        process = await asyncio.create_subprocess_exec(
            *command, cwd=work, env=server_env, stdout=log_file, stderr=subprocess.STDOUT
        )
        client = None
        try:
            await wait_ready(base_url, fake, process, START_TIMEOUT)
            log(f"papibot run pid {process.pid} ready at {base_url}")
            async with LoadClient(
                f"{base_url}/webhook/telegram", WEBHOOK_SECRET, updates, args.connections
            ) as client:
                warm = await measured(client, process.pid, args.warmup_rate, args.warmup_seconds)
                log(f"warm-up: {json.dumps(warm)}")
                await settle(data_dir, len(client.attempted), args.pause)

                best = best_handled = 0.0
                rates = [float(r) for r in args.ramp.split(",") if r.strip()]
                for rate in rates:  # bounded: the listed rates
                    step, handled = await both_sides(
                        client, process.pid, data_dir, rate, args.step_seconds, args.pause
                    )
                    ok = sustained(step)
                    out.emit(
                        "ramp_step",
                        **step,
                        seconds=args.step_seconds,
                        sustained=ok,
                        **handled,
                    )
                    if handled.get("kept_up") and best_handled == best:
                        best_handled = rate
                    if not ok:
                        break
                    best = rate
                if rates:
                    out.emit(
                        "max_sustained",
                        value=best,
                        unit="updates/s",
                        ramp=rates,
                        step_seconds=args.step_seconds,
                        criterion=f"all 200, achieved >= {SUSTAINED_SHARE:.0%} of offered, "
                        f"p99 <= {SUSTAINED_P99_MS:g} ms",
                        ramp_ended_by_limit=best < rates[-1],
                        target=f">= {SUSTAINED_TARGET:g}",
                        met=best >= SUSTAINED_TARGET,
                    )
                    out.emit(
                        "max_sustained_handled",
                        value=best_handled,
                        unit="updates/s",
                        ramp=rates,
                        criterion=f"all handled, recorded-to-handled p99 <= {SUSTAINED_P99_MS:g} ms",
                        target=f">= {SUSTAINED_TARGET:g}",
                        met=best_handled >= SUSTAINED_TARGET,
                    )
                sample = random.Random(7).sample(client.sent, min(args.redeliver, len(client.sent)))
                redelivered = await client.redeliver(sample)
                await settle(data_dir, len(client.attempted), args.pause)

                if args.rate > 0:
                    fixed, handled = await both_sides(
                        client, process.pid, data_dir, args.rate, args.seconds, args.pause
                    )
                    out.emit(
                        "latency_at_rate",
                        **fixed,
                        **handled,
                        people=len(people),
                        seconds=args.seconds,
                        connections=args.connections,
                        target=f"p99_ms <= {LATENCY_TARGET_MS:g}",
                        met=fixed["errors"] == 0
                        and fixed["p99_ms"] is not None
                        and fixed["p99_ms"] <= LATENCY_TARGET_MS,
                    )
        finally:
            await stop(process)
            log_file.close()
            await fake.close()
        answered = {update["update_id"] for update in client.sent} if client else set()
        attempted = set(client.attempted) if client else set()
        check = await check_recorded(data_dir, answered, attempted)
        out.emit(
            "recorded",
            **check,
            redelivered=len(sample),
            redelivery_statuses=redelivered,
            server_exit=process.returncode,
            fake_calls={
                method: len(fake.calls_to(method))
                for method in (
                    "sendMessage",
                    "answerCallbackQuery",
                    "editMessageReplyMarkup",
                    "getFile",
                    "download",
                )
            },
            met=check["exactly_once"],
        )
        if profile_path is not None:
            log(f"profile written to {profile_path}")
        errors = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if " ERROR " in line or "Traceback" in line
        ]
        if errors:
            log(f"{len(errors)} error lines in the papibot log, first: {errors[0][:300]}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inbound", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=417, help="village heads (417 = all)")
    parser.add_argument("--rate", type=float, default=200, help="the fixed offered rate; 0: none")
    parser.add_argument("--seconds", type=float, default=15, help="duration at --rate")
    parser.add_argument(
        "--ramp",
        default="25,50,100,200,300,400,500,600,800",
        help="offered rates, ascending; the ramp stops at the first rate not sustained",
    )
    parser.add_argument("--step-seconds", type=float, default=5, help="duration of a ramp step")
    parser.add_argument("--warmup-rate", type=float, default=50)
    parser.add_argument("--warmup-seconds", type=float, default=4)
    parser.add_argument(
        "--pause", type=float, default=2, help="seconds at least between runs (then until idle)"
    )
    parser.add_argument("--connections", type=int, default=100, help="client connection limit")
    parser.add_argument("--redeliver", type=int, default=200, help="updates sent twice")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="pyinstrument",
        default="",
        choices=("pyinstrument", "cprofile"),
        help="run papibot under a profiler (pyinstrument: pip install pyinstrument); the "
        "report goes to bench/results/profile-inbound-sqlite<suffix>.txt or .pstats",
    )
    parser.add_argument("--profile-suffix", default="", help="appended to the profile's name")
    parser.add_argument("--keep", default="", help="work in this folder and keep it")
    parser.add_argument("--results", default="", help="also append the JSON lines to this file")
    return parser.parse_args(argv)


async def main_async(argv: list[str] | None = None) -> int:
    """For a caller already inside an event loop (bench/run.py)."""
    args = parse(argv)
    out = Out(Path(args.results) if args.results else None)
    try:
        await bench_inbound(args, out)
    finally:
        out.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
