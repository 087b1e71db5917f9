"""A fake Telegram Bot API on loopback: the documented methods papibot uses, their errors and
limits, and hooks for a test to play the people on the other side.

    fake = FakeTelegram(token="123456:TEST", limit_per_second=30)
    await fake.start()                      # fake.api_url → settings.telegram_api_url
    await fake.deliver(fake.command(1001, "start", "ABCD2345"))   # webhook POST or getUpdates
    fake.sent_to(1001)                      # what the bot sent that chat
    await fake.deliver(fake.press(1001, "done:12"))               # tap a button the bot sent
    fake.block(1001)                        # 403 Forbidden: bot was blocked by the user
    await fake.close()

Like the real API: `/bot<token>/<method>` answers `{"ok": true, "result": …}` or
`{"ok": false, "error_code": …, "description": …}`; parameters come as a query string,
form fields, JSON or multipart; files are served from `/file/bot<token>/<file_path>`.
Every call is recorded (accepted or not) in `calls`.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # bots cannot download bigger files
SEND_METHODS = {"sendmessage", "sendphoto", "senddocument"}
INT_PARAMS = {"chat_id", "message_id", "offset", "limit", "timeout", "max_connections"}
JSON_PARAMS = {"reply_markup", "allowed_updates"}
BOOL_PARAMS = {"drop_pending_updates", "show_alert"}


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


@dataclass
class Call:
    method: str  # as spelled in the Bot API (sendMessage …)
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]]  # part name → (file name, content)
    at: float  # time.monotonic()
    status: int = 200
    description: str = ""
    result: Any = None  # what an accepted call answered (a sent message's JSON …)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes


@dataclass
class SentMessage:
    """A message the bot sent, as it now stands (buttons can be edited away)."""

    chat_id: int
    message_id: int
    kind: str  # text | photo | document
    text: str = ""  # text or caption
    reply_markup: dict | None = None
    content: bytes = b""
    file_name: str = ""
    media: Any = None  # the photo sizes or document object, as the API showed them

    def callback_data(self) -> list[str]:
        if not self.reply_markup:
            return []
        return [
            button.get("callback_data", "")
            for row in self.reply_markup.get("inline_keyboard", [])
            for button in row
        ]


@dataclass
class FakeTelegram:
    token: str = "123456:TEST-TOKEN"
    limit_per_second: int | None = None  # sends over this many in any second → 429
    retry_after: int = 1  # seconds, as the 429 tells
    bot_username: str = "papi_test_bot"
    max_long_poll: float = 50.0

    calls: list[Call] = field(default_factory=list)
    messages: list[SentMessage] = field(default_factory=list)  # sent by the bot, in order
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_deliveries: list[tuple[int, int]] = field(default_factory=list)  # (update id, status)
    blocked: set[int] = field(default_factory=set)
    chats: dict[int, dict] = field(default_factory=dict)  # users who started the bot

    def __post_init__(self) -> None:
        self.bot_id = int(self.token.split(":", 1)[0])
        self._pending: list[dict] = []
        self._confirmed = 0  # updates below this id were confirmed by an offset
        self._next_update = 1000
        self._next_message: dict[int, int] = {}
        self._next_file = 1
        self._next_query = 1
        self._files: dict[str, StoredFile] = {}
        self._queries: dict[str, bool] = {}  # callback query id → answered
        self._by_id: dict[tuple[int, int], SentMessage] = {}
        self._accepted_sends: list[float] = []
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._client: ClientSession | None = None
        self.api_url = ""

    # ------------------------------------------------------------------ server

    async def start(self) -> str:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.api_url = f"http://{host}:{port}"
        self._client = ClientSession()
        return self.api_url

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await self._params(request)
        call = Call(method=method, params=params, files=files, at=time.monotonic())
        self.calls.append(call)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = getattr(self, f"_m_{method.lower()}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            if method.lower() in SEND_METHODS:
                self._check_send(params)
            result = await handler(params, files)
        except ApiError as error:
            call.status, call.description = error.code, error.description
            body: dict[str, Any] = {
                "ok": False,
                "error_code": error.code,
                "description": error.description,
            }
            if error.parameters:
                body["parameters"] = error.parameters
            return web.json_response(body, status=error.code)
        if method.lower() in SEND_METHODS:
            self._accepted_sends.append(time.monotonic())
        call.result = result
        return web.json_response({"ok": True, "result": result})

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                params.update(body if isinstance(body, dict) else {})
            elif request.content_type == "multipart/form-data":
                reader = await request.multipart()
                async for part in reader:
                    if part.filename is not None:
                        files[part.name] = (part.filename, bytes(await part.read()))
                    else:
                        params[part.name] = await part.text()
            else:
                params.update(dict(await request.post()))
        for key, value in list(params.items()):
            if not isinstance(value, str):
                continue
            if key in INT_PARAMS and value.lstrip("-").isdigit():
                params[key] = int(value)
            elif key in JSON_PARAMS:
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    params[key] = {"__invalid__": value}
            elif key in BOOL_PARAMS:
                params[key] = value.lower() in ("true", "1")
        return params, files

    def _check_send(self, params: dict) -> None:
        chat_id = params.get("chat_id")
        if chat_id is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        if self.limit_per_second is not None:
            now = time.monotonic()
            recent = [at for at in self._accepted_sends if now - at < 1.0]
            self._accepted_sends = recent
            if len(recent) >= self.limit_per_second:
                raise ApiError(
                    429,
                    f"Too Many Requests: retry after {self.retry_after}",
                    {"retry_after": self.retry_after},
                )
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id not in self.chats:
            raise ApiError(400, "Bad Request: chat not found")
        self._check_markup(params.get("reply_markup"))

    @staticmethod
    def _check_markup(markup: Any) -> None:
        if markup is None:
            return
        if not isinstance(markup, dict) or "__invalid__" in markup:
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if not isinstance(rows, list):
            raise ApiError(400, 'Bad Request: field "inline_keyboard" must be of type Array')
        for row in rows:
            for button in row:
                if not button.get("text"):
                    raise ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")

    # ------------------------------------------------------------------ objects

    def _bot_user(self) -> dict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "PAPI bot",
            "username": self.bot_username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def user(self, chat_id: int, first_name: str = "", last_name: str = "") -> dict:
        """The person behind a private chat (registered on first use)."""
        if chat_id not in self.chats:
            self.chats[chat_id] = {
                "id": chat_id,
                "is_bot": False,
                "first_name": first_name or f"User{chat_id}",
                **({"last_name": last_name} if last_name else {}),
                "language_code": "vi",
            }
        return self.chats[chat_id]

    def _chat(self, chat_id: int) -> dict:
        person = self.user(chat_id)
        chat = {"id": chat_id, "type": "private", "first_name": person["first_name"]}
        if "last_name" in person:
            chat["last_name"] = person["last_name"]
        return chat

    def _new_message_id(self, chat_id: int) -> int:
        self._next_message[chat_id] = self._next_message.get(chat_id, 0) + 1
        return self._next_message[chat_id]

    def _message_json(self, sent: SentMessage) -> dict:
        body: dict[str, Any] = {
            "message_id": sent.message_id,
            "from": self._bot_user(),
            "chat": self._chat(sent.chat_id),
            "date": int(time.time()),
        }
        if sent.kind == "text":
            body["text"] = sent.text
        elif sent.text:
            body["caption"] = sent.text
        if sent.kind in ("photo", "document"):
            body[sent.kind] = sent.media
        if sent.reply_markup and sent.reply_markup.get("inline_keyboard"):
            body["reply_markup"] = sent.reply_markup
        return body

    def _store(self, content: bytes, folder: str, name: str = "") -> StoredFile:
        number = self._next_file
        self._next_file += 1
        suffix = name.rsplit(".", 1)[-1] if "." in name else "jpg"
        stored = StoredFile(
            file_id=f"FILE{number:06d}-{self.bot_id}",
            file_unique_id=f"U{number:06d}",
            file_path=f"{folder}/file_{number}.{suffix}",
            content=content,
        )
        self._files[stored.file_id] = stored
        return stored

    def _store_photo(self, jpeg: bytes) -> list[dict]:
        """Like Telegram: a small thumbnail first, the full size last."""
        from PIL import Image

        image = Image.open(io.BytesIO(jpeg))
        width, height = image.size
        thumb = image.copy()
        thumb.thumbnail((90, 90))
        buffer = io.BytesIO()
        thumb.convert("RGB").save(buffer, format="JPEG")
        sizes = []
        for content, (w, h) in (
            (buffer.getvalue(), thumb.size),
            (jpeg, (width, height)),
        ):
            stored = self._store(content, "photos")
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": w,
                    "height": h,
                    "file_size": len(content),
                }
            )
        return sizes

    # ------------------------------------------------------------------ methods

    async def _m_getme(self, params: dict, files: dict) -> dict:
        return self._bot_user()

    async def _m_getupdates(self, params: dict, files: dict) -> list[dict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:
            self._confirmed = max(self._confirmed, offset)
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        limit = max(1, min(int(params.get("limit") or 100), 100))
        timeout = min(float(params.get("timeout") or 0), self.max_long_poll)
        allowed = params.get("allowed_updates") or []
        deadline = time.monotonic() + timeout
        async with self._arrived:
            while True:
                ready = [u for u in self._pending if not allowed or set(u) & set(allowed)]
                if ready or time.monotonic() >= deadline:
                    return ready[:limit]
                try:
                    await asyncio.wait_for(self._arrived.wait(), deadline - time.monotonic())
                except TimeoutError:
                    pass

    async def _m_setwebhook(self, params: dict, files: dict) -> bool:
        url = params.get("url", "")
        secret = params.get("secret_token", "")
        if secret and (len(secret) > 256 or not all(ch.isalnum() or ch in "_-" for ch in secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if url and not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self.webhook_url, self.webhook_secret = url, secret
        return True

    async def _m_deletewebhook(self, params: dict, files: dict) -> bool:
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self.webhook_url = self.webhook_secret = ""
        return True

    async def _m_getwebhookinfo(self, params: dict, files: dict) -> dict:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    def _record_sent(self, sent: SentMessage) -> dict:
        if sent.kind == "photo":
            sent.media = self._store_photo(sent.content)
        elif sent.kind == "document":
            stored = self._store(sent.content, "documents", sent.file_name)
            sent.media = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": sent.file_name,
                "file_size": len(sent.content),
            }
        self.messages.append(sent)
        self._by_id[(sent.chat_id, sent.message_id)] = sent
        return self._message_json(sent)

    async def _m_sendmessage(self, params: dict, files: dict) -> dict:
        text = params.get("text", "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MESSAGE_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        chat_id = params["chat_id"]
        return self._record_sent(
            SentMessage(
                chat_id=chat_id,
                message_id=self._new_message_id(chat_id),
                kind="text",
                text=text,
                reply_markup=params.get("reply_markup"),
            )
        )

    def _upload(self, params: dict, files: dict, field_name: str) -> tuple[str, bytes]:
        value = params.get(field_name)
        if isinstance(value, str) and value.startswith("attach://"):
            part = files.get(value.removeprefix("attach://"))
        elif isinstance(value, str) and value in self._files:
            return "", self._files[value].content
        else:
            part = files.get(field_name)
        if part is None:
            raise ApiError(400, f"Bad Request: there is no {field_name} in the request")
        if not part[1]:
            raise ApiError(400, "Bad Request: file must be non-empty")
        return part

    def _caption(self, params: dict) -> str:
        caption = params.get("caption") or ""
        if len(caption) > CAPTION_LIMIT:
            raise ApiError(400, "Bad Request: message caption is too long")
        return caption

    async def _m_sendphoto(self, params: dict, files: dict) -> dict:
        _name, content = self._upload(params, files, "photo")
        if len(content) > 10 * 1024 * 1024:
            raise ApiError(400, "Bad Request: PHOTO_SAVE_FILE_INVALID")
        chat_id = params["chat_id"]
        return self._record_sent(
            SentMessage(
                chat_id=chat_id,
                message_id=self._new_message_id(chat_id),
                kind="photo",
                text=self._caption(params),
                reply_markup=params.get("reply_markup"),
                content=content,
            )
        )

    async def _m_senddocument(self, params: dict, files: dict) -> dict:
        name, content = self._upload(params, files, "document")
        chat_id = params["chat_id"]
        return self._record_sent(
            SentMessage(
                chat_id=chat_id,
                message_id=self._new_message_id(chat_id),
                kind="document",
                text=self._caption(params),
                reply_markup=params.get("reply_markup"),
                content=content,
                file_name=name,
            )
        )

    async def _m_editmessagereplymarkup(self, params: dict, files: dict) -> dict:
        sent = self._by_id.get((params.get("chat_id"), params.get("message_id")))
        if sent is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        new = params.get("reply_markup")
        self._check_markup(new)
        wanted = new if new and new.get("inline_keyboard") else None
        current = sent.reply_markup if sent.callback_data() else None
        if wanted == current:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        sent.reply_markup = wanted
        return self._message_json(sent)

    async def _m_editmessagetext(self, params: dict, files: dict) -> dict:
        """Like the Bot API: the text (and inline keyboard: none given, none kept) of a message
        the bot sent in that chat; the same text and keyboard again is a 400, as is a message
        that is not there or has no text (a photo)."""
        chat_id = params.get("chat_id")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        sent = self._by_id.get((chat_id, params.get("message_id")))
        if sent is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if sent.kind != "text":
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text = params.get("text", "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MESSAGE_LIMIT:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        new = params.get("reply_markup")
        self._check_markup(new)
        wanted = new if new and new.get("inline_keyboard") else None
        current = sent.reply_markup if sent.callback_data() else None
        if text == sent.text and wanted == current:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        sent.text, sent.reply_markup = text, wanted
        return self._message_json(sent)

    def forget(self, chat_id: int, message_id: int) -> None:
        """The message is gone (the person deleted it): edits of it are "not found"."""
        sent = self._by_id.pop((chat_id, message_id))
        self.messages.remove(sent)

    async def _m_answercallbackquery(self, params: dict, files: dict) -> bool:
        query_id = params.get("callback_query_id", "")
        if self._queries.get(query_id, True):
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self._queries[query_id] = True
        return True

    async def _m_getfile(self, params: dict, files: dict) -> dict:
        stored = self._files.get(params.get("file_id", ""))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(stored.content) > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    async def _download(self, request: web.Request) -> web.Response:
        self.calls.append(
            Call("download", {"path": request.match_info["path"]}, {}, time.monotonic())
        )
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        for stored in self._files.values():
            if stored.file_path == request.match_info["path"]:
                return web.Response(body=stored.content, content_type="application/octet-stream")
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    # ------------------------------------------------------------------ the people's side

    def _update(self, **body: Any) -> dict:
        self._next_update += 1
        return {"update_id": self._next_update, **body}

    def _incoming_message(self, chat_id: int, **content: Any) -> dict:
        return {
            "message_id": self._new_message_id(chat_id),
            "from": self.user(chat_id),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            **content,
        }

    def text(self, chat_id: int, text: str) -> dict:
        return self._update(message=self._incoming_message(chat_id, text=text))

    def command(self, chat_id: int, command: str, args: str = "", mention: bool = False) -> dict:
        head = f"/{command}" + (f"@{self.bot_username}" if mention else "")
        text = f"{head} {args}".strip()
        entities = [{"type": "bot_command", "offset": 0, "length": len(head)}]
        return self._update(message=self._incoming_message(chat_id, text=text, entities=entities))

    def photo(self, chat_id: int, jpeg: bytes, caption: str = "") -> dict:
        content: dict[str, Any] = {"photo": self._store_photo(jpeg)}
        if caption:
            content["caption"] = caption
        return self._update(message=self._incoming_message(chat_id, **content))

    def document(self, chat_id: int, content: bytes, file_name: str, mime_type: str) -> dict:
        stored = self._store(content, "documents", file_name)
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": len(content),
        }
        return self._update(message=self._incoming_message(chat_id, document=document))

    def location(self, chat_id: int, latitude: float, longitude: float) -> dict:
        location = {"latitude": latitude, "longitude": longitude}
        return self._update(message=self._incoming_message(chat_id, location=location))

    def contact(self, chat_id: int, phone_number: str) -> dict:
        person = self.user(chat_id)
        contact = {
            "phone_number": phone_number,
            "first_name": person["first_name"],
            "user_id": chat_id,
        }
        return self._update(message=self._incoming_message(chat_id, contact=contact))

    def press(self, chat_id: int, data: str) -> dict:
        """Tap a button the bot showed in this chat (the latest message that still has it)."""
        for sent in reversed(self.messages):
            if sent.chat_id == chat_id and data in sent.callback_data():
                return self.callback(chat_id, data, sent.message_id)
        shown = [d for m in self.messages if m.chat_id == chat_id for d in m.callback_data()]
        raise LookupError(f"no button {data!r} on screen in chat {chat_id}; shown: {shown}")

    def callback(self, chat_id: int, data: str, message_id: int | None = None) -> dict:
        """A callback query with any data, on a message of the chat (a forged one if the data
        is not on that message: a modified client can send that)."""
        if message_id is None:
            mine = [m for m in self.messages if m.chat_id == chat_id]
            if not mine:
                raise LookupError(f"the bot has sent nothing to chat {chat_id}")
            message_id = mine[-1].message_id
        sent = self._by_id[(chat_id, message_id)]
        query_id = f"{self.bot_id}{self._next_query:08d}"
        self._next_query += 1
        self._queries[query_id] = False
        query = {
            "id": query_id,
            "from": self.user(chat_id),
            "message": self._message_json(sent),
            "chat_instance": f"ci{chat_id}",
            "data": data,
        }
        return self._update(callback_query=query)

    def block(self, chat_id: int) -> None:
        self.blocked.add(chat_id)

    async def deliver(self, update: dict) -> int | None:
        """Like Telegram: POST to the webhook when one is set (returns the HTTP status),
        otherwise keep the update for getUpdates (returns None)."""
        if not self.webhook_url:
            async with self._arrived:
                self._pending.append(update)
                self._arrived.notify_all()
            return None
        assert self._client is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret}
        async with self._client.post(self.webhook_url, json=update, headers=headers) as response:
            await response.read()
            self.webhook_deliveries.append((update["update_id"], response.status))
            return response.status

    @property
    def confirmed_offset(self) -> int:
        return self._confirmed

    # ------------------------------------------------------------------ assertions helpers

    def calls_to(self, method: str, ok: bool | None = None) -> list[Call]:
        return [
            call
            for call in self.calls
            if call.method.lower() == method.lower() and (ok is None or call.ok == ok)
        ]

    def sent_to(self, chat_id: int) -> list[SentMessage]:
        return [sent for sent in self.messages if sent.chat_id == chat_id]

    def last_to(self, chat_id: int) -> SentMessage:
        mine = self.sent_to(chat_id)
        if not mine:
            raise LookupError(f"nothing sent to chat {chat_id}")
        return mine[-1]
