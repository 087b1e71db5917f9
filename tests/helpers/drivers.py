"""One conversation, four channels: drivers that play a person on Telegram, Zalo Bot, Zalo OA
or the web simulator with the same verbs, so one journey test runs on every channel.

Each driver is an async context manager that starts the platform fake(s) on loopback and the
real papibot aiohttp app (`build_app(build_runtime(ctx, <that channel>))`), then
talks to it the way the platform would: Telegram's fake POSTs to the webhook papibot set,
Zalo Bot updates go to the webhook URL papibot registered (with its secret), Zalo OA events are
signed like Zalo signs them, the simulator is driven through its JSON API.

    async with make_driver("zalo_bot", settings, db, framework) as d:
        await d.start("head", code)            # whatever registration looks like there
        await d.say("head", "/viec")
        await d.tap("head", "done:12")         # Zalo Bot: types the number shown for it
        await d.photo("head", jpeg)
        await d.messages("head")               # [Sent(text, buttons=[payload, …]), …]

A person is a short chat name ("head", "officer"); `external_id(chat)` is the id the platform
uses for them (a Telegram chat id, a Zalo user id, a `guest-…` simulator chat). Every verb
waits until papibot has handled the update and delivered its replies (`flush()`).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol, Self

import aiohttp
from aiohttp import FormData, web
from sqlalchemy import text
from sqlmodel import select

from bot.app.runtime import Runtime, build_runtime
from bot.app.server import build_app
from bot.channels.sender import RateLimiter
from bot.channels.telegram import TelegramChannel
from bot.channels.zalo_bot import SECRET_HEADER as ZALO_BOT_SECRET_HEADER
from bot.channels.zalo_bot import ZaloBotChannel
from bot.channels.zalo_oa import WEBHOOK_PATH as ZALO_OA_WEBHOOK_PATH
from bot.channels.zalo_oa import ZaloOAChannel
from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.messages import Outgoing
from bot.core.models import Occurrence, Outbox, OutboxStatus, TaskDefinition, Unit
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.units import import_units_csv
from bot.web.sim_channel import WebChannel
from handlers.router import Dispatcher
from scheduler.planner import plan
from tests.helpers.fake_telegram import FakeTelegram
from tests.helpers.fake_zalo import FakeZalo, fixture
from tests.helpers.tree_words import assert_no_district_words
from tests.helpers.world import World, framework_for, world_of, write_small_units_csv

CHANNELS = ("telegram", "zalo_bot", "zalo_oa", "web")
SETTLE_TIMEOUT = 15.0  # seconds: a conversation step that never settles is a failure
MENU_LINE = re.compile(r"^(\d+)\. (.+)$")


@dataclass
class Sent:
    """One message the bot sent to a chat: its text and the payloads of its buttons (for a
    numbered menu, the payloads its numbers stand for, in number order)."""

    text: str
    buttons: list[str]
    numbered: bool = field(default=False, compare=False)  # a menu answered by number
    queued: Outgoing | None = field(default=None, compare=False, repr=False)
    ref: str = field(default="", compare=False, repr=False)  # the platform's message id


class ChannelDriver(Protocol):
    name: str
    world: World
    can_forge: bool  # whether a person can send any button payload (a modified client)

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def external_id(self, chat: str) -> str: ...

    async def start(self, chat: str, code: str) -> None: ...

    async def say(self, chat: str, text: str) -> None: ...

    async def tap(self, chat: str, data: str) -> None: ...

    async def forge(self, chat: str, data: str) -> None: ...

    async def photo(self, chat: str, jpeg: bytes) -> None: ...

    async def messages(self, chat: str) -> list[Sent]: ...

    async def redeliver_last(self, chat: str) -> None: ...

    async def flush(self) -> None: ...


# --------------------------------------------------------------------------- the small world


LATE_DAYS = 31  # village heads' tasks are monthly, due on the 25th: a month back always holds one
WORLD_TABLES = (Unit, TaskDefinition, Occurrence)  # all that building the world writes
_world_rows: dict[str, list[list[dict[str, Any]]]] = {}  # by day: the rows of WORLD_TABLES


async def small_world(settings: Settings, db: Database, framework: Framework) -> World:
    """One commune and its villages (a ward and its residential groups, two-tier), with what is open now (windows opening by tomorrow) and
    what came due in the last month, so /viec shows several task cards (which one is tapped
    matters) on any date.

    The first world of the day in this process is built with the real import, sync and
    planner; later ones get a copy of its rows (the same units, tasks and occurrences, ids
    included), which saves most of a second per test."""
    today = date.today()
    cache_key = f"{today.isoformat()}:{settings.structure}"
    rows = _world_rows.get(cache_key)
    if rows is None:
        units_csv = settings.data_dir.parent / "journey-units.csv"
        await import_units_csv(db, write_small_units_csv(units_csv, settings.structure))
        async with db.session() as session:
            await sync_task_definitions(session, framework)
            await plan(
                session,
                framework,
                settings,
                today - timedelta(days=LATE_DAYS),
                today + timedelta(days=1),
            )
            await session.commit()
        _world_rows[cache_key] = await _copy_rows(db)
    else:
        async with db.session() as session:
            connection = await session.connection()
            for model, table_rows in zip(WORLD_TABLES, rows, strict=True):
                await connection.execute(model.__table__.insert(), table_rows)
                if not db.is_sqlite and "id" in model.__table__.c and table_rows:
                    # The rows came with their ids: the next one the sequence gives follows them.
                    name = model.__table__.name
                    await connection.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'),"
                            f" (SELECT max(id) FROM {name}))"
                        )
                    )
            await session.commit()
    app = AppContext(settings=settings, db=db, framework=framework)
    async with db.session() as session:
        commune = (await session.exec(select(Unit).where(Unit.level == "commune"))).one()
        return await world_of(app, session, commune)


async def _copy_rows(db: Database) -> list[list[dict[str, Any]]]:
    copied = []
    async with db.session() as session:
        for model in WORLD_TABLES:
            columns = [column.name for column in model.__table__.columns]
            key = model.__table__.primary_key.columns.values()[0].name
            found = (await session.exec(select(model).order_by(getattr(model, key)))).all()
            copied.append([{name: getattr(row, name) for name in columns} for row in found])
    return copied


# --------------------------------------------------------------------------- shared machinery


def menu_numbers(text: str, labels: list[str]) -> list[int]:
    """The numbers a numbered menu shows for `labels`, read from the message text.

    Each label must appear as a line `N. label`, numbered consecutively in button order (a
    card of /viec may go on from the one before: 5. … 8.). A menu that is missing, incomplete
    or out of order is an AssertionError. Whether a number means what it shows is for the
    journey to find out: the driver types it and the database tells."""
    shown: dict[str, int] = {}
    for line in text.splitlines():
        match = MENU_LINE.match(line.strip())
        if match:
            shown[match.group(2)] = int(match.group(1))
    missing = [label for label in labels if label not in shown]
    assert not missing, f"menu lines {missing} not in the message text:\n{text}"
    numbers = [shown[label] for label in labels]
    first = numbers[0] if numbers else 1
    assert numbers == list(range(first, first + len(labels))), f"menu {numbers}:\n{text}"
    return numbers


class BaseDriver:
    """The app around one channel; subclasses speak the platform."""

    name = ""
    can_forge = True

    def __init__(self, settings: Settings, db: Database, framework: Framework) -> None:
        self.settings = settings
        self.db = db
        self.framework = framework
        self.world: World
        self.runtime: Runtime
        self.channel: Any
        self.base_url = ""
        self.client: aiohttp.ClientSession
        self._runner: web.AppRunner | None = None
        self._last: dict[str, Callable[[], Awaitable[None]]] = {}  # chat → resend last inbound

    # -- lifecycle

    async def __aenter__(self) -> Self:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings.scheduler_enabled = False
        self.world = await small_world(self.settings, self.db, self.framework)
        await self._start_platform()
        ctx = self.world.app
        self.runtime = build_runtime(
            ctx, lambda ctx, dispatcher: {self.name: self._make_channel(ctx, dispatcher)}
        )
        self.channel = self.runtime.channels[self.name]
        # The platforms' own pacing (Telegram: about one message a second per chat) would make
        # every journey wait for seconds; pacing has tests of its own.
        self.runtime.sender.limits = {self.name: RateLimiter(per_second=1000, per_chat_interval=0)}
        # Webhook mode is known when the routes are mounted; the port only once listening.
        self.settings.public_url = "http://127.0.0.1"
        self._runner = web.AppRunner(build_app(self.runtime), shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        self.settings.public_url = self.base_url
        self.client = aiohttp.ClientSession()
        await self.channel.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.channel.stop()
        finally:
            await self.client.close()
            if self._runner is not None:
                await self._runner.cleanup()
            await self._stop_platform()

    async def _start_platform(self) -> None:
        pass

    async def _stop_platform(self) -> None:
        pass

    def _make_channel(self, ctx: AppContext, dispatcher: Dispatcher) -> Any:
        raise NotImplementedError

    async def _channel_idle(self) -> None:
        pass

    async def flush(self) -> None:
        """Until papibot has handled what came in and the outbox is drained; a message the
        platform refused for good (a dead letter) fails the test."""
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while True:
                await self._channel_idle()
                await self.runtime.sender.drain_once()
                await self._channel_idle()
                undelivered = await self._undelivered()
                if all(status == OutboxStatus.dead for status, _key, _error in undelivered):
                    break
        assert not undelivered, f"{self.name} refused messages: {undelivered}"

    async def _undelivered(self) -> list[tuple[str, str, str]]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(Outbox.status, Outbox.idempotency_key, Outbox.last_error).where(
                    Outbox.channel == self.name, Outbox.status != OutboxStatus.sent
                )
            )
            return list(rows.all())

    # -- what the bot sent, as the outbox recorded it (for numbered menus)

    async def _sent_rows(self, chat: str) -> dict[str, Outgoing]:
        """Platform message id → the message as papibot queued it."""
        async with self.db.session() as session:
            rows = await session.exec(
                select(Outbox).where(
                    Outbox.channel == self.name,
                    Outbox.external_id == self.external_id(chat),
                    Outbox.status == OutboxStatus.sent,
                )
            )
            return {row.platform_message_id: Outgoing.from_payload(row.payload) for row in rows}

    # -- verbs

    def external_id(self, chat: str) -> str:
        raise NotImplementedError

    async def _deliver(self, chat: str, send: Callable[[], Awaitable[None]]) -> None:
        self._last[chat] = send
        await send()
        await self.flush()

    async def redeliver_last(self, chat: str) -> None:
        """The platform delivers the person's last update again (it did not see our answer)."""
        await self._last[chat]()
        await self.flush()

    async def _find(self, chat: str, data: str) -> Sent:
        for sent in reversed(await self.messages(chat)):
            if data in sent.buttons:
                return sent
        shown = [b for sent in await self.messages(chat) for b in sent.buttons]
        raise AssertionError(f"no button {data!r} in chat {chat!r}; shown: {shown}")

    async def forge(self, chat: str, data: str) -> None:
        raise NotImplementedError(f"{self.name}: a person cannot send a button payload")


# --------------------------------------------------------------------------- Telegram


class TelegramDriver(BaseDriver):
    name = "telegram"
    token = "123456:JOURNEY-TOKEN"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.fake = FakeTelegram(token=self.token)
        self._ids: dict[str, int] = {}

    async def _start_platform(self) -> None:
        await self.fake.start()
        self.settings.telegram_token = self.token
        self.settings.telegram_api_url = self.fake.api_url
        self.settings.telegram_webhook_secret = "journey-secret_1"

    async def _stop_platform(self) -> None:
        await self.fake.close()

    def _make_channel(self, ctx: AppContext, dispatcher: Dispatcher) -> Any:
        return TelegramChannel(ctx, dispatcher, poll_timeout=1)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        assert self.fake.webhook_url == self.base_url + "/webhook/telegram"
        return self

    async def _channel_idle(self) -> None:
        await self.channel.idle()

    def external_id(self, chat: str) -> str:
        return str(self._chat(chat))

    def _chat(self, chat: str) -> int:
        if chat not in self._ids:
            self._ids[chat] = 7001 + len(self._ids)
        return self._ids[chat]

    async def _update(self, chat: str, update: dict) -> None:
        async def send() -> None:
            assert await self.fake.deliver(update) == 200

        await self._deliver(chat, send)

    async def start(self, chat: str, code: str) -> None:
        await self._update(chat, self.fake.command(self._chat(chat), "start", code))

    async def say(self, chat: str, text: str) -> None:
        if text.startswith("/"):
            command, _sep, args = text[1:].partition(" ")
            update = self.fake.command(self._chat(chat), command, args)
        else:
            update = self.fake.text(self._chat(chat), text)
        await self._update(chat, update)

    async def tap(self, chat: str, data: str) -> None:
        # The fake finds the latest message still showing the button (taps remove buttons).
        await self._update(chat, self.fake.press(self._chat(chat), data))

    async def forge(self, chat: str, data: str) -> None:
        """A callback query with any data, on the chat's last message (a modified client)."""
        await self._update(chat, self.fake.callback(self._chat(chat), data))

    async def photo(self, chat: str, jpeg: bytes) -> None:
        await self._update(chat, self.fake.photo(self._chat(chat), jpeg))

    async def messages(self, chat: str) -> list[Sent]:
        """As sent, a card replaced in place (editMessageText) as it was replaced (a tap later
        takes the buttons off a message; this keeps them). One entry per message in the chat,
        in the order they were last written: the answer to a tap is last, edit or not."""
        chat_id = self._chat(chat)
        sent: list[Sent] = []
        for call in self.fake.calls:
            method = call.method.lower()
            if method not in ("sendmessage", "sendphoto", "senddocument", "editmessagetext"):
                continue
            if not call.ok or call.params.get("chat_id") != chat_id:
                continue
            markup = call.params.get("reply_markup") or {}
            buttons = [
                button.get("callback_data", "")
                for row in markup.get("inline_keyboard", [])
                for button in row
            ]
            text = call.params.get("text") or call.params.get("caption") or ""
            ref = str(call.result["message_id"])
            if method == "editmessagetext":
                sent = [m for m in sent if m.ref != ref]
            sent.append(Sent(text, buttons, ref=ref))
        return sent


# --------------------------------------------------------------------------- Zalo (both)


class ZaloDriver(BaseDriver):
    async def _start_platform(self) -> None:
        self.fake = await FakeZalo().start()
        config = self.settings
        config.zalo_bot_token = self.fake.bot_token
        config.zalo_bot_api_url = self.fake.url
        config.zalo_bot_webhook_secret = "journey-bot-secret-1"
        config.zalo_oa_app_id = self.fake.app_id
        config.zalo_oa_app_secret = self.fake.app_secret
        config.zalo_oa_secret_key = "journey-oa-secret"
        config.zalo_oa_access_token = self.fake.access_token
        config.zalo_oa_refresh_token = self.fake.refresh_token
        config.zalo_oa_api_url = self.fake.url
        config.zalo_oauth_url = self.fake.url
        config.zalo_media_hosts = self.fake.host  # the fake CDN on loopback, allowed explicitly

    async def _stop_platform(self) -> None:
        await self.fake.stop()

    async def _channel_idle(self) -> None:
        await self.channel.wait_idle()

    async def _post(self, url: str, raw: bytes, headers: dict[str, str]) -> None:
        async with self.client.post(url, data=raw, headers=headers) as response:
            await response.read()
            assert response.status == 200, (response.status, raw[:200])

    def _photo_url(self, jpeg: bytes) -> str:
        return self.fake.add_cdn(f"{hashlib.sha256(jpeg).hexdigest()[:16]}.jpg", jpeg)

    async def _type_number(self, chat: str, data: str) -> None:
        """Answer a numbered menu: the number its text shows for the button `data`."""
        sent = await self._find(chat, data)
        assert sent.numbered and sent.queued is not None
        labels = [b.label for b in sent.queued.flat_buttons()]
        numbers = menu_numbers(sent.text, labels)
        await self.say(chat, str(numbers[sent.buttons.index(data)]))

    @staticmethod
    def _numbered(text: str, message: Outgoing | None, ref: str) -> Sent:
        """A message without native buttons: its numbered menu, checked against what was
        queued (the labels must be shown as `1. …`, `2. …` in the text)."""
        if message is None or not message.buttons:
            return Sent(text, [], ref=ref)
        menu_numbers(text, [b.label for b in message.flat_buttons()])
        payloads = [b.data for b in message.flat_buttons()]
        return Sent(text, payloads, numbered=True, queued=message, ref=ref)


class ZaloBotDriver(ZaloDriver):
    """No buttons on Zalo Bot: menus are numbered lines, answered by typing the number.

    A person cannot send a payload here, only text: a typed `done:12` is just text."""

    name = "zalo_bot"
    can_forge = False

    def _make_channel(self, ctx: AppContext, dispatcher: Dispatcher) -> Any:
        return ZaloBotChannel(ctx, dispatcher)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        assert self.fake.webhook["url"] == self.base_url + "/webhook/zalo-bot"
        return self

    def external_id(self, chat: str) -> str:
        return hashlib.sha256(f"zalo-bot:{chat}".encode()).hexdigest()[:20]

    async def _update(self, chat: str, message: dict[str, Any], event: str) -> None:
        """Delivered as Zalo would: to the webhook papibot registered, with its secret."""
        body = {"ok": True, "result": {"event_name": event, "message": message}}
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            ZALO_BOT_SECRET_HEADER: self.fake.webhook["secret_token"],
        }
        url = self.fake.webhook["url"]
        await self._deliver(chat, lambda: self._post(url, raw, headers))

    def _message(self, chat: str, **content: Any) -> dict[str, Any]:
        person = self.external_id(chat)
        message = copy.deepcopy(fixture("bot_text.json")["result"]["message"])
        message.pop("text", None)
        message["from"]["id"] = message["chat"]["id"] = person
        message["from"]["display_name"] = chat
        message["message_id"] = uuid.uuid4().hex[:20]
        message["date"] = int(time.time() * 1000)
        return {**message, **content}

    async def start(self, chat: str, code: str) -> None:
        await self.say(chat, "Xin chào")  # opening the bot: a first message
        await self.say(chat, code)

    async def say(self, chat: str, text: str) -> None:
        await self._update(chat, self._message(chat, text=text), "message.text.received")

    async def tap(self, chat: str, data: str) -> None:
        await self._type_number(chat, data)

    async def photo(self, chat: str, jpeg: bytes) -> None:
        message = self._message(chat, photo_url=self._photo_url(jpeg), caption="")
        await self._update(chat, message, "message.image.received")

    async def messages(self, chat: str) -> list[Sent]:
        rows = await self._sent_rows(chat)
        person = self.external_id(chat)
        sent = []
        for message in self.fake.bot_sent:
            if message["chat_id"] != person:
                continue
            text = message.get("text") or message.get("caption") or ""
            ref = message["message_id"]
            sent.append(self._numbered(text, rows.get(ref), ref))
        return sent


class ZaloOADriver(ZaloDriver):
    """Buttons (≤ 5) are oa.query.hide templates; a click comes back as a user_send_text whose
    text is the payload. More buttons than that come as a numbered menu."""

    name = "zalo_oa"
    _numbers = itertools.count(2468458835296117922)  # Zalo user ids exceed 2^53

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._ids: dict[str, str] = {}

    def _make_channel(self, ctx: AppContext, dispatcher: Dispatcher) -> Any:
        return ZaloOAChannel(ctx, dispatcher)

    def external_id(self, chat: str) -> str:
        if chat not in self._ids:
            self._ids[chat] = str(next(self._numbers))
        return self._ids[chat]

    async def _event(self, chat: str, body: dict[str, Any]) -> None:
        body["timestamp"] = str(int(time.time() * 1000))
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = self.fake.oa_headers(raw, self.settings.zalo_oa_secret_key, body["timestamp"])
        url = self.base_url + ZALO_OA_WEBHOOK_PATH
        await self._deliver(chat, lambda: self._post(url, raw, headers))

    def _user_event(self, chat: str, name: str, **message: Any) -> dict[str, Any]:
        body = copy.deepcopy(fixture(f"oa_{name}.json"))
        body["sender"]["id"] = self.external_id(chat)
        body["message"]["msg_id"] = uuid.uuid4().hex
        body["message"].update(message)
        return body

    async def start(self, chat: str, code: str) -> None:
        follow = copy.deepcopy(fixture("oa_follow.json"))
        follow["follower"]["id"] = self.external_id(chat)
        await self._event(chat, follow)
        await self.say(chat, code)

    async def say(self, chat: str, text: str) -> None:
        await self._event(chat, self._user_event(chat, "user_send_text", text=text))

    async def tap(self, chat: str, data: str) -> None:
        sent = await self._find(chat, data)
        if sent.numbered:
            await self._type_number(chat, data)
        else:
            await self.forge(chat, data)  # what the click sends: the payload as text

    async def forge(self, chat: str, data: str) -> None:
        """Anyone can type a payload into the OA chat: that is what a forged tap is here."""
        await self.say(chat, data)

    async def photo(self, chat: str, jpeg: bytes) -> None:
        body = self._user_event(chat, "user_send_image")
        body["message"]["attachments"][0]["payload"]["url"] = self._photo_url(jpeg)
        await self._event(chat, body)

    async def messages(self, chat: str) -> list[Sent]:
        rows = await self._sent_rows(chat)
        person = self.external_id(chat)
        sent = []
        for record in self.fake.oa_sent:
            if record["user_id"] != person:
                continue
            message = record["message"]
            text = message.get("text", "")
            payload = (message.get("attachment") or {}).get("payload") or {}
            template = [b["payload"] for b in payload.get("buttons", [])]
            ref = record["message_id"]
            sent.append(
                Sent(text, template, ref=ref)
                if template
                else self._numbered(text, rows.get(ref), ref)
            )
        return sent


# --------------------------------------------------------------------------- web simulator


class WebDriver(BaseDriver):
    """The simulator page's calls: a stranger is a `guest-…` chat that types a code."""

    name = "web"

    def _make_channel(self, ctx: AppContext, dispatcher: Dispatcher) -> Any:
        return WebChannel(ctx, dispatcher)

    def external_id(self, chat: str) -> str:
        return f"guest-{chat}"

    async def _api(self, path: str, **kwargs: Any) -> None:
        async with self.client.post(self.base_url + path, **kwargs) as response:
            body = await response.text()
            assert response.status == 200, (path, response.status, body)

    async def _json(self, chat: str, path: str, body: dict[str, Any]) -> None:
        body = {**body, "chat": self.external_id(chat), "update_id": uuid.uuid4().hex}
        await self._deliver(chat, lambda: self._api(path, json=body))

    async def start(self, chat: str, code: str) -> None:
        await self.say(chat, code)

    async def say(self, chat: str, text: str) -> None:
        await self._json(chat, "/sim/api/send", {"text": text, "name": chat})

    async def tap(self, chat: str, data: str) -> None:
        message_id = (await self._find(chat, data)).ref
        await self._json(chat, "/sim/api/button", {"data": data, "message_id": message_id})

    async def forge(self, chat: str, data: str) -> None:
        await self._json(chat, "/sim/api/button", {"data": data, "message_id": ""})

    async def photo(self, chat: str, jpeg: bytes) -> None:
        update_id = uuid.uuid4().hex

        async def send() -> None:
            form = FormData()
            form.add_field("chat", self.external_id(chat))
            form.add_field("update_id", update_id)
            form.add_field("file", jpeg, filename="anh.jpg", content_type="image/jpeg")
            await self._api("/sim/api/photo", data=form)

        await self._deliver(chat, send)

    async def messages(self, chat: str) -> list[Sent]:
        """One entry per card on the page (an edit replaces its card), in the order they were
        last written: the answer to a tap is last, edit or not."""
        params = {"chat": self.external_id(chat), "after": "0"}
        async with self.client.get(self.base_url + "/sim/api/messages", params=params) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        shown: list[Sent] = []
        for message in body["messages"]:
            buttons = [button["data"] for row in message["buttons"] for button in row]
            ref = str(message["replaces"] or message["id"])
            if message["replaces"] is not None:  # an edit: the page shows it in the card's place
                shown = [sent for sent in shown if sent.ref != ref]
            shown.append(Sent(message["text"], buttons, ref=ref))
        return shown


DRIVERS: dict[str, type[BaseDriver]] = {
    "telegram": TelegramDriver,
    "zalo_bot": ZaloBotDriver,
    "zalo_oa": ZaloOADriver,
    "web": WebDriver,
}


def make_driver(name: str, settings: Settings, db: Database, framework: Framework) -> ChannelDriver:
    return DRIVERS[name](settings, db, framework)  # type: ignore[return-value]


@asynccontextmanager
async def structured_driver(
    name: str, settings: Settings, db: Database, structure: str
) -> AsyncIterator[ChannelDriver]:
    """The driver for channel `name` on a world of `structure` (tests/conftest.py), with that
    structure's framework; a two-tier journey's messages are then read for district words."""
    async with make_driver(name, settings, db, framework_for(structure)) as channel_driver:
        yield channel_driver
        if structure == "two_tier":
            await assert_no_district_words(db)
