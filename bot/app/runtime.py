"""Assemble a running papibot: dispatcher, sender, channels and scheduler on one aiohttp app."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web

from bot.channels.base import Channel
from bot.channels.sender import RateLimiter, Sender
from bot.core.context import AppContext
from handlers.router import Dispatcher

log = logging.getLogger(__name__)

# The database's driver threads (aiosqlite: one per connection) hand each statement back to the
# event loop's thread, and while the loop is busy (webhooks, the inbox's worker, the sender) such
# a thread waits for the GIL until Python's switch interval has passed, 5 ms by default: many
# times what an SQLite statement costs, paid at every hand-off of a webhook's recording and of
# the worker's statements. A shorter interval makes the loop let them in sooner.
GIL_SWITCH_SECONDS = 0.001


@dataclass
class Runtime:
    ctx: AppContext
    dispatcher: Dispatcher
    sender: Sender
    channels: dict[str, Channel] = field(default_factory=dict)


def configured_channels(ctx: AppContext, dispatcher: Dispatcher) -> dict[str, Channel]:
    """Every channel whose settings are present; the web simulator unless switched off."""
    channels: dict[str, Channel] = {}
    settings = ctx.settings
    if settings.simulator_on:
        from bot.web.sim_channel import WebChannel

        channels["web"] = WebChannel(ctx, dispatcher)
    if settings.telegram_token:
        from bot.channels.telegram import TelegramChannel

        channels["telegram"] = TelegramChannel(ctx, dispatcher)
    if settings.zalo_bot_token:
        from bot.channels.zalo_bot import ZaloBotChannel

        channels["zalo_bot"] = ZaloBotChannel(ctx, dispatcher)
    if settings.zalo_oa_app_id:
        from bot.channels.zalo_oa import ZaloOAChannel

        channels["zalo_oa"] = ZaloOAChannel(ctx, dispatcher)
        from bot.channels.zalo_zns import ZaloZNSChannel, zns_configured
        from bot.core.services.reach_policy import load_reach_policy

        if zns_configured(load_reach_policy(settings), settings.zalo_oa_app_id):
            channels["zalo_zns"] = ZaloZNSChannel(ctx, tokens=channels["zalo_oa"].tokens)
    return channels


def worker_channels(ctx: AppContext, dispatcher: Dispatcher) -> dict[str, Channel]:
    """A `papibot worker`'s channels: the configured ones, for sending and downloading only
    (updates come in through a `papibot run`), without the web simulator, which delivers its
    replies from the server that shows them."""
    channels = configured_channels(ctx, dispatcher)
    channels.pop("web", None)
    return channels


def rate_limits(ctx: AppContext) -> dict[str, RateLimiter]:
    zalo = ctx.settings.zalo_rate_per_second
    return {
        "telegram": RateLimiter(per_second=30, per_chat_interval=1.0),
        "zalo_bot": RateLimiter(per_second=zalo, per_chat_interval=0.2),
        "zalo_oa": RateLimiter(per_second=zalo, per_chat_interval=0.2),
        "zalo_zns": RateLimiter(per_second=zalo, per_chat_interval=0.2),
    }


ChannelFactory = Callable[[AppContext, Dispatcher], dict[str, Channel]]


def build_runtime(ctx: AppContext, make_channels: ChannelFactory = configured_channels) -> Runtime:
    """`make_channels` builds the channels around the runtime's one dispatcher (tests pass
    their own, pointed at fake platforms)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))
    holder: dict[str, Sender] = {}
    dispatcher = Dispatcher(ctx, after_commit=lambda: holder["sender"].wake())
    chosen = make_channels(ctx, dispatcher)
    sender = Sender(
        ctx.db,
        dict(chosen),
        limits=rate_limits(ctx),
        max_attempts=ctx.settings.sender_max_attempts,
        stale_after=timedelta(seconds=ctx.settings.sender_lease_seconds),
    )
    holder["sender"] = sender
    return Runtime(ctx=ctx, dispatcher=dispatcher, sender=sender, channels=chosen)


def add_channel_routes(runtime: Runtime, app: web.Application) -> None:
    for channel in runtime.channels.values():
        channel.add_routes(app)
