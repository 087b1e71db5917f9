"""Fake Zalo platforms on loopback, behaving like the documented APIs, errors and limits included.

One aiohttp server plays four parts (every base URL setting points at it):

* the Zalo Bot API — `POST /bot{TOKEN}/{method}`: getMe, getUpdates (one update per answer,
  HTTP 408 when none came within the timeout), setWebhook, deleteWebhook, sendMessage
  (text ≤ 2,000), sendPhoto (fetches the photo URL, as Zalo does), sendChatAction;
* the Zalo OA Open API — `POST /v3.0/oa/message/cs` and `POST /v2.0/oa/upload/image`
  (header `access_token`; errors with HTTP 200 and `error != 0`);
* Zalo OAuth — `POST /v4/oa/access_token`: single-use rotating refresh tokens;
* a CDN serving the images users "send".

Every call is recorded. Hooks: `expire_access_token()` (-216), `rate_limit_next` (-32 / 429),
`not_following` (-213), `outside_window` (-230), `bot_blocked` (403).

Like Zalo, the OA answers -230 to a consultation message for anyone who has not written to it
within `window` (7 days) on the fake's `clock`: the fake learns that someone wrote from the
events it signs (`oa_headers`) or from `user_wrote`. `receipt()` posts a signed
`user_received_message` / `user_seen_message` event to our webhook; with `receipts_to` set,
every accepted consultation message gets one, unless its user is in `undelivered`.

`ZaloStack` wires papibot around it for journey tests: a world on a real database, the channel,
the dispatcher and the sender, and our own aiohttp server on loopback for webhooks and media.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from bot.channels.sender import Sender
from bot.channels.zalo_oa import signature
from bot.core.context import AppContext
from bot.web.media import add_media_routes
from handlers.router import Dispatcher

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "zalo"
BOT_TEXT_LIMIT = 2000
OA_TEXT_LIMIT = 2000
OA_MAX_BUTTONS = 5
OA_IMAGE_LIMIT = 1024 * 1024
OA_BUTTON_TYPES = {"oa.query.hide", "oa.query.show", "oa.open.url", "oa.open.phone", "oa.open.sms"}


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def jpeg_bytes(width: int = 64, height: int = 48, color: str = "green", quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def noisy_png(width: int, height: int) -> bytes:
    """An image that compresses badly (random pixels): large as PNG, needs real downscaling."""
    import os

    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Call:
    api: str  # bot | oa | oauth | cdn
    method: str  # bot method or URL path
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeZalo:
    def __init__(
        self, bot_token: str = "1234567:fake-bot-token", app_id: str = "4321987654321"
    ) -> None:
        self.bot_token = bot_token
        self.app_id = app_id
        self.app_secret = "fake-app-secret"
        self.calls: list[Call] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)
        # Zalo Bot
        self.updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.webhook: dict[str, Any] = {}
        self.bot_sent: list[dict[str, Any]] = []
        self.bot_blocked: set[str] = set()
        self.fetched_photos: list[tuple[str, int, bytes]] = []  # url, status, bytes
        # Zalo OA
        self.access_token = "oa-access-1"
        self.refresh_token = "oa-refresh-1"
        self.valid_access_tokens = {self.access_token}
        self.oauth_delay = 0.0
        self.oauth_calls = 0
        self.rate_limit_next = 0
        self.not_following: set[str] = set()
        self.outside_window: set[str] = set()
        self.enforce_window = True
        self.window = timedelta(days=7)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.last_wrote: dict[str, datetime] = {}
        # Receipts for consultation messages: posted to this webhook unless the user is listed.
        self.receipts_to: tuple[str, str] | None = None  # (our webhook URL, OA secret key)
        self.undelivered: set[str] = set()
        self._receipts: set[asyncio.Task] = set()
        self.oa_sent: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        # CDN
        self.cdn: dict[str, bytes] = {}
        self.cdn_delay = 0.0  # seconds before a CDN download answers

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeZalo:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._bot)
        app.router.add_post("/v3.0/oa/message/cs", self._oa_send)
        app.router.add_post("/v2.0/oa/upload/image", self._oa_upload)
        app.router.add_post("/v4/oa/access_token", self._oauth)
        app.router.add_get("/cdn/{name}", self._cdn)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def host(self) -> str:
        """`127.0.0.1:port`, as the `zalo_media_hosts` setting lists it."""
        return self.url.split("://", 1)[1]

    def next_id(self) -> str:
        return f"{next(self._ids):032x}"

    def calls_to(self, api: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.api == api and (method is None or c.method == method)]

    # ------------------------------------------------------------------ CDN

    def add_cdn(self, name: str, data: bytes) -> str:
        self.cdn[name] = data
        return f"{self.url}/cdn/{name}"

    async def _cdn(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.calls.append(Call("cdn", name))
        if self.cdn_delay:
            await asyncio.sleep(self.cdn_delay)
        if name not in self.cdn:
            return web.Response(status=404)
        return web.Response(body=self.cdn[name], content_type="image/jpeg")

    # ------------------------------------------------------------------ Zalo Bot API

    @staticmethod
    def _bot_error(
        code: int, description: str, status: int | None = None, **extra: Any
    ) -> web.Response:
        body = {"ok": False, "error_code": code, "description": description, **extra}
        return web.json_response(body, status=status or code)

    async def _bot(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return self._bot_error(400, "Bad Request: invalid JSON")
        self.calls.append(Call("bot", method, body))
        if token != self.bot_token:
            return self._bot_error(401, "Unauthorized")
        if self.rate_limit_next and method.startswith("send"):
            self.rate_limit_next -= 1
            return self._bot_error(429, "Too Many Requests", parameters={"retry_after": 1})
        handler = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendChatAction": self._send_chat_action,
        }.get(method)
        if handler is None:
            return self._bot_error(404, "Not Found: method not found")
        return await handler(body)

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _get_me(self, _body: dict) -> web.Response:
        return self._ok({"id": "7890", "account_name": "bot.papibot", "account_type": "BASIC"})

    async def _get_updates(self, body: dict) -> web.Response:
        if self.webhook:
            return self._bot_error(409, "Conflict: webhook is active")
        timeout = float(body.get("timeout") or 0)
        try:
            update = await asyncio.wait_for(self.updates.get(), timeout=min(timeout, 5.0))
        except TimeoutError:
            return self._bot_error(408, "Request timeout")
        return self._ok(update)

    async def _set_webhook(self, body: dict) -> web.Response:
        url, secret = str(body.get("url") or ""), str(body.get("secret_token") or "")
        if not url.startswith(("https://", "http://")) or not 8 <= len(secret) <= 256:
            return self._bot_error(400, "Bad Request: url or secret_token invalid")
        self.webhook = {"url": url, "secret_token": secret}
        return self._ok({"url": url, "updated_at": 1750316131602})

    async def _delete_webhook(self, _body: dict) -> web.Response:
        self.webhook = {}
        return self._ok({"url": "", "updated_at": 1750316131602})

    def _check_chat(self, body: dict) -> web.Response | None:
        chat_id = body.get("chat_id")
        if not isinstance(chat_id, str) or not chat_id:
            return self._bot_error(400, "Bad Request: chat_id is required")
        if chat_id in self.bot_blocked:
            return self._bot_error(403, "Forbidden: the user is not allowed")
        return None

    async def _send_message(self, body: dict) -> web.Response:
        problem = self._check_chat(body)
        if problem:
            return problem
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return self._bot_error(400, "Bad Request: text is required")
        if len(text) > BOT_TEXT_LIMIT:
            return self._bot_error(400, "Bad Request: text is too long")
        message_id = self.next_id()
        self.bot_sent.append({"method": "sendMessage", "message_id": message_id, **body})
        return self._ok({"message_id": message_id, "date": 1750316131602})

    async def _send_photo(self, body: dict) -> web.Response:
        problem = self._check_chat(body)
        if problem:
            return problem
        url = body.get("photo")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return self._bot_error(400, "Bad Request: photo must be a URL")
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            data = await response.read()
            self.fetched_photos.append((url, response.status, data))
            if response.status != 200:
                return self._bot_error(400, "Bad Request: cannot download photo")
        message_id = self.next_id()
        self.bot_sent.append({"method": "sendPhoto", "message_id": message_id, **body})
        return self._ok({"message_id": message_id, "date": 1750316131602})

    async def _send_chat_action(self, body: dict) -> web.Response:
        problem = self._check_chat(body)
        return problem or self._ok(True)

    def bot_texts(self, chat_id: str | None = None) -> list[str]:
        return [
            m.get("text") or m.get("caption") or ""
            for m in self.bot_sent
            if chat_id is None or m["chat_id"] == chat_id
        ]

    # ------------------------------------------------------------------ Zalo OA Open API

    @staticmethod
    def _oa_error(error: int, message: str) -> web.Response:
        return web.json_response({"error": error, "message": message})  # HTTP 200, as Zalo does

    def expire_access_token(self) -> None:
        """The current access token stops working (Zalo answers -216 until a refresh)."""
        self.valid_access_tokens.discard(self.access_token)

    def _oa_auth(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("access_token", "")
        if not token:
            return self._oa_error(-124, "Access token is missing")
        if token not in self.valid_access_tokens:
            return self._oa_error(-216, "Access token is invalid")
        if self.rate_limit_next:
            self.rate_limit_next -= 1
            return self._oa_error(-32, "Request exceeds the rate limit")
        return None

    async def _oa_send(self, request: web.Request) -> web.Response:
        raw = await request.text()
        try:
            body = json.loads(raw, parse_int=str)
        except ValueError:
            return self._oa_error(-201, "Body is not JSON")
        self.calls.append(Call("oa", request.path, body, dict(request.headers)))
        problem = self._oa_auth(request)
        if problem:
            return problem
        recipient = (body.get("recipient") or {}).get("user_id")
        message = body.get("message")
        if (
            not isinstance(recipient, str)
            or not recipient.isdigit()
            or not isinstance(message, dict)
        ):
            return self._oa_error(-201, "Parameters invalid: recipient.user_id / message")
        if recipient in self.not_following:
            return self._oa_error(-213, "User has not followed the OA")
        if recipient in self.outside_window or not self.in_window(recipient):
            return self._oa_error(-230, "User has not interacted with the OA in the last 7 days")
        invalid = self._invalid_message(message)
        if invalid:
            return self._oa_error(-201, f"Parameters invalid: {invalid}")
        message_id = self.next_id()
        self.oa_sent.append({"user_id": recipient, "message_id": message_id, "message": message})
        if self.receipts_to is not None and recipient not in self.undelivered:
            task = asyncio.create_task(self._later_receipt(message_id, recipient))
            self._receipts.add(task)
            task.add_done_callback(self._receipts.discard)
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {"message_id": message_id, "user_id": recipient},
            }
        )

    def _invalid_message(self, message: dict) -> str:
        text = message.get("text")
        attachment = message.get("attachment")
        if text is None and attachment is None:
            return "message needs text or attachment"
        if text is not None and (
            not isinstance(text, str) or not text or len(text) > OA_TEXT_LIMIT
        ):
            return "text empty or over 2000 characters"
        if attachment is None:
            return ""
        if attachment.get("type") != "template" or not isinstance(attachment.get("payload"), dict):
            return "attachment.type must be template"
        payload = attachment["payload"]
        kind = payload.get("template_type")
        if kind == "button":
            buttons = payload.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= OA_MAX_BUTTONS:
                return "1 to 5 buttons"
            for button in buttons:
                if button.get("type") not in OA_BUTTON_TYPES or not button.get("title"):
                    return "button type/title"
                if len(button["title"]) > 100 or not isinstance(button.get("payload"), str | dict):
                    return "button title/payload"
            if not text:
                return "button template needs text"
            return ""
        if kind == "media":
            elements = payload.get("elements") or []
            if len(elements) != 1 or elements[0].get("media_type") not in ("image", "gif"):
                return "one image element"
            if elements[0].get("attachment_id") not in self.uploads and not elements[0].get("url"):
                return "unknown attachment_id"
            return ""
        return f"template_type {kind!r}"

    async def _oa_upload(self, request: web.Request) -> web.Response:
        self.calls.append(Call("oa", request.path, None, dict(request.headers)))
        problem = self._oa_auth(request)
        if problem:
            return problem
        try:
            form = await request.post()
        except ValueError:
            return self._oa_error(-201, "multipart body expected")
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return self._oa_error(-201, "field file is required")
        data = upload.file.read()
        if len(data) > OA_IMAGE_LIMIT:
            return self._oa_error(-210, "File size exceeds the 1 MB limit")
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in ("JPEG", "PNG"):
                    return self._oa_error(-211, "Only JPG and PNG are accepted")
        except OSError:
            return self._oa_error(-211, "Not an image")
        attachment_id = "att" + hashlib.sha256(data).hexdigest()[:40]
        self.uploads[attachment_id] = data
        return web.json_response(
            {"error": 0, "message": "Success", "data": {"attachment_id": attachment_id}}
        )

    def oa_texts(self, user_id: str | None = None) -> list[str]:
        return [
            m["message"].get("text", "") for m in self.oa_sent if user_id in (None, m["user_id"])
        ]

    # ------------------------------------------------------------------ Zalo OAuth

    async def _oauth(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.calls.append(Call("oauth", request.path, dict(form), dict(request.headers)))
        self.oauth_calls += 1
        if self.oauth_delay:
            await asyncio.sleep(self.oauth_delay)
        if (
            request.headers.get("secret_key") != self.app_secret
            or form.get("app_id") != self.app_id
        ):
            return web.json_response(
                {
                    "error": -14002,
                    "error_name": "Invalid app",
                    "error_description": "app_id or secret_key is wrong",
                }
            )
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != self.refresh_token
        ):
            return web.json_response(
                {
                    "error": -14014,
                    "error_name": "Invalid refresh token",
                    "error_description": "Refresh token is invalid or already used",
                }
            )
        number = int(self.access_token.rsplit("-", 1)[1]) + 1
        self.access_token = f"oa-access-{number}"
        self.refresh_token = f"oa-refresh-{number}"  # the old one is spent
        self.valid_access_tokens.add(self.access_token)
        return web.json_response(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_in": "90000",
            }
        )

    # ------------------------------------------------------------------ signing OA webhooks

    def oa_headers(self, raw: bytes, secret_key: str, timestamp: str) -> dict[str, str]:
        self._note_interaction(raw)
        mac = signature(self.app_id, raw, timestamp, secret_key)
        return {"X-ZEvent-Signature": f"mac={mac}", "Content-Type": "application/json"}

    # ------------------------------------------------------------------ the interaction window

    def user_wrote(self, user_id: str, at: datetime | None = None) -> None:
        self.last_wrote[user_id] = at or self.clock()

    def in_window(self, user_id: str) -> bool:
        if not self.enforce_window:
            return True
        wrote = self.last_wrote.get(user_id)
        return wrote is not None and self.clock() - wrote <= self.window

    def _note_interaction(self, raw: bytes) -> None:
        """An event the fake "sends" for a user who wrote (or followed) opens their window."""
        try:
            body = json.loads(raw, parse_int=str)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        event = str(body.get("event_name") or "")
        who = body.get("follower") if event == "follow" else body.get("sender")
        if (event.startswith("user_send_") or event == "follow") and isinstance(who, dict):
            self.user_wrote(str(who.get("id") or ""))

    async def _later_receipt(self, message_id: str, user_id: str) -> None:
        assert self.receipts_to is not None
        await asyncio.sleep(0.1)  # Zalo reports delivery after it answered the send
        await self.receipt(*self.receipts_to, message_id, user_id=user_id)

    async def settle_receipts(self) -> None:
        while self._receipts:
            await asyncio.gather(*list(self._receipts), return_exceptions=True)

    async def receipt(
        self, webhook_url: str, secret_key: str, message_id: str, seen: bool = False, **extra: Any
    ) -> int:
        """Post Zalo's receipt for one message to our webhook; returns the HTTP status."""
        timestamp = str(int(self.clock().timestamp() * 1000))
        body = {
            "app_id": self.app_id,
            "event_name": "user_seen_message" if seen else "user_received_message",
            "sender": {"id": "oa-" + self.app_id},
            "recipient": {"id": extra.pop("user_id", "")},
            "message": {"msg_id": message_id, **extra},
            "timestamp": timestamp,
        }
        raw = json.dumps(body).encode()
        headers = self.oa_headers(raw, secret_key, timestamp)
        async with (
            aiohttp.ClientSession() as session,
            session.post(webhook_url, data=raw, headers=headers) as response,
        ):
            await response.read()
            return response.status


# ---------------------------------------------------------------------- papibot around the fake


@dataclass
class ZaloStack:
    app: AppContext
    fake: FakeZalo
    channel: Any
    dispatcher: Dispatcher
    sender: Sender
    url: str
    client: aiohttp.ClientSession
    runner: web.AppRunner

    async def post(self, path: str, data: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        async with self.client.post(self.url + path, data=data, headers=headers) as response:
            await response.read()
            return response

    async def settle(self) -> int:
        """Let webhook handling finish, then deliver what it queued."""
        await self.channel.wait_idle()
        return await self.sender.drain_once()

    async def close(self) -> None:
        await self.channel.stop()
        await self.client.close()
        await self.runner.cleanup()
        await self.fake.stop()


async def start_stack(app: AppContext, channel_class: type, **settings: Any) -> ZaloStack:
    """Our server on loopback with one Zalo channel, pointed at a fresh fake Zalo."""
    fake = await FakeZalo().start()
    config = app.settings
    config.zalo_bot_token = fake.bot_token
    config.zalo_bot_api_url = fake.url
    config.zalo_bot_webhook_secret = "bot-webhook-secret-123"
    config.zalo_oa_app_id = fake.app_id
    config.zalo_oa_app_secret = fake.app_secret
    config.zalo_oa_secret_key = "oa-secret-key"
    config.zalo_oa_access_token = fake.access_token
    config.zalo_oa_refresh_token = fake.refresh_token
    config.zalo_oa_api_url = fake.url
    config.zalo_oauth_url = fake.url
    config.zalo_media_hosts = fake.host  # the fake CDN on loopback, allowed explicitly
    for key, value in settings.items():
        setattr(config, key, value)
    holder: dict[str, Sender] = {}
    dispatcher = Dispatcher(app, after_commit=lambda: holder["sender"].wake())
    channel = channel_class(app, dispatcher)
    sender = Sender(app.db, {channel.name: channel}, limits={}, max_attempts=3)
    holder["sender"] = sender
    web_app = web.Application(client_max_size=1024 * 1024)
    # Webhook mode is known when the routes are mounted; the port only once listening.
    config.public_url = config.public_url or "http://127.0.0.1"
    channel.add_routes(web_app)
    add_media_routes(web_app, app)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    config.public_url = url
    return ZaloStack(
        app=app,
        fake=fake,
        channel=channel,
        dispatcher=dispatcher,
        sender=sender,
        url=url,
        client=aiohttp.ClientSession(),
        runner=runner,
    )
