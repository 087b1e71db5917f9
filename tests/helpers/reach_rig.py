"""Every channel a reminder can take, against the fakes on loopback: Telegram, Zalo Bot and
Zalo OA (one FakeZalo), ZNS (FakeZNS, sharing the OA's tokens), our webhook server for the OA's
receipts, and a sender whose clock is the scheduler's. ZNS templates are registered for the
province (an override reach.yaml) and with the fake.

    rig = await start_rig(settings, db, framework)
    await rig.sweep(at(18, 8)); await rig.drain()
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from sqlmodel import col, select

from bot.channels.sender import Sender
from bot.channels.telegram import TelegramChannel
from bot.channels.zalo_bot import ZaloBotChannel
from bot.channels.zalo_oa import WEBHOOK_PATH, ZaloOAChannel
from bot.channels.zalo_zns import ZaloZNSChannel
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import Outbox, ReachChain, Reminder, User
from bot.core.services.reach import normalise_phone
from handlers.router import Dispatcher
from scheduler.commands import run_sweep
from scheduler.reminders import SweepReport
from tests.helpers.fake_telegram import FakeTelegram
from tests.helpers.fake_zalo import FakeZalo
from tests.helpers.fake_zns import FakeZNS
from tests.helpers.scheduler_world import SchedulerWorld, at, build_scheduler_world

TEMPLATES = {"reminder": "tpl-nhac-viec-01", "overdue": "tpl-qua-han-01"}
REACH_YAML = f"""
zns:
  templates:
    reminder:
      template_id: {TEMPLATES["reminder"]}
    overdue:
      template_id: {TEMPLATES["overdue"]}
"""
PARAM_LIMITS = 30


@dataclass
class Rig:
    world: SchedulerWorld
    zalo: FakeZalo
    zns: FakeZNS
    telegram: FakeTelegram
    channels: dict
    sender: Sender
    url: str
    runner: web.AppRunner
    moment: datetime

    @property
    def db(self) -> Database:
        return self.world.db

    async def sweep(self, moment: datetime) -> SweepReport:
        self.moment = moment
        return await run_sweep(self.world.app, moment)

    async def drain(self, rounds: int = 4) -> int:
        """Send what is due, and let the receipts arrive."""
        total = 0
        for _ in range(rounds):
            total += await self.sender.drain_once()
            await self.zns.settle()
            await self.zalo.settle_receipts()
            await self.channels["zalo_oa"].settle_receipts()
        return total

    async def person(
        self, key: str, unit: str, channel: str = "", external_id: str = "", phone: str = ""
    ) -> User:
        user = await self.world.person(key, unit, "village_head", channel, external_id)
        if phone:
            async with self.db.session() as session:
                stored = await session.get(User, user.id)
                stored.phone = normalise_phone(phone)
                session.add(stored)
                await session.commit()
        return user

    async def chains(self, user: User) -> list[ReachChain]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(ReachChain)
                .where(ReachChain.user_id == user.id)
                .order_by(col(ReachChain.created_at))
            )
            return list(rows.all())

    async def rows(self, **where: object) -> list[Outbox]:
        async with self.db.session() as session:
            query = select(Outbox).order_by(col(Outbox.id))
            for name, value in where.items():
                query = query.where(getattr(Outbox, name) == value)
            return list((await session.exec(query)).all())

    async def reminders_of(self, occurrence_id: int) -> list[Reminder]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(Reminder)
                .where(Reminder.occurrence_id == occurrence_id)
                .order_by(col(Reminder.id))
            )
            return list(rows.all())

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.stop()
        await self.runner.cleanup()
        await self.zns.stop()
        await self.zalo.settle_receipts()
        await self.zalo.stop()
        await self.telegram.close()


async def start_rig(
    settings: Settings, db: Database, framework: Framework, reach_yaml: str = REACH_YAML
) -> Rig:
    overrides = Path(settings.data_dir).parent / "reach-overrides"
    overrides.mkdir(parents=True, exist_ok=True)
    (overrides / "reach.yaml").write_text(reach_yaml, encoding="utf-8")
    settings.framework_overrides = overrides
    zalo = await FakeZalo().start()
    zns = await FakeZNS(zalo).start()
    telegram = FakeTelegram(token="123456:REACH")
    settings.telegram_token = telegram.token
    settings.telegram_api_url = await telegram.start()
    settings.zalo_bot_token = zalo.bot_token
    settings.zalo_bot_api_url = zalo.url
    settings.zalo_oa_app_id = zalo.app_id
    settings.zalo_oa_app_secret = zalo.app_secret
    settings.zalo_oa_secret_key = "reach-oa-secret"
    # The month runs on a simulated clock: receipts the fakes post back are signed with its
    # times, which the replay window (measured on the real clock) would otherwise refuse.
    settings.zalo_oa_replay_window_seconds = 100 * 365 * 86400
    settings.zalo_oa_access_token = zalo.access_token
    settings.zalo_oa_refresh_token = zalo.refresh_token
    settings.zalo_oa_api_url = zalo.url
    settings.zalo_oauth_url = zalo.url
    settings.zalo_zns_api_url = zns.url
    world = await build_scheduler_world(settings, db, framework)
    app = world.app
    dispatcher = Dispatcher(app)
    oa = ZaloOAChannel(app, dispatcher)
    channels = {
        "telegram": TelegramChannel(app, dispatcher, poll_timeout=1),
        "zalo_bot": ZaloBotChannel(app, dispatcher),
        "zalo_oa": oa,
        "zalo_zns": ZaloZNSChannel(app, tokens=oa.tokens),
    }
    for template_id in TEMPLATES.values():
        params = channels["zalo_zns"].policy.zns.templates
        kind = next(k for k, t in params.items() if t.template_id == template_id)
        zns.register_template(template_id, dict.fromkeys(params[kind].params, PARAM_LIMITS))
    web_app = web.Application()
    oa.add_routes(web_app)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    zns.deliver_to(url + WEBHOOK_PATH, settings.zalo_oa_secret_key)
    rig = Rig(world, zalo, zns, telegram, channels, None, url, runner, at(1, 0))  # type: ignore[arg-type]
    rig.sender = Sender(
        db, dict(channels), max_attempts=2, clock=lambda: rig.moment.astimezone(UTC)
    )
    return rig
