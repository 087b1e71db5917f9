"""The web chat simulator as a channel: try every journey in a browser, no platform account.

Delivery is a no-op on purpose: the outbox row *is* the message. Once the sender marks it
`sent`, the simulator page reads it back (`bot/web/sim.py`), so the transcript lives in the
database like every other piece of state, and a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

from aiohttp import web

from bot.channels.sender import Sender
from bot.core.context import AppContext
from bot.core.messages import Incoming, IncomingFile, Kind, Outgoing
from handlers.router import Dispatcher

log = logging.getLogger(__name__)

CHANNEL = "web"
# How long an API call waits for the replies it caused before answering (the page polls anyway).
SETTLE_SECONDS = 3.0
# `web-<user id>` for a person picked in the simulator, `guest-…` for a stranger trying a code.
CHAT_SHAPE = re.compile(r"^(web-[0-9]{1,18}|guest-[A-Za-z0-9_-]{1,40})$")
UPDATE_ID_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
COMMAND_SHAPE = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)


def chat_for_user(user_id: int) -> str:
    return f"{CHANNEL}-{user_id}"


def valid_chat(chat: object) -> bool:
    return isinstance(chat, str) and bool(CHAT_SHAPE.match(chat))


def valid_update_id(update_id: object) -> bool:
    return isinstance(update_id, str) and bool(UPDATE_ID_SHAPE.match(update_id))


def new_update_id() -> str:
    return uuid.uuid4().hex


def text_update(chat: str, text: str, update_id: str, display_name: str = "") -> Incoming:
    """Typed text, or a `/command argument` as Telegram would deliver it."""
    match = COMMAND_SHAPE.match(text.strip())
    if match:
        return Incoming(
            channel=CHANNEL,
            external_id=chat,
            update_id=update_id,
            kind=Kind.command,
            command=match.group(1).lower(),
            text=(match.group(2) or "").strip(),
            display_name=display_name,
        )
    return Incoming(
        channel=CHANNEL,
        external_id=chat,
        update_id=update_id,
        kind=Kind.text,
        text=text,
        display_name=display_name,
    )


def button_update(chat: str, data: str, message_id: str, update_id: str) -> Incoming:
    return Incoming(
        channel=CHANNEL,
        external_id=chat,
        update_id=update_id,
        kind=Kind.button,
        data=data,
        message_id=message_id,
    )


def file_update(chat: str, content: bytes, file_name: str, mime: str, update_id: str) -> Incoming:
    """An uploaded file: an image is a photo, anything else a document (the handler decides)."""

    async def fetch() -> bytes:
        return content

    return Incoming(
        channel=CHANNEL,
        external_id=chat,
        update_id=update_id,
        kind=Kind.photo if mime.startswith("image/") else Kind.document,
        file=IncomingFile(file_name=file_name, mime=mime, size=len(content), fetch=fetch),
    )


class WebChannel:
    name = CHANNEL

    def __init__(self, ctx: AppContext, dispatcher: Dispatcher) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher
        self._draining: set[asyncio.Task] = set()

    async def send(self, external_id: str, message: Outgoing, idempotency_key: str) -> str:
        # Nothing to call: the sender marks the outbox row sent, and the page reads that row.
        return idempotency_key

    def add_routes(self, app: web.Application) -> None:
        from bot.web.sim import add_routes

        add_routes(app, self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self._draining:
            await asyncio.wait(set(self._draining), timeout=SETTLE_SECONDS)

    async def receive(self, incoming: Incoming, sender: Sender | None) -> bool:
        """Handle an update like any channel, then deliver its replies before answering.

        Returns False for an update id seen before (nothing happened)."""
        handled = await self.dispatcher.handle(incoming)
        if handled and sender is not None:
            await self._settle(sender)
        return handled

    async def _settle(self, sender: Sender) -> None:
        # A pass may also carry other channels' rows under their rate limits: wait a little,
        # never cancel (a half-sent Telegram message would be sent again).
        task = asyncio.create_task(sender.drain_once(), name="web-settle")
        self._draining.add(task)
        task.add_done_callback(self._settled)
        await asyncio.wait({task}, timeout=SETTLE_SECONDS)

    def _settled(self, task: asyncio.Task) -> None:
        self._draining.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The background sender delivers the rows on its next pass.
            log.warning("simulator drain failed: %r", task.exception())
