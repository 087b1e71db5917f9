"""What the failure drills share: a real `papibot run` child process, a fake Telegram that can
pull the plug at a chosen message, database snapshots, and bounded waiting.

Every wait here has a deadline *and* an iteration cap, and only loopback addresses are used.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel, func, select

from bot.core.db import Database
from tests.helpers.fake_telegram import FakeTelegram

REPO = Path(__file__).resolve().parent.parent.parent
PAPIBOT = Path(sys.executable).parent / "papibot"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    within: float,
    interval: float = 0.05,
    on_timeout: Callable[[], str] | None = None,
) -> None:
    """Poll `condition` until it holds; fail with `what` after `within` seconds (or after as
    many polls as that allows: the loop is bounded in count as well as in time)."""
    deadline = time.monotonic() + within
    for _ in range(int(within / interval) + 1):
        if await condition():
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(interval)
    extra = f"\n{on_timeout()}" if on_timeout else ""
    raise AssertionError(f"timed out after {within:.0f} s waiting for {what}{extra}")


# --------------------------------------------------------------------------- the database


def table_names() -> list[str]:
    return sorted(SQLModel.metadata.tables)


async def row_counts(db: Database) -> dict[str, int]:
    """Rows per table, for "nothing was written" checks (one round trip)."""
    names = table_names()
    query = select(
        *(
            select(func.count())
            .select_from(SQLModel.metadata.tables[name])
            .scalar_subquery()
            .label(name)
            for name in names
        )
    )
    async with db.session() as session:
        row = (await session.exec(query)).one()
    return {name: int(value) for name, value in zip(names, row, strict=True)}


def changed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


# --------------------------------------------------------------------------- a papibot child


@dataclass
class Child:
    """One `papibot run` (or `papibot worker`: `command`) process with its own environment and
    log file."""

    env: dict[str, str]
    cwd: Path
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    runs: int = 0
    command: str = "run"

    async def start(self) -> None:
        self.runs += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== run {self.runs} =====\n".encode())
        log.flush()
        try:
            self.process = await asyncio.create_subprocess_exec(
                str(PAPIBOT),
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()  # the child holds its own descriptor

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)

    async def wait(self, within: float) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), within)

    async def stop(self, within: float = 15) -> int | None:
        """SIGTERM and wait (the clean stop `papibot run` promises); SIGKILL if it hangs."""
        if not self.alive:
            return self.process.returncode if self.process else None
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await self.wait(within)
        except TimeoutError:
            self.kill9()
            await self.wait(within)
            return None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "child log (tail):\n" + "\n".join(text[-lines:])


def child_env(**settings: str) -> dict[str, str]:
    """The parent's environment without any PAPIBOT_* setting, plus `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PAPIBOT_")}
    env.update({f"PAPIBOT_{key.upper()}": value for key, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --------------------------------------------------------------------------- a fake Telegram


@dataclass
class TrippingTelegram(FakeTelegram):
    """A fake Telegram that, when it has accepted its `trip_at`-th sendMessage, runs `trip`
    *before* answering it: the platform has the message, the sender has no answer yet.

    `delay` slows every sendMessage answer a little (the window for a crash widens)."""

    trip_at: int = 0
    delay: float = 0.0
    trip: Callable[[], Awaitable[None]] | None = None
    tripped: bool = False
    texts: list[str] = field(default_factory=list)

    async def _m_sendmessage(self, params: dict, files: dict) -> dict[str, Any]:
        result = await super()._m_sendmessage(params, files)
        self.texts.append(params.get("text", ""))
        if self.trip is not None and not self.tripped and len(self.texts) >= self.trip_at:
            self.tripped = True
            await self.trip()
        if self.delay:
            await asyncio.sleep(self.delay)
        return result


# --------------------------------------------------------------------------- PostgreSQL loss


def postgres_app_database(url: str, schema: str, application_name: str) -> Database:
    """The app's engine on `schema`, its connections tagged so that a drill can terminate
    exactly them (and not another test's)."""
    return Database(
        url,
        connect_args={
            "server_settings": {"search_path": schema, "application_name": application_name}
        },
        pool_size=5,
    )


class Saboteur:
    """Terminates every connection of one application (`pg_terminate_backend`) at chosen
    moments: when the app is about to run its n-th statement matching `matches`, for n in
    `at`. The statement then meets a dead connection, as it would if the server restarted
    between two statements of a transaction.

    The trigger is a `before_cursor_execute` listener on the app's engine; it waits for the
    termination (through an admin engine of its own) before letting the statement go on."""

    def __init__(self, url: str, application_name: str) -> None:
        from sqlalchemy import text

        self.application_name = application_name
        self.admin = Database(
            url, connect_args={"server_settings": {"application_name": "drill-admin"}}
        )
        self._query = text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = :name"
        )
        self.matches: Callable[[str], bool] = lambda _statement: False
        self.at: set[int] = set()
        self.seen = 0
        self.kills: list[tuple[int, int, str]] = []  # (n-th match, backends ended, statement)

    def arm(self, matches: Callable[[str], bool], at: set[int]) -> None:
        self.matches, self.at, self.seen = matches, set(at), 0

    def disarm(self) -> None:
        self.at = set()

    async def terminate(self) -> int:
        async with self.admin.engine.connect() as connection:
            result = await connection.execute(self._query, {"name": self.application_name})
            return int(result.scalar_one())

    def attach(self, db: Database) -> None:
        from sqlalchemy import event

        event.listen(db.engine.sync_engine, "before_cursor_execute", self._before)

    def _before(self, _conn, _cursor, statement: str, *_rest: Any) -> None:  # noqa: ANN001
        if not self.at or not self.matches(statement):
            return
        self.seen += 1
        if self.seen in self.at:
            self.at.discard(self.seen)
            from sqlalchemy.util import await_only

            ended = await_only(self.terminate())
            self.kills.append((self.seen, ended, statement.split("(")[0].strip()[:60]))

    async def close(self) -> None:
        await self.admin.dispose()


def statement_starts(*prefixes: str) -> Callable[[str], bool]:
    wanted = tuple(prefix.upper() for prefix in prefixes)
    return lambda statement: statement.lstrip().upper().startswith(wanted)
