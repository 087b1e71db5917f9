"""Telegram: python-telegram-bot as the transport, the channel-neutral core behind it.

Inbound, either a webhook (`POST /webhook/telegram`, when `public_url` and the webhook secret
are set; `start()` calls setWebhook with the secret) or long polling (getUpdates with an offset,
when they are not; the webhook route is then not mounted at all). Every
update becomes an `Incoming` handed to `Dispatcher.handle`, which records it by update id, so a
redelivery changes nothing. Button presses are answered (answerCallbackQuery) and their buttons
removed (editMessageReplyMarkup) here: those are transport concerns, not the dialog's. When
the dialog's answer replaces the tapped card instead, `edit()` sends it as editMessageText
(a card Telegram no longer has, or will not edit, is sent as a new message by the sender).

Outbound, `send()` renders one `Outgoing`: text split at Telegram's 4,096 characters, buttons as
an inline keyboard on the last part, charts and spreadsheets as sendPhoto / sendDocument, and
the platform's errors mapped to `DeliveryError` (wait, give up, or the person blocked us).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import warnings
from collections import OrderedDict
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from bot.channels.base import DeliveryError, EditImpossible, loads_body
from bot.channels.telegram_http import AiohttpRequest
from bot.core.capabilities import CAPABILITIES
from bot.core.inbox import ChannelHooks
from bot.core.messages import Incoming, IncomingFile, Kind, Outgoing, split_text

if TYPE_CHECKING:
    from bot.core.context import AppContext
    from bot.core.dispatch import Dispatcher

log = logging.getLogger(__name__)

CHANNEL = "telegram"
WEBHOOK_PATH = "/webhook/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query"]
TEXT_LIMIT = CAPABILITIES[CHANNEL].text_limit  # 4,096
CAPTION_LIMIT = 1024
PROGRESS_MEMORY = 1000  # split messages whose first parts went out before a failure


def _retry_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns about int vs timedelta here
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def delivery_error(error: TelegramError) -> DeliveryError:
    """Telegram's answer, in the sender's terms."""
    text = f"{type(error).__name__}: {error.message}"
    if isinstance(error, RetryAfter):
        return DeliveryError(text, retry_after=_retry_seconds(error))
    if isinstance(error, Forbidden):  # blocked by the user, user deactivated, kicked
        return DeliveryError(text, unreachable=True)
    if isinstance(error, BadRequest):  # a subclass of NetworkError: checked before it
        if "chat not found" in error.message.lower():
            return DeliveryError(text, unreachable=True)
        return DeliveryError(text, permanent=True)
    if isinstance(error, ChatMigrated):
        return DeliveryError(text, permanent=True)
    return DeliveryError(text)  # network errors, timeouts, server errors: retried


# Bot API answers (400) meaning the card cannot take the edit: sent as a new message instead.
EDIT_IMPOSSIBLE = (
    "message to edit not found",
    "message can't be edited",
    "there is no text in the message to edit",
)
NOT_MODIFIED = "message is not modified"


def _chat_id(external_id: str) -> int | str:
    stripped = external_id.lstrip("-")
    return int(external_id) if stripped.isdigit() else external_id


def _markup(message: Outgoing) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | None:
    if message.contact_label:
        # Sharing a contact needs a reply keyboard, which cannot hold inline buttons: the other
        # buttons become keys that send their label as text (the handler reads it as such).
        keys = [[KeyboardButton(message.contact_label, request_contact=True)]]
        keys += [[KeyboardButton(button.label) for button in row] for row in message.buttons]
        return ReplyKeyboardMarkup(keys, one_time_keyboard=True, resize_keyboard=True)
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(button.label, callback_data=button.data) for button in row]
            for row in message.buttons
        ]
    )


def parse_command(text: str) -> tuple[str, str] | None:
    """`/start@papibot CODE` → ("start", "CODE"); None when the text is not a command."""
    if not text.startswith("/"):
        return None
    head, _sep, rest = text[1:].partition(" ")
    if "\n" in head:
        head, _nl, more = head.partition("\n")
        rest = f"{more} {rest}".strip()
    command = head.split("@", 1)[0].strip().lower()
    if not command:
        return None
    return command, rest.strip()


class TelegramChannel:
    name = CHANNEL

    def __init__(
        self,
        ctx: AppContext,
        dispatcher: Dispatcher,
        *,
        poll_timeout: int = 25,
        request_timeout: float = 10.0,
    ) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher
        settings = ctx.settings
        self.data_dir = Path(settings.data_dir)
        self.poll_timeout = poll_timeout
        # Its own secret, never one derived from the secret key (anyone knowing the key, or
        # the default one, could then forge updates).
        self.webhook_secret = settings.telegram_webhook_secret
        api = settings.telegram_api_url.rstrip("/")
        self.bot = Bot(
            settings.telegram_token,
            base_url=f"{api}/bot",
            base_file_url=f"{api}/file/bot",
            request=AiohttpRequest(connection_pool_size=32, timeout=request_timeout),
            get_updates_request=AiohttpRequest(connection_pool_size=2, timeout=request_timeout),
        )
        self._ready = asyncio.Lock()
        self._initialized = False
        self._tasks: set[asyncio.Task] = set()  # callback answers, the poller, reconnects
        self._poller: asyncio.Task | None = None
        self._offset: int | None = None
        # Parts of a split message already delivered, by idempotency key, so that a retry
        # after a failure on part 3 does not send parts 1 and 2 again (best effort, in memory).
        self._progress: OrderedDict[str, list[str]] = OrderedDict()
        dispatcher.inbox.register(
            CHANNEL, ChannelHooks(download=self.download, after_handled=self._acknowledge)
        )

    # ----------------------------------------------------------------- lifecycle

    @property
    def webhook_url(self) -> str:
        """Where Telegram posts updates; empty in polling mode (no public URL or no secret)."""
        public = self.ctx.settings.public_url.rstrip("/")
        return f"{public}{WEBHOOK_PATH}" if public and self.webhook_secret else ""

    async def _ensure_ready(self) -> None:
        if self._initialized:
            return
        async with self._ready:
            if not self._initialized:
                await self.bot.initialize()  # getMe: checks the token
                self._initialized = True

    async def _connect(self) -> None:
        await self._ensure_ready()
        if self.webhook_url:
            await self.bot.set_webhook(
                self.webhook_url, secret_token=self.webhook_secret, allowed_updates=ALLOWED_UPDATES
            )
            log.info("telegram webhook set to %s", self.webhook_url)
        else:
            await self.bot.delete_webhook()  # getUpdates is refused while a webhook is set
            self._poller = self._spawn(self._poll(), "telegram-poll")
            log.info("telegram polling started")

    async def start(self) -> None:
        """Set the webhook, or start polling. A configuration error (wrong token, a webhook URL
        or secret Telegram refuses) stops the start; Telegram being unreachable does not: the
        connection is retried in the background."""
        try:
            await self._connect()
        except (InvalidToken, BadRequest):
            raise
        except TelegramError as error:
            log.warning("telegram not reachable at start (%s); retrying in background", error)
            self._spawn(self._reconnect(), "telegram-connect")

    async def _reconnect(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._connect()
                return
            except (InvalidToken, BadRequest) as error:
                log.error("telegram refused the configuration (%s); giving up", error)
                return
            except TelegramError as error:
                delay = min(delay * 2, 60.0)
                log.warning("telegram still not reachable (%s)", error)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), timeout=5)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._poller = None
        if self._offset is not None and not self.webhook_url:
            # Confirm what was handled, so a restart does not fetch it again (it would be
            # ignored as seen anyway).
            with contextlib.suppress(TelegramError, OSError):
                await self.bot.get_updates(offset=self._offset, timeout=0, limit=1)
        with contextlib.suppress(Exception):
            await self.bot.shutdown()
        self._initialized = False

    def _spawn(self, coroutine, name: str) -> asyncio.Task:  # noqa: ANN001
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self) -> None:
        """Wait until the updates received are handled and their button taps acknowledged
        (tests, and an orderly stop)."""
        await self.dispatcher.idle()
        pending = [task for task in self._tasks if task is not self._poller]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # ----------------------------------------------------------------- inbound

    def add_routes(self, app: web.Application) -> None:
        if self.webhook_url:  # polling mode serves nothing
            app.router.add_post(WEBHOOK_PATH, self._webhook)

    async def _webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not self.webhook_url:
            raise web.HTTPNotFound()
        if not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            return web.Response(status=403, text="forbidden")
        try:
            data = loads_body(await request.read())
        except ValueError:
            return web.Response(status=400, text="body is not JSON")
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return web.Response(status=400, text="not a Telegram update")
        try:
            update = Update.de_json(data, self.bot)
            self.to_incoming(update)  # PTB does not check types: a list where text should be …
        except Exception:  # noqa: BLE001  (any malformed part of an update is the sender's fault)
            return web.Response(status=400, text="not a Telegram update")
        try:
            await self.process(update)
        except Exception:  # noqa: BLE001  (the database is unavailable: not recorded)
            log.warning(
                "telegram update %s not recorded; Telegram will send it again", data["update_id"]
            )
            return web.Response(status=503, text="try again")
        return web.Response(status=200, text="ok")

    async def process(self, update: Update) -> bool:
        """Hand one update to the inbox; False when papibot does not handle its kind.

        Raises when the database is unavailable (the update is not recorded)."""
        incoming = self.to_incoming(update)
        if incoming is None:
            return False
        await self.dispatcher.accept(incoming)
        if incoming.ack_id:  # recorded: stop the button's spinner now, whatever the backlog
            self._spawn(self._answer_callback(incoming), f"telegram-answer-{incoming.update_id}")
        return True

    async def _answer_callback(self, incoming: Incoming) -> None:
        try:
            await self.bot.answer_callback_query(incoming.ack_id)
        except TelegramError as error:  # too old, or answered on a first delivery
            log.info("answerCallbackQuery %s: %s", incoming.ack_id, error)

    def _acknowledge(self, incoming: Incoming) -> None:
        """After a button tap is handled: take the buttons off the message that was tapped,
        unless a reply replaces that card (its edit sets the buttons; removing them here could
        come after it and take the new ones off)."""
        if incoming.ack_id and incoming.message_id and not incoming.card_replaced:
            self._spawn(self._remove_buttons(incoming), f"telegram-edit-{incoming.update_id}")

    async def _remove_buttons(self, incoming: Incoming) -> None:
        try:
            await self._ensure_ready()  # a `papibot worker` has not started the channel
            await self.bot.edit_message_reply_markup(
                chat_id=_chat_id(incoming.external_id),
                message_id=int(incoming.message_id),
                reply_markup=None,
            )
        except TelegramError as error:  # already removed, or the message is gone
            log.info("editMessageReplyMarkup %s: %s", incoming.message_id, error)

    def to_incoming(self, update: Update) -> Incoming | None:
        """The channel-neutral form of an update; None for what papibot does not handle
        (group chats, edits, channel posts)."""
        update_id = str(update.update_id)
        query = update.callback_query
        if query is not None:
            message = query.message
            if message is not None and message.chat.type != "private":
                return None
            chat_id = message.chat.id if message is not None else query.from_user.id
            return Incoming(
                channel=CHANNEL,
                external_id=str(chat_id),
                update_id=update_id,
                kind=Kind.button if query.data else Kind.unsupported,
                data=query.data or "",
                display_name=query.from_user.full_name,
                # Only a message that still shows buttons needs them taken off.
                message_id=str(message.message_id)
                if isinstance(message, Message) and message.reply_markup is not None
                else "",
                ack_id=str(query.id),
            )
        message = update.message
        if message is None or message.chat.type != "private":
            return None
        incoming = Incoming(
            channel=CHANNEL,
            external_id=str(message.chat.id),
            update_id=update_id,
            kind=Kind.unsupported,
            display_name=message.from_user.full_name if message.from_user else "",
            message_id=str(message.message_id),
        )
        if message.text is not None:
            command = parse_command(message.text)
            if command is not None:
                incoming.kind = Kind.command
                incoming.command, incoming.text = command
            else:
                incoming.kind = Kind.text
                incoming.text = message.text
        elif message.photo:
            largest = max(message.photo, key=lambda size: (size.file_size or 0, size.width))
            incoming.kind = Kind.photo
            incoming.text = message.caption or ""
            incoming.file = IncomingFile(
                file_name=f"{largest.file_unique_id}.jpg",
                mime="image/jpeg",
                size=largest.file_size,
                fetch=partial(self.download, largest.file_id),
                ref=largest.file_id,
            )
        elif message.document is not None:
            document = message.document
            incoming.kind = Kind.document
            incoming.text = message.caption or ""
            incoming.file = IncomingFile(
                file_name=document.file_name or "",
                mime=document.mime_type or "",
                size=document.file_size,
                fetch=partial(self.download, document.file_id),
                ref=document.file_id,
            )
        elif message.location is not None:
            incoming.kind = Kind.location
            incoming.latitude = message.location.latitude
            incoming.longitude = message.location.longitude
        elif message.contact is not None:
            incoming.kind = Kind.contact
            incoming.text = message.contact.phone_number
        return incoming

    async def download(self, file_id: str) -> bytes:
        """getFile, then the file itself from the file endpoint."""
        await self._ensure_ready()
        telegram_file = await self.bot.get_file(file_id)
        return bytes(await telegram_file.download_as_bytearray())

    async def _poll(self) -> None:
        delay = 1.0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=self._offset,
                    timeout=self.poll_timeout,
                    allowed_updates=ALLOWED_UPDATES,
                )
            except InvalidToken:
                log.error("telegram rejected the token; polling stops")
                return
            except TelegramError as error:  # Conflict (a webhook or a second poller), network
                log.warning("getUpdates failed (%s); retrying in %.0f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            for update in updates:
                try:
                    await self.process(update)
                except Exception:  # noqa: BLE001  (the database is down: keep the offset)
                    log.exception("telegram update %s not handled; will retry", update.update_id)
                    await asyncio.sleep(delay)
                    break
                self._offset = update.update_id + 1

    # ----------------------------------------------------------------- outbound

    def _media_path(self, relative: str) -> Path:
        root = self.data_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise DeliveryError(
                f"file not found under the data directory: {relative}", permanent=True
            )
        return path

    def _steps(self, chat_id: int | str, message: Outgoing) -> list:
        """The platform calls for one message, in order; each takes the reply markup (only the
        last one is given it) and returns the sent Message."""
        markup_steps = []
        text = message.text if message.text.strip() else ""
        media_path = message.photo_path or message.document_path
        caption = None
        if media_path and text and len(text) <= CAPTION_LIMIT:
            caption, text = text, ""
        for part in split_text(text, TEXT_LIMIT) if text else []:
            markup_steps.append(partial(self._send_text, chat_id, part))
        if message.photo_path:
            path = self._media_path(message.photo_path)
            markup_steps.append(partial(self._send_photo, chat_id, path, caption))
        elif message.document_path:
            path = self._media_path(message.document_path)
            name = message.document_name or path.name
            markup_steps.append(partial(self._send_document, chat_id, path, name, caption))
        if not markup_steps:
            raise DeliveryError("empty message: no text and no file", permanent=True)
        return markup_steps

    async def _send_text(self, chat_id, text: str, markup) -> Message:  # noqa: ANN001
        return await self.bot.send_message(chat_id, text, reply_markup=markup)

    async def _send_photo(self, chat_id, path: Path, caption, markup) -> Message:  # noqa: ANN001
        data = await asyncio.to_thread(path.read_bytes)
        return await self.bot.send_photo(
            chat_id, photo=data, caption=caption, reply_markup=markup, filename=path.name
        )

    async def _send_document(self, chat_id, path: Path, name: str, caption, markup) -> Message:  # noqa: ANN001
        data = await asyncio.to_thread(path.read_bytes)
        return await self.bot.send_document(
            chat_id, document=data, filename=name, caption=caption, reply_markup=markup
        )

    async def send(self, external_id: str, message: Outgoing, idempotency_key: str) -> str:
        try:
            await self._ensure_ready()
        except TelegramError as error:
            raise delivery_error(error) from error
        chat_id = _chat_id(external_id)
        steps = self._steps(chat_id, message)
        markup = _markup(message)
        delivered = self._progress.get(idempotency_key, [])
        try:
            for index, step in enumerate(steps):
                if index < len(delivered):
                    continue  # sent before a failure on a later part
                last = index == len(steps) - 1
                sent = await step(markup if last else None)
                delivered.append(str(sent.message_id))
                if not last:
                    self._remember(idempotency_key, delivered)
        except TelegramError as error:
            raise delivery_error(error) from error
        self._progress.pop(idempotency_key, None)
        return delivered[-1]

    async def edit(self, external_id: str, message_id: str, message: Outgoing) -> str:
        """editMessageText on the tapped card: its text and inline buttons become the
        message's (no buttons: the keyboard goes). "unchanged" when Telegram says the card
        already reads so."""
        text = message.text.strip()
        if not message.text_only or not text or len(message.text) > TEXT_LIMIT:
            raise EditImpossible("not a text that fits one message")
        if not message_id.isdigit():
            raise EditImpossible(f"not a Telegram message id: {message_id!r}")
        try:
            await self._ensure_ready()
            await self.bot.edit_message_text(
                message.text,
                chat_id=_chat_id(external_id),
                message_id=int(message_id),
                reply_markup=_markup(message),
            )
        except BadRequest as error:
            said = error.message.lower()
            if NOT_MODIFIED in said:
                return "unchanged"
            if any(reason in said for reason in EDIT_IMPOSSIBLE):
                raise EditImpossible(error.message) from error
            raise delivery_error(error) from error
        except TelegramError as error:
            raise delivery_error(error) from error
        return "edited"

    def _remember(self, key: str, delivered: list[str]) -> None:
        self._progress[key] = delivered
        self._progress.move_to_end(key)
        while len(self._progress) > PROGRESS_MEMORY:
            self._progress.popitem(last=False)
