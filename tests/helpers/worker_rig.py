"""Several `papibot worker` processes on one PostgreSQL database, a fake Telegram on loopback
that tells them apart, and an inbox filled with updates: what the two-worker test and the
workers benchmark (bench/workers.py) share.

Each worker talks to the fake through a port of its own, so the fake knows which process sent
each message. The updates are written straight into the inbox, as `papibot run` records them
from webhooks, once every worker has said it is running.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from sqlalchemy import insert, text
from sqlmodel import col, func, select

from bot.core.db import Database
from bot.core.inbox import chat_key
from bot.core.messages import Incoming, Kind, Outgoing
from bot.core.models import InboundUpdate, Outbox, OutboxLane, OutboxStatus, utcnow
from tests.helpers.drill_support import Child, child_env, free_port, wait_for
from tests.helpers.fake_telegram import FakeTelegram

TOKEN = "515151:WORKERS-scale-out"
FIRST_CHAT = 810_000


@dataclass
class PortedTelegram(FakeTelegram):
    """A fake Telegram served on one extra port per worker; `senders` says, for each message
    sent (by chat and message id), through which port it came."""

    senders: dict[tuple[int, int], int] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)

    async def open_ports(self, count: int) -> list[str]:
        assert self._runner is not None
        urls = []
        for _ in range(count):
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.ports.append(port)
            urls.append(f"http://127.0.0.1:{port}")
        return urls

    async def _api(self, request: web.Request) -> web.Response:
        before = len(self.messages)
        response = await super()._api(request)
        port = request.transport.get_extra_info("sockname")[1] if request.transport else 0
        for message in self.messages[before:]:
            self.senders[(message.chat_id, message.message_id)] = port
        return response


async def create_database(admin_url: str) -> tuple[str, str]:
    """A fresh PostgreSQL database beside `admin_url`'s (each child connects by URL, so a schema
    of its own would not do); returns its name and URL."""
    name = f"papibot_workers_{uuid.uuid4().hex[:10]}"
    admin = Database(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(admin_url: str, name: str) -> None:
    admin = Database(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def update_rows(chats: int, per_chat: int, first_update: int = 100_000) -> list[dict]:
    """`per_chat` text updates from each of `chats` chats, interleaved as they would arrive
    (the first message of every chat, then the second …); update ids count up."""
    rows, now = [], utcnow()
    for turn in range(per_chat):
        for chat in range(chats):
            update_id = str(first_update + turn * chats + chat)
            incoming = Incoming(
                channel="telegram",
                external_id=str(FIRST_CHAT + chat),
                update_id=update_id,
                kind=Kind.text,
                text=f"tin nhắn {turn + 1} của người {chat + 1}",
                display_name=f"Người {chat + 1}",
            )
            rows.append(
                {
                    "channel": "telegram",
                    "update_id": update_id,
                    "chat_key": chat_key("telegram", incoming.external_id),
                    "received_at": now,
                    "payload": json.dumps(incoming.to_payload()),
                }
            )
    return rows


@dataclass
class Workers:
    """N `papibot worker` children on one database, each with its own port on the fake."""

    children: list[Child]
    fake: PortedTelegram

    @classmethod
    async def start(
        cls, count: int, database_url: str, fake: PortedTelegram, folder: Path, **extra: str
    ) -> Workers:
        urls = await fake.open_ports(count)
        children = []
        for number, url in enumerate(urls, start=1):
            env = child_env(
                data_dir=str(folder / "data"),
                database_url=database_url,
                telegram_token=TOKEN,
                telegram_api_url=url,
                public_url="",
                simulator_enabled="false",
                scheduler_enabled="false",
                http_port=str(free_port()),
                secret_key="workers-secret",
                **extra,
            )
            child = Child(
                env=env, cwd=folder, log_path=folder / f"worker-{number}.log", command="worker"
            )
            children.append(child)
        workers = cls(children, fake)
        for child in children:
            await child.start()
        for child in children:

            async def running(child: Child = child) -> bool:
                assert child.alive, child.log_tail()
                return "papibot worker is running" in child.log_path.read_text(errors="replace")

            await wait_for(running, "a worker to start", 90, 0.05, child.log_tail)
        return workers

    def logs(self) -> str:
        return "\n".join(child.log_tail(15) for child in self.children)

    async def stop(self) -> list[int | None]:
        return [await child.stop() for child in self.children]

    async def kill(self) -> None:
        for child in self.children:
            if child.alive:
                child.kill9()
                await child.wait(within=10)


def outbox_rows(chats: int, per_chat: int) -> list[dict]:
    """`per_chat` queued news messages for each of `chats` chats, interleaved (the first of every
    chat, then the second …), as a fan-out queues them."""
    return [
        {
            "idempotency_key": f"news:{FIRST_CHAT + chat}:{turn:02d}",
            "channel": "telegram",
            "external_id": str(FIRST_CHAT + chat),
            "payload": Outgoing(text=f"Tin số {turn + 1} cho người {chat + 1}").to_payload(),
            "lane": int(OutboxLane.notify),
        }
        for turn in range(per_chat)
        for chat in range(chats)
    ]


async def fill_outbox(db: Database, rows: list[dict]) -> None:
    async with db.session() as session:
        await session.exec(insert(Outbox), params=rows)
        await session.commit()


async def fill_inbox(db: Database, rows: list[dict]) -> None:
    async with db.session() as session:
        await session.exec(insert(InboundUpdate), params=rows)
        await session.commit()


async def sent_count(db: Database) -> int:
    async with db.session() as session:
        sent = await session.exec(select(func.count()).where(Outbox.status == OutboxStatus.sent))
        return int(sent.one())


async def handled_and_sent(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        handled = (
            await session.exec(
                select(func.count()).where(col(InboundUpdate.handled_at).is_not(None))
            )
        ).one()
        sent = (
            await session.exec(select(func.count()).where(Outbox.status == OutboxStatus.sent))
        ).one()
    return int(handled), int(sent)


async def time_to_handle(
    db: Database, expected: int, workers: Workers, within: float = 120
) -> float:
    """Seconds from now until `expected` updates are handled and their replies sent."""
    started = time.monotonic()

    async def done() -> bool:
        for child in workers.children:
            assert child.alive, child.log_tail()
        handled, sent = await handled_and_sent(db)
        return handled >= expected and sent >= expected

    await wait_for(done, f"{expected} updates handled and answered", within, 0.05, workers.logs)
    return time.monotonic() - started
