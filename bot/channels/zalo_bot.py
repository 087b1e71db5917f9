"""Zalo Bot platform (bot.zaloplatforms.com): a Telegram-like bot API without buttons.

Calls are `POST {zalo_bot_api_url}/bot{TOKEN}/{method}` with a JSON body, answered
`{"ok": true, "result": …}` or `{"ok": false, "error_code": …, "description": …}`.

Updates arrive on `POST /webhook/zalo-bot` (header `X-Bot-Api-Secret-Token`), or, without a
public URL, by long polling `getUpdates` (one update per answer; HTTP 408 means none came).
Menus are numbered lines answered by number (the outbox remembers the menu for the router),
photos are sent as a signed link to `GET /media/{token}` because sendPhoto takes only a URL.

`ZaloHTTPChannel` holds what the two Zalo channels share: the HTTP client, downloads from the
Zalo CDN, and handing a webhook's updates to the inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.base import DeliveryError, loads_body
from bot.core.capabilities import CAPABILITIES
from bot.core.context import AppContext
from bot.core.inbox import ChannelHooks
from bot.core.messages import Incoming, IncomingFile, Kind, Outgoing, numbered_menu, split_text
from bot.core.services.evidence import MAX_PHOTO_BYTES
from bot.web.media import MediaError, add_media_routes, media_url

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook/zalo-bot"
SECRET_HEADER = "X-Bot-Api-Secret-Token"
POLL_TIMEOUT_SECONDS = 30
TEXT_LIMIT = CAPABILITIES["zalo_bot"].text_limit  # 2,000 characters


def update_key(raw: str) -> str:
    """A platform id as an inbound update id (the column holds 64 characters)."""
    return raw if len(raw) <= 64 else hashlib.sha256(raw.encode()).hexdigest()


class ZaloHTTPChannel:
    """HTTP client, CDN downloads and quick webhook answers, shared by both Zalo channels."""

    name = "zalo"

    def __init__(self, ctx: AppContext, dispatcher: Any) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.dispatcher = dispatcher
        self._http: aiohttp.ClientSession | None = None
        dispatcher.inbox.register(self.name, ChannelHooks(download=self.download))

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._http

    async def download(self, url: str, limit: int = MAX_PHOTO_BYTES) -> bytes:
        """A file the user sent, from the platform's CDN (refused above `limit` bytes)."""
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"not a web address: {url[:80]!r}")
        async with self.http().get(url, timeout=aiohttp.ClientTimeout(total=60)) as response:
            response.raise_for_status()
            if response.content_length is not None and response.content_length > limit:
                return b"\0" * (limit + 1)  # store_photo answers "too large", nothing is kept
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    return b"\0" * (limit + 1)
                chunks.append(chunk)
            return b"".join(chunks)

    def photo_file(
        self, url: str, name: str = "photo.jpg", size: int | None = None
    ) -> IncomingFile:
        async def fetch() -> bytes:
            return await self.download(url)

        return IncomingFile(file_name=name, mime="image/jpeg", size=size, fetch=fetch, ref=url)

    async def dispatch(self, incomings: list[Incoming]) -> web.Response:
        """Record the updates and answer; the inbox's worker handles them right after, so a
        slow photo download never keeps Zalo waiting past its two seconds."""
        try:
            for incoming in incomings:
                await self.dispatcher.accept(incoming)
        except Exception:  # noqa: BLE001  (the database is unavailable: not recorded)
            log.warning("%s update not recorded; the platform will send it again", self.name)
            return web.json_response({"ok": False}, status=503)
        return web.json_response({"ok": True})

    async def wait_idle(self) -> None:
        """Wait until the updates received are handled (tests, and an orderly stop)."""
        await self.dispatcher.idle()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.wait_idle(), timeout=10)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def link(self, path: str) -> str | None:
        """A signed public link to a file under the data directory; None when impossible."""
        try:
            return media_url(self.settings, path)
        except MediaError as error:
            log.warning("%s: no media link for %s: %s", self.name, path, error)
            return None


class ZaloBotChannel(ZaloHTTPChannel):
    name = "zalo_bot"

    def __init__(self, ctx: AppContext, dispatcher: Any) -> None:
        super().__init__(ctx, dispatcher)
        self._poller: asyncio.Task | None = None
        self.poll_timeout = POLL_TIMEOUT_SECONDS

    # ------------------------------------------------------------------ platform calls

    @property
    def api_base(self) -> str:
        return f"{self.settings.zalo_bot_api_url.rstrip('/')}/bot{self.settings.zalo_bot_token}"

    async def call(
        self, method: str, payload: dict[str, Any] | None = None, http_timeout: float = 30
    ) -> Any:
        """One API call; returns `result` or raises DeliveryError (None: HTTP 408, no update)."""
        try:
            async with self.http().post(
                f"{self.api_base}/{method}",
                json=payload or {},
                timeout=aiohttp.ClientTimeout(total=http_timeout),
            ) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise DeliveryError(f"Zalo Bot {method}: {type(error).__name__}: {error}") from error
        if status == 408 and method == "getUpdates":
            return None
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {}
        if status == 200 and isinstance(body, dict) and body.get("ok") is True:
            return body.get("result")
        if not isinstance(body, dict):
            body = {}
        raise self._error(method, status, body)

    @staticmethod
    def _error(method: str, status: int, body: dict[str, Any]) -> DeliveryError:
        code = body.get("error_code") or status
        try:
            code = int(code)
        except (TypeError, ValueError):
            code = status
        description = str(body.get("description") or "")[:300]
        message = f"Zalo Bot {method}: {code} {description}".strip()
        if code == 429 or status == 429:
            parameters = body.get("parameters") or {}
            try:
                retry_after = float(parameters.get("retry_after", 5))
            except (TypeError, ValueError, AttributeError):
                retry_after = 5.0
            return DeliveryError(message, retry_after=retry_after)
        if code == 403:  # the user blocked the bot or left the chat
            return DeliveryError(message, unreachable=True)
        if code == 408 or code >= 500 or status >= 500:
            return DeliveryError(message)
        return DeliveryError(message, permanent=True)  # 400, 401, 404 …: retrying cannot help

    # ------------------------------------------------------------------ sending

    async def send(self, external_id: str, message: Outgoing, idempotency_key: str) -> str:
        text, _menu = numbered_menu(message)  # no buttons on this platform
        if message.document_path:
            url = self.link(message.document_path)
            name = message.document_name or "tệp"
            text = f"{text}\n\n📎 {name}: {url}" if url else text
        parts = split_text(text, TEXT_LIMIT) if text else []
        last_id = ""
        if message.photo_path:
            url = self.link(message.photo_path)
            if url:
                payload: dict[str, Any] = {"chat_id": external_id, "photo": url}
                if len(parts) == 1:
                    payload["caption"] = parts.pop()
                result = await self.call("sendPhoto", payload)
                last_id = self._message_id(result)
        for part in parts:
            result = await self.call("sendMessage", {"chat_id": external_id, "text": part})
            last_id = self._message_id(result)
        return last_id

    @staticmethod
    def _message_id(result: Any) -> str:
        if isinstance(result, dict):
            return str(result.get("message_id") or "")
        return ""

    # ------------------------------------------------------------------ receiving

    def to_incoming(self, update: dict[str, Any]) -> Incoming | None:
        """One platform update as an Incoming; None for what we do not handle."""
        if not isinstance(update, dict):
            return None
        event = str(update.get("event_name") or "")
        message = update.get("message")
        if not isinstance(message, dict):
            return None
        sender = message.get("from") if isinstance(message.get("from"), dict) else {}
        chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
        if sender.get("is_bot") is True:
            return None
        chat_id = str(chat.get("id") or sender.get("id") or "")
        message_id = str(message.get("message_id") or "")
        if not chat_id or not message_id or len(chat_id) > 64:
            return None
        base = {
            "channel": self.name,
            "external_id": chat_id,
            "update_id": update_key(message_id),
            "display_name": str(sender.get("display_name") or sender.get("name") or "")[:200],
            "message_id": message_id,
        }
        if event == "message.text.received":
            text = str(message.get("text") or "")
            stripped = text.strip()
            if stripped.startswith("/") and len(stripped) > 1:
                command, _sep, rest = stripped[1:].partition(" ")
                return Incoming(
                    kind=Kind.command,
                    command=command.split("@", 1)[0].lower(),
                    text=rest.strip(),
                    **base,
                )
            return Incoming(kind=Kind.text, text=text, **base)
        if event == "message.image.received":
            url = str(message.get("photo_url") or message.get("photo") or "")
            if not url:
                return Incoming(kind=Kind.unsupported, **base)
            return Incoming(
                kind=Kind.photo,
                text=str(message.get("caption") or ""),
                file=self.photo_file(url),
                **base,
            )
        if event in ("message.sticker.received", "message.unsupported.received"):
            return Incoming(kind=Kind.unsupported, **base)
        return None

    @staticmethod
    def unwrap(body: Any) -> list[dict[str, Any]]:
        """Updates from a webhook body or a getUpdates result: bare, wrapped, or a list."""
        if isinstance(body, dict) and "result" in body and "event_name" not in body:
            body = body["result"]
        if isinstance(body, dict):
            return [body]
        if isinstance(body, list):
            return [item for item in body if isinstance(item, dict)]
        return []

    async def webhook(self, request: web.Request) -> web.Response:
        expected = self.settings.zalo_bot_webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return web.Response(status=403, text="forbidden")
        try:
            body = loads_body(await request.read())
        except ValueError:
            return web.Response(status=400, text="not json")
        incomings = [i for i in map(self.to_incoming, self.unwrap(body)) if i is not None]
        return await self.dispatch(incomings)

    async def poll_once(self) -> int:
        """One long poll; returns how many updates were handled."""
        result = await self.call(
            "getUpdates", {"timeout": str(self.poll_timeout)}, http_timeout=self.poll_timeout + 15
        )
        incomings = [i for i in map(self.to_incoming, self.unwrap(result)) if i is not None]
        for incoming in incomings:
            await self.dispatcher.accept(incoming)  # a repeat does nothing
        return len(incomings)

    async def _poll_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self.poll_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001  (keep polling through network trouble)
                failures += 1
                delay = min(2.0**failures, 60.0)
                if isinstance(error, DeliveryError) and error.retry_after:
                    delay = error.retry_after
                log.warning("Zalo Bot getUpdates failed (%s); again in %.0fs", error, delay)
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ lifecycle

    @property
    def webhook_url(self) -> str:
        return self.settings.public_url.rstrip("/") + WEBHOOK_PATH

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.webhook)
        add_media_routes(app, self.settings)

    async def start(self) -> None:
        """Webhook when there is a public URL and a secret; long polling otherwise."""
        if self.settings.public_url and self.settings.zalo_bot_webhook_secret:
            await self.call(
                "setWebhook",
                {"url": self.webhook_url, "secret_token": self.settings.zalo_bot_webhook_secret},
            )
            log.info("Zalo Bot webhook set to %s", self.webhook_url)
            return
        with contextlib.suppress(DeliveryError):
            await self.call("deleteWebhook")
        self._poller = asyncio.create_task(self._poll_forever(), name="zalo-bot-poll")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        await self.close()
