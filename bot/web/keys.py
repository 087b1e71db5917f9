"""What the composition root puts on the aiohttp app for the pages to read."""

from __future__ import annotations

from aiohttp import web

from bot.channels.sender import Sender
from bot.core.context import AppContext

CTX_KEY = web.AppKey("ctx", AppContext)
SENDER_KEY = web.AppKey("sender", Sender)  # the simulator delivers its replies at once
