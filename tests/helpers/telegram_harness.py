"""A Telegram test harness: the fake Bot API, papibot's app and a small world on loopback."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta

from aiohttp import web
from PIL import Image
from sqlmodel import select

from bot.app.runtime import Runtime, build_runtime
from bot.app.server import build_app
from bot.channels.sender import RateLimiter
from bot.channels.telegram import TelegramChannel
from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.messages import Outgoing
from bot.core.models import (
    ChannelIdentity,
    Unit,
    User,
)
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.services.outbox import Queued, enqueue_many
from bot.core.units import import_units_csv
from scheduler.planner import plan
from tests.helpers.fake_telegram import FakeTelegram
from tests.helpers.rows import count
from tests.helpers.world import World, world_of, write_small_units_csv

TOKEN = "123456:TEST-TOKEN-abc"
SECRET = "webhook-secret_42"
VILLAGE_HEAD = "village_head"
OFFICER = "commune_committee"


# --------------------------------------------------------------------------- the world


async def small_world(settings: Settings, db: Database, framework: Framework) -> World:
    units_csv = write_small_units_csv(settings.data_dir.parent / "units.csv", settings.structure)
    await import_units_csv(db, units_csv)
    app = AppContext(settings=settings, db=db, framework=framework)
    async with db.session() as session:
        await sync_task_definitions(session, framework)
        commune = (await session.exec(select(Unit).where(Unit.level == "commune"))).one()
        world = await world_of(app, session, commune)
        # What is open now (windows opening by tomorrow): all the journeys need, and quick.
        await plan(session, framework, settings, date.today(), date.today() + timedelta(days=1))
        await session.commit()
    return world


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# --------------------------------------------------------------------------- the harness


@dataclass
class Harness:
    fake: FakeTelegram
    world: World
    runtime: Runtime
    channel: TelegramChannel
    base_url: str  # where papibot's aiohttp app listens

    @property
    def db(self) -> Database:
        return self.world.db

    async def settle(self) -> None:
        """Let the callback answers finish and the sender deliver everything due."""
        async with asyncio.timeout(15):  # a delivery loop that never ends is a failure
            await self.channel.idle()
            while await self.runtime.sender.drain_once():
                pass
            await self.channel.idle()

    async def say(self, update: dict) -> int | None:
        status = await self.fake.deliver(update)
        await self.settle()
        return status

    async def press(self, chat_id: int, data: str) -> None:
        assert await self.say(self.fake.press(chat_id, data)) == 200

    async def register(self, chat_id: int, unit: Unit, role: str) -> User:
        invite = await self.world.invite(unit, role)
        assert await self.say(self.fake.command(chat_id, "start", invite.code)) == 200
        async with self.db.session() as session:
            identity = (
                await session.exec(
                    select(ChannelIdentity).where(
                        ChannelIdentity.channel == "telegram",
                        ChannelIdentity.external_id == str(chat_id),
                    )
                )
            ).one()
            user = await session.get(User, identity.user_id)
        assert user is not None and user.unit_id == unit.id and user.role == role
        return user

    def buttons_to(self, chat_id: int, prefix: str) -> list[str]:
        return [
            data
            for sent in self.fake.sent_to(chat_id)
            for data in sent.callback_data()
            if data.startswith(prefix)
        ]

    async def count(self, model, *where) -> int:  # noqa: ANN001
        return await count(self.db, model, *where)

    async def queue(self, prefix: str, how_many: int, first_chat: int) -> list[int]:
        """`how_many` messages queued to as many new chats from `first_chat` on, each with the
        idempotency key `prefix:chat` (its lane follows the prefix) and the text `prefix chat`."""
        chats = [first_chat + n for n in range(how_many)]
        for chat in chats:
            self.fake.user(chat)
        async with self.db.session() as session:
            await enqueue_many(
                session,
                [
                    Queued(
                        "telegram", str(chat), Outgoing(text=f"{prefix} {chat}"), f"{prefix}:{chat}"
                    )
                    for chat in chats
                ],
            )
            await session.commit()
        return chats


@asynccontextmanager
async def harness(
    settings: Settings, db: Database, framework: Framework, webhook: bool = True
) -> AsyncIterator[Harness]:
    fake = FakeTelegram(token=TOKEN)
    await fake.start()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.telegram_token = TOKEN
    settings.telegram_api_url = fake.api_url
    settings.telegram_webhook_secret = SECRET
    settings.scheduler_enabled = False
    world = await small_world(settings, db, framework)
    ctx = world.app
    runtime = build_runtime(
        ctx,
        lambda ctx, dispatcher: {"telegram": TelegramChannel(ctx, dispatcher, poll_timeout=1)},
    )
    channel = runtime.channels["telegram"]
    # Telegram's real pacing (1 message per second per chat) would make each test wait for
    # seconds; the platform's own limit is what the rate-limit test exercises.
    runtime.sender.limits["telegram"] = RateLimiter(per_second=1000, per_chat_interval=0)
    # Webhook mode is known when the routes are mounted; the port only once listening.
    settings.public_url = "http://127.0.0.1" if webhook else ""
    runner = web.AppRunner(build_app(runtime), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base_url = f"http://{host}:{port}"
    settings.public_url = base_url if webhook else ""
    await channel.start()
    try:
        yield Harness(fake=fake, world=world, runtime=runtime, channel=channel, base_url=base_url)
    finally:
        await channel.stop()
        await runner.cleanup()
        await fake.close()
