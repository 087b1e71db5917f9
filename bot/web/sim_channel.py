"""The web chat simulator as a channel: try every journey in a browser, no platform account.

Delivery is a no-op on purpose: the outbox row *is* the message. Once the sender marks it
`sent`, the simulator page reads it back (`bot/web/sim.py`), so the transcript lives in the
database like every other piece of state, and a restart loses nothing. A card's id is its
outbox row's id; a row that edits it (`edit_of`) is shown in its place, like Telegram does.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

from aiohttp import web
from sqlmodel import col, select

from bot.channels.base import EditImpossible
from bot.channels.sender import Sender
from bot.core.context import AppContext
from bot.core.dispatch import Dispatcher
from bot.core.messages import Incoming, IncomingFile, Kind, Outgoing
from bot.core.models import Outbox, OutboxStatus

log = logging.getLogger(__name__)

CHANNEL = "web"
# How long an API call waits for the replies it caused before answering (the page polls anyway).
SETTLE_SECONDS = 3.0
# `web-<user id>` for a person picked in the simulator, `guest-…` for a stranger trying a code.
CHAT_SHAPE = re.compile(r"^(web-[0-9]{1,18}|guest-[A-Za-z0-9_-]{1,40})$")
UPDATE_ID_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
COMMAND_SHAPE = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)
MAX_ID = 2**31 - 1  # integer primary keys (PostgreSQL `integer`)
SHOWN_IN_PLACE = ("edited", "unchanged")  # edit results that replaced the card on the page


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

    async def edit(self, external_id: str, message_id: str, message: Outgoing) -> str:
        """Replace a card of this chat: the page shows the edit row in the card's place. As on
        Telegram, a card that is not there is refused and the same content again is
        "unchanged"."""
        card_id = int(message_id) if message_id.isdigit() else 0
        if not 0 < card_id <= MAX_ID or not message.text_only:
            raise EditImpossible(f"no card {message_id!r}")
        async with self.ctx.db.session() as session:
            card = await session.get(Outbox, card_id)
            if (
                card is None
                or (card.channel, card.external_id) != (CHANNEL, external_id)
                or card.status != OutboxStatus.sent
                or card.edit_result in SHOWN_IN_PLACE  # itself an edit, not a card
                or Outgoing.from_payload(card.payload).photo_path
            ):
                raise EditImpossible(f"no card {message_id!r} in this chat")
            latest = (
                await session.exec(
                    select(Outbox)
                    .where(
                        Outbox.channel == CHANNEL,
                        Outbox.external_id == external_id,
                        Outbox.edit_of == message_id,
                        Outbox.status == OutboxStatus.sent,
                        col(Outbox.edit_result).in_(SHOWN_IN_PLACE),
                    )
                    .order_by(col(Outbox.id).desc())
                    .limit(1)
                )
            ).first()
        shown = Outgoing.from_payload((latest or card).payload)
        if (shown.text, shown.buttons) == (message.text, message.buttons):
            return "unchanged"
        return "edited"

    def add_routes(self, app: web.Application) -> None:
        # No webhook: the simulator's pages (bot/web/sim.py) are mounted by the server.
        return None

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
