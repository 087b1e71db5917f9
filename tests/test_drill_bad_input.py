"""Drill: bad input on every door — the three webhooks and the simulator's JSON API.

The whole app (`build_app` on a runtime with every channel configured) runs in-process on a
SQLite database with the sample units and no registered user; hypothesis bends real updates of
each platform (see tests/helpers/drill_fuzz.py for the bodies and the exact rule an answer must
follow: never a 5xx, a 4xx writes nothing, a 200 writes only what a stranger's meaningless update
may write). The Zalo OA bodies are signed correctly, so the fuzzing reaches the parser behind
the signature check.

Besides: a body over 1 MiB is refused with 413 (announced, or streamed without a length), and an
unsigned or wrongly signed webhook gets 403 whatever its body, before it is parsed.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app.runtime import Runtime, build_runtime
from bot.app.server import build_app
from bot.channels.telegram import SECRET_HEADER as TELEGRAM_SECRET_HEADER
from bot.channels.zalo_bot import SECRET_HEADER as ZALO_BOT_SECRET_HEADER
from bot.channels.zalo_oa import SIGNATURE_HEADER, signature
from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.units import import_units_csv
from tests.helpers.drill_fuzz import MAX_BODY, bodies, check_answer, encode, snapshot
from tests.helpers.fake_telegram import FakeTelegram
from tests.helpers.fake_zalo import fixture
from tests.helpers.world import write_small_units_csv

pytestmark = pytest.mark.drill

TOKEN = "777000:DRILL-bad-input"
TELEGRAM_SECRET = "drill-telegram-secret"
ZALO_BOT_SECRET = "drill-zalo-bot-secret"
OA_APP_ID = "4321987654321"
OA_SECRET = "drill-oa-secret-key"
EXAMPLES = settings(
    max_examples=int(os.environ.get("DRILL_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no example database in the repository; failures print their body
)

PERSON = {"id": 4242, "is_bot": False, "first_name": "An"}
CHAT = {"id": 4242, "type": "private", "first_name": "An"}
MESSAGE = {"message_id": 7, "date": 1_750_000_000, "chat": CHAT, "from": PERSON}
TELEGRAM_UPDATES = [
    {"update_id": 1, "message": {**MESSAGE, "text": "/start ABCD2345"}},
    {"update_id": 2, "message": {**MESSAGE, "text": "xong"}},
    {
        "update_id": 3,
        "callback_query": {
            "id": "q1",
            "from": PERSON,
            "chat_instance": "ci",
            "data": "done:1",
            "message": {**MESSAGE, "text": "Việc của thôn"},
        },
    },
    {
        "update_id": 4,
        "message": {
            **MESSAGE,
            "photo": [{"file_id": "F1", "file_unique_id": "U1", "width": 9, "height": 9}],
        },
    },
    {
        "update_id": 5,
        "message": {
            **MESSAGE,
            "document": {
                "file_id": "F2",
                "file_unique_id": "U2",
                "file_name": "anh.jpg",
                "mime_type": "image/jpeg",
                "file_size": 26_214_400,
            },
        },
    },
    {"update_id": 6, "message": {**MESSAGE, "location": {"latitude": 12.2, "longitude": 109.1}}},
]
ZALO_BOT_UPDATES = [
    fixture("bot_text.json"),
    fixture("bot_text.json")["result"],
    fixture("bot_image.json"),
    fixture("bot_sticker.json"),
    [fixture("bot_text.json")["result"], fixture("bot_sticker.json")],
]
OA_EVENTS = [
    fixture(f"oa_{name}.json")
    for name in (
        "user_send_text",
        "user_send_image",
        "user_send_location",
        "user_send_sticker",
        "follow",
        "unfollow",
    )
]
OA_EVENTS.append(
    {
        "app_id": OA_APP_ID,
        "event_name": "user_send_file",
        "timestamp": "1750316171602",
        "sender": {"id": "2468458835296117922"},
        "recipient": {"id": "579745863508352884"},
        "message": {
            "msg_id": "7d1e0c2b4a5f6e7d8c9b",
            "text": "",
            "attachments": [
                {
                    "type": "file",
                    "payload": {
                        "url": "https://f21-zpc.zdn.vn/doc/bien-ban.pdf",
                        "name": "bien-ban.pdf",
                        "size": "26214400",
                    },
                }
            ],
        },
    }
)
SIM_REQUESTS = {
    "/sim/api/send": {"chat": "guest-drill", "text": "/start ABCD2345", "update_id": "u1"},
    "/sim/api/button": {"chat": "web-1", "data": "done:1", "message_id": "5", "update_id": "u2"},
}


class Door:
    """The app under test (a plain class: hypothesis prints it short when an example fails)."""

    def __init__(self, client: TestClient, runtime: Runtime, db: Database) -> None:
        self.client, self.runtime, self.db = client, runtime, db

    def __repr__(self) -> str:
        return "Door()"

    async def settle(self) -> None:
        """Wait for what the request set going (Zalo handles after answering, Telegram
        answers button presses in the background)."""
        for name in ("zalo_bot", "zalo_oa"):
            await self.runtime.channels[name].wait_idle()
        await self.runtime.channels["telegram"].idle()

    async def post(self, path: str, raw: bytes, headers: dict[str, str]) -> int:
        response = await self.client.post(path, data=raw, headers=headers)
        await response.read()
        await self.settle()
        return response.status


@pytest.fixture
async def door(settings: Settings, framework: Framework) -> AsyncIterator[Door]:
    fake = FakeTelegram(token=TOKEN)  # only for answerCallbackQuery, on loopback
    await fake.start()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.public_url = "http://127.0.0.1:9"  # webhooks, not polling; nothing is called
    settings.simulator_enabled = True
    settings.telegram_token = TOKEN
    settings.telegram_api_url = fake.api_url
    settings.telegram_webhook_secret = TELEGRAM_SECRET
    settings.zalo_bot_token = "1234567:drill"
    settings.zalo_bot_api_url = "http://127.0.0.1:9"
    settings.zalo_bot_webhook_secret = ZALO_BOT_SECRET
    settings.zalo_oa_app_id = OA_APP_ID
    settings.zalo_oa_secret_key = OA_SECRET
    settings.zalo_oa_api_url = settings.zalo_oauth_url = "http://127.0.0.1:9"
    # The OA fixtures are recorded events with their 2025 timestamps: the drill probes the
    # parsers, the replay window has its own test (tests/test_drill_attacker_chat.py).
    settings.zalo_oa_replay_window_seconds = 100 * 365 * 86400
    settings.scheduler_enabled = False
    db = Database(settings.effective_database_url)
    await db.upgrade()
    await import_units_csv(
        db, write_small_units_csv(settings.data_dir.parent / "units.csv", "three_tier")
    )
    async with db.session() as session:
        await sync_task_definitions(session, framework)
        await session.commit()
    ctx = AppContext(settings=settings, db=db, framework=framework)
    runtime = build_runtime(ctx)
    assert set(runtime.channels) == {"web", "telegram", "zalo_bot", "zalo_oa"}
    # The simulator delivers its replies before answering; nothing else leaves the process.
    runtime.sender.channels = {"web": runtime.channels["web"]}
    await runtime.channels["telegram"]._ensure_ready()
    client = TestClient(TestServer(build_app(runtime), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Door(client=client, runtime=runtime, db=db)
    finally:
        await client.close()
        for channel in runtime.channels.values():
            await channel.stop()
        await fake.close()
        await db.dispose()


def oa_headers(raw: bytes, secret: str = OA_SECRET) -> dict[str, str]:
    try:
        timestamp = json.loads(raw, parse_int=str).get("timestamp", "")
    except (ValueError, RecursionError, AttributeError):
        timestamp = ""
    timestamp = timestamp if isinstance(timestamp, str) else ""
    mac = signature(OA_APP_ID, raw, timestamp, secret)
    return {SIGNATURE_HEADER: f"mac={mac}", "Content-Type": "application/json"}


JSON = {"Content-Type": "application/json"}


# --------------------------------------------------------------------------- fuzzing


FRESH_TELEGRAM_UPDATES = st.builds(
    lambda update, update_id: {**update, "update_id": update_id},
    st.sampled_from(TELEGRAM_UPDATES),
    st.integers(1, 2**31),
)


@EXAMPLES
@given(raw=bodies(FRESH_TELEGRAM_UPDATES))
async def test_telegram_webhook_fuzz(door: Door, raw: bytes) -> None:
    before = await snapshot(door.db)
    headers = {**JSON, TELEGRAM_SECRET_HEADER: TELEGRAM_SECRET}
    status = await door.post("/webhook/telegram", raw, headers)
    await check_answer(door.db, before, status, "telegram", raw)


@EXAMPLES
@given(raw=bodies(ZALO_BOT_UPDATES), message_id=st.uuids())
async def test_zalo_bot_webhook_fuzz(door: Door, raw: bytes, message_id) -> None:  # noqa: ANN001
    raw = raw.replace(b"2d758cb5e222177a4d37", message_id.hex[:20].encode())
    before = await snapshot(door.db)
    headers = {**JSON, ZALO_BOT_SECRET_HEADER: ZALO_BOT_SECRET}
    status = await door.post("/webhook/zalo-bot", raw, headers)
    await check_answer(door.db, before, status, "zalo_bot", raw)


@EXAMPLES
@given(raw=bodies(OA_EVENTS), msg_id=st.uuids())
async def test_zalo_oa_webhook_fuzz_signed(door: Door, raw: bytes, msg_id) -> None:  # noqa: ANN001
    known_ids = (b"96d3cdf3af150460909", b"3a9f5e0c2b1d4e6f7a80", b"5c8e2a4f6b1d3e7a9c0b")
    for known in (*known_ids, b"7d1e0c2b4a5f6e7d8c9b"):
        raw = raw.replace(known, msg_id.hex[:20].encode())
    before = await snapshot(door.db)
    status = await door.post("/webhook/zalo-oa", raw, oa_headers(raw))
    await check_answer(door.db, before, status, "zalo_oa", raw, note="signed:")


@EXAMPLES
@given(
    path=st.sampled_from(sorted(SIM_REQUESTS)),
    data=st.data(),
)
async def test_simulator_api_fuzz(door: Door, path: str, data: st.DataObject) -> None:
    skeleton = SIM_REQUESTS[path]
    raw = data.draw(bodies([skeleton]))
    if b'"u1"' in raw or b'"u2"' in raw:  # a fresh update id, else most would be repeats
        fresh = data.draw(st.uuids()).hex
        raw = raw.replace(b'"u1"', f'"{fresh}"'.encode()).replace(b'"u2"', f'"{fresh}"'.encode())
    before = await snapshot(door.db)
    status = await door.post(path, raw, JSON)
    await check_answer(door.db, before, status, "web", raw)
    if status != 200:  # the simulator's errors are JSON the page can show
        response = await door.client.post(path, data=raw, headers=JSON)
        if response.status != 413:
            assert "error" in await response.json(), raw[:200]


# --------------------------------------------------------------------------- signatures


WRONG_AUTH = {
    "/webhook/telegram": [{}, {TELEGRAM_SECRET_HEADER: ""}, {TELEGRAM_SECRET_HEADER: "guess"}],
    "/webhook/zalo-bot": [{}, {ZALO_BOT_SECRET_HEADER: ""}, {ZALO_BOT_SECRET_HEADER: "guess"}],
}


@EXAMPLES
@given(
    raw=st.one_of(
        bodies(TELEGRAM_UPDATES + ZALO_BOT_UPDATES + OA_EVENTS),
        st.just(b"{" * 1000),
        st.just(b"\xff\xfe not json"),
    ),
    door_index=st.integers(0, 2),
    auth_index=st.integers(0, 2),
)
async def test_unsigned_or_wrongly_signed_requests_get_403_whatever_the_body(
    door: Door, raw: bytes, door_index: int, auth_index: int
) -> None:
    before = await snapshot(door.db)
    if door_index < 2:
        path = sorted(WRONG_AUTH)[door_index]
        headers = {**JSON, **WRONG_AUTH[path][auth_index]}
    else:
        path = "/webhook/zalo-oa"
        headers = [
            JSON,
            oa_headers(raw, secret="not-the-oa-secret"),
            {**JSON, SIGNATURE_HEADER: "mac=" + "0" * 64},
        ][auth_index]
    status = await door.post(path, raw, headers)
    # Telegram and Zalo Bot sign with a header: a wrong one is refused before the body is read,
    # whatever its size. Zalo OA signs the body, so it is read first: over the server's limit
    # it is refused (413) before anything looks at it.
    reads_first = path == "/webhook/zalo-oa"
    expected = 413 if reads_first and len(raw) > MAX_BODY else 403
    assert status == expected, (path, headers, raw[:200])
    await check_answer(door.db, before, status, "", raw)


# --------------------------------------------------------------------------- size


def authorised(path: str, raw: bytes) -> dict[str, str]:
    if path == "/webhook/telegram":
        return {**JSON, TELEGRAM_SECRET_HEADER: TELEGRAM_SECRET}
    if path == "/webhook/zalo-bot":
        return {**JSON, ZALO_BOT_SECRET_HEADER: ZALO_BOT_SECRET}
    if path == "/webhook/zalo-oa":
        return oa_headers(raw)
    return JSON


DOORS = ["/webhook/telegram", "/webhook/zalo-bot", "/webhook/zalo-oa", *sorted(SIM_REQUESTS)]


@pytest.mark.parametrize("streamed", [False, True], ids=["announced", "streamed"])
async def test_a_body_over_one_mebibyte_gets_413_and_writes_nothing(
    door: Door, streamed: bool
) -> None:
    update = {**TELEGRAM_UPDATES[1], "padding": "x" * MAX_BODY}
    raw = encode(update, ascii_only=True)
    assert len(raw) > MAX_BODY
    before = await snapshot(door.db)
    for path in DOORS:

        async def chunks():  # noqa: ANN202  (no Content-Length: the server must count)
            for start in range(0, len(raw), 64 * 1024):
                yield raw[start : start + 64 * 1024]

        response = await door.client.post(
            path, data=chunks() if streamed else raw, headers=authorised(path, raw)
        )
        await response.read()
        await door.settle()
        assert response.status == 413, (path, streamed, response.status)
        await check_answer(door.db, before, response.status, "", raw, note=path)
    # Just under the limit is not refused for its size.
    fits = encode({**TELEGRAM_UPDATES[1], "padding": "x" * (MAX_BODY - 400)}, ascii_only=True)
    assert len(fits) <= MAX_BODY
    status = await door.post("/webhook/telegram", fits, authorised("/webhook/telegram", fits))
    assert status == 200


@pytest.mark.parametrize("path", DOORS)
async def test_the_unbent_updates_reach_the_dispatcher(door: Door, path: str) -> None:
    """The fuzzing starts from updates that are handled (so it probes the parsers and the
    handlers, not only the first `json.loads`): each, as is, is a 200 that records itself."""
    if path == "/webhook/telegram":
        samples, channel = [encode(u, True) for u in TELEGRAM_UPDATES], "telegram"
    elif path == "/webhook/zalo-bot":
        samples, channel = [encode(u, False) for u in ZALO_BOT_UPDATES], "zalo_bot"
    elif path == "/webhook/zalo-oa":
        handled = [e for e in OA_EVENTS if e["event_name"] != "unfollow"]
        samples, channel = [encode(e, False) for e in handled], "zalo_oa"
    else:
        samples, channel = [encode(SIM_REQUESTS[path], False)], "web"
    for number, raw in enumerate(samples):
        raw = raw.replace(b'_id": "', f'_id": "{number}-{uuid.uuid4().hex[:8]}'.encode())
        before = await snapshot(door.db)
        status = await door.post(path, raw, authorised(path, raw))
        await check_answer(door.db, before, status, channel, raw)
        assert status == 200, raw[:200]
        after = await snapshot(door.db)
        assert after.last_inbound > before.last_inbound, f"not recorded: {raw[:200]!r}"
