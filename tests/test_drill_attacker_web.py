"""Attacker drill, the web side: papibot started with a public URL and the settings a hurried
operator leaves as they are, then tried from outside.

Each test is one finding of issue 10 (settings, routes, media links, logs, slow clients, a full
disk) and fails on the code before it was fixed.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import hmac
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import SQLModel, select

from bot.app.cli import main as cli_main
from bot.app.runtime import build_runtime
from bot.app.server import build_app, served
from bot.core import logsafe
from bot.core.config import Settings, production_problems
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.media_links import MediaRef, media_url
from bot.core.messages import Outgoing
from bot.core.models import Evidence, InboundUpdate, Occurrence, Outbox, Report
from bot.core.services.outbox import enqueue
from bot.web.media import add_media_routes
from tests.helpers.fake_zalo import jpeg_bytes
from tests.helpers.rows import count
from tests.helpers.world import build_world
from tests.test_web_simulator import Sim, _awaiting_photos

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k" * 20 + "-strong-enough-1234567890"
TOKEN = "7788990011:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
ZALO_ACCESS_TOKEN = "oa-access-Zk9xQ2mPq7RtYv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def papibot_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """A clean environment for `papibot` in a subprocess: no PAPIBOT_* from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPIBOT_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PAPIBOT_DATA_DIR"] = str(tmp_path / "data")
    env.update({f"PAPIBOT_{key.upper()}": value for key, value in values.items()})
    return env


def papibot(*args: str, env: dict[str, str], cwd: Path, **kwargs) -> subprocess.Popen:  # noqa: ANN003
    return subprocess.Popen(
        [sys.executable, "-m", "bot.app.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# ---------------------------------------------------------------------- 1. unsafe settings


def test_production_with_the_default_secret_key_refuses_to_start(tmp_path: Path) -> None:
    env = papibot_env(tmp_path, public_url="https://x.example", secret_key="change-me")
    process = papibot("run", env=env, cwd=tmp_path)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()  # it started serving: the very finding
        process.communicate()
        pytest.fail("papibot run started with the default secret key and a public URL")
    assert process.returncode == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "PAPIBOT_SECRET_KEY" in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"secret_key": "short-but-not-default"}, "PAPIBOT_SECRET_KEY"),
        ({"telegram_token": TOKEN}, "PAPIBOT_TELEGRAM_WEBHOOK_SECRET"),
        ({"zalo_bot_token": "123:zalo"}, "PAPIBOT_ZALO_BOT_WEBHOOK_SECRET"),
        ({"zalo_oa_app_id": "4242"}, "PAPIBOT_ZALO_OA_SECRET_KEY"),
        ({"simulator_enabled": "true"}, "PAPIBOT_SIMULATOR_ENABLED"),
    ],
)
def test_production_refuses_each_unsafe_setting_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: dict[str, str],
    named: str,
) -> None:
    for key in [k for k in os.environ if k.startswith("PAPIBOT_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no .env
    values = {"public_url": "https://x.example", "secret_key": STRONG_KEY, **settings}
    for key, value in values.items():
        monkeypatch.setenv(f"PAPIBOT_{key.upper()}", value)

    async def serves(ctx: AppContext) -> None:
        pytest.fail("papibot run started serving with an unsafe setting")

    monkeypatch.setattr("bot.app.server.run_forever", serves)
    assert cli_main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err


def test_local_use_needs_no_secret_at_all(tmp_path: Path) -> None:
    """`make demo`: no public URL, default key, no webhook secrets, the simulator on."""
    local = Settings(_env_file=None, data_dir=tmp_path, telegram_token=TOKEN)
    assert local.simulator_on and production_problems(local) == []
    assert production_problems(local.model_copy(update={"public_url": "https://x.example"}))


def test_papibot_secret_prints_a_new_long_key_each_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["secret"]) == 0
    first = capsys.readouterr().out.strip()
    assert cli_main(["secret"]) == 0
    second = capsys.readouterr().out.strip()
    assert len(first) >= 32 and first != second and first != "change-me"


async def test_a_webhook_secret_computed_from_the_key_opens_nothing(
    settings: Settings, db: Database, framework: Framework
) -> None:
    """The Telegram webhook secret used to be an HMAC of the (default) key when none was set:
    anyone could compute it and post a forged button tap."""
    world = await build_world(settings, db, framework)
    settings.public_url = "https://x.example"
    settings.telegram_token = TOKEN
    settings.telegram_api_url = "http://127.0.0.1:9"
    settings.simulator_enabled = False
    forged = hmac.new(settings.secret_key.encode(), b"telegram-webhook", hashlib.sha256)
    update = {
        "update_id": 1,
        "callback_query": {
            "id": "1",
            "from": {"id": 42, "is_bot": False, "first_name": "x"},
            "chat_instance": "1",
            "data": "done:1",
        },
    }
    client = TestClient(TestServer(build_app(build_runtime(world.app)), host="127.0.0.1"))
    await client.start_server()
    try:
        response = await client.post(
            "/webhook/telegram",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": forged.hexdigest()},
        )
        assert response.status == 404  # no secret of its own: no webhook mounted at all
    finally:
        await client.close()
    assert await count(db, InboundUpdate) == 0


async def test_production_with_strong_settings_starts_serves_healthz_and_stops(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = papibot_env(
        tmp_path,
        public_url="https://x.example",
        secret_key=STRONG_KEY,
        telegram_token=TOKEN,
        telegram_api_url="http://127.0.0.1:9",  # unreachable: retried in the background
        telegram_webhook_secret="tg-webhook-secret-0123456789",
        http_port=str(port),
        scheduler_enabled="false",
    )
    init = papibot("init", env=env, cwd=tmp_path)
    assert init.wait(timeout=120) == 0, init.communicate()
    process = papibot("run", env=env, cwd=tmp_path)
    try:
        status, body = 0, {}
        async with aiohttp.ClientSession() as client:
            for _ in range(300):
                try:
                    async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                        status, body = response.status, await response.json()
                        break
                except aiohttp.ClientConnectionError:
                    assert process.poll() is None, process.communicate()
                    await asyncio.sleep(0.2)
            async with client.post(f"http://127.0.0.1:{port}/webhook/telegram", data=b"{}") as r:
                webhook_status = r.status  # mounted, and closed to a request without the secret
            async with client.get(f"http://127.0.0.1:{port}/sim") as r:
                sim_status = r.status
        assert (status, body) == (200, {"status": "ok"})
        assert webhook_status == 403 and sim_status == 404
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    banner = next(line for line in out.splitlines() if "papibot is running" in line)
    assert "POST /webhook/telegram" in banner and "/sim" not in banner, banner
    assert TOKEN not in out + err and TOKEN.split(":")[1] not in out + err


# ---------------------------------------------------------------------- 2. routes with a reason


async def test_polling_mode_mounts_no_webhook_and_the_landing_page_shows_no_unit(
    settings: Settings, db: Database, framework: Framework
) -> None:
    world = await build_world(settings, db, framework)
    settings.telegram_token = TOKEN  # no public URL: Telegram and Zalo Bot poll
    settings.zalo_bot_token = "123:zalo"
    settings.telegram_api_url = settings.zalo_bot_api_url = "http://127.0.0.1:9"
    settings.simulator_enabled = False
    runtime = build_runtime(world.app)
    app = build_app(runtime)
    assert not [entry for entry in served(app) if "webhook" in entry], served(app)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        for path in ("/webhook/telegram", "/webhook/zalo-bot"):
            response = await client.post(path, json={"update_id": 1})
            assert response.status == 404, path
        response = await client.get("/")
        page = await response.text()
        assert response.status == 200 and "liên kết" in page
        for unit in (world.district, world.commune, *world.villages):
            assert unit.name not in page
        assert "/sim" not in page  # not served, not offered
    finally:
        await client.close()


# ---------------------------------------------------------------------- 3. media by record


def old_style_token(secret: str, path: str) -> str:
    """A link of the former kind, naming a path (as forged against papibot.db)."""
    body = base64.urlsafe_b64encode(json.dumps({"p": path, "e": 9999999999}).encode())
    body_text = body.rstrip(b"=").decode()
    mac = hmac.new(secret.encode(), b"papibot-media:" + body_text.encode(), hashlib.sha256)
    return f"{body_text}.{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"


@pytest.fixture
async def sqlite_ctx(settings: Settings, framework: Framework) -> AsyncIterator[AppContext]:
    """The live SQLite database in the data directory, as in production."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    async with database.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    yield AppContext(settings=settings, db=database, framework=framework)
    await database.dispose()


async def test_no_media_link_reaches_the_database_its_wal_or_a_backup(
    sqlite_ctx: AppContext,
) -> None:
    ctx = sqlite_ctx
    settings = ctx.settings
    data = settings.data_dir
    (data / "backups").mkdir()
    (data / "backups" / "papibot-20261130.tar.gz").write_bytes(b"backup with tokens")
    (data / "evidence" / "ab").mkdir(parents=True)
    (data / "digests").mkdir()
    (data / "evidence" / "ab" / "link-to-db").symlink_to(data / "papibot.db")
    os.link(data / "papibot.db", data / "digests" / "hardlink")
    pointed = {
        "db": "papibot.db",
        "wal": "papibot.db-wal",
        "abs": str((data / "papibot.db").resolve()),
        "backup": "backups/papibot-20261130.tar.gz",
        "climb": "evidence/../papibot.db",
        "symlink": "evidence/ab/link-to-db",
        "hardlink": "digests/hardlink",
    }
    async with ctx.db.session() as session:
        for key, path in pointed.items():
            await enqueue(session, "zalo_bot", "chat", Outgoing(photo_path=path), key)
        await session.commit()
    assert (data / "papibot.db-wal").exists()  # the server is writing to it right now
    app = web.Application()
    add_media_routes(app, ctx)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    settings.public_url = str(client.make_url("/")).rstrip("/")
    try:
        for key in pointed:  # signed with the right key, naming a real row
            url = media_url(settings, MediaRef.outbox(key))
            response = await client.get(url[len(settings.public_url) :])
            body = await response.read()
            assert response.status in (403, 404), key
            assert b"SQLite" not in body and b"tokens" not in body, key
        for path in ("papibot.db", "papibot.db-wal", "backups/papibot-20261130.tar.gz"):
            response = await client.get("/media/" + old_style_token(settings.secret_key, path))
            assert response.status == 403, path
    finally:
        await client.close()
    # The database is still whole and writable by this process.
    async with ctx.db.session() as session:
        await enqueue(session, "zalo_bot", "chat", Outgoing(text="after"), "after")
        await session.commit()
    assert await count(ctx.db, Outbox) == len(pointed) + 1


async def test_an_evidence_link_serves_the_photo_its_row_points_to(
    settings: Settings, db: Database, framework: Framework
) -> None:
    world = await build_world(settings, db, framework)
    head = await world.person("Trưởng thôn", world.villages[0], "village_head")
    photo = jpeg_bytes(40, 30)
    relative = Path("evidence") / "cd" / ("cd" + "1" * 62)
    (settings.data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / relative).write_bytes(photo)
    async with db.session() as session:
        occurrence = (await session.exec(select(Occurrence))).first()
        if occurrence is None:
            pytest.fail("the world has no occurrence to report on")
        report = Report(occurrence_id=occurrence.id, user_id=head.id, kind="done")
        session.add(report)
        await session.flush()
        evidence = Evidence(
            report_id=report.id, sha256="cd" + "1" * 62, path=str(relative), size=len(photo)
        )
        session.add(evidence)
        await session.commit()
        evidence_id = evidence.id
    app = web.Application()
    add_media_routes(app, world.app)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    settings.public_url = str(client.make_url("/")).rstrip("/")
    try:
        url = media_url(settings, MediaRef.evidence(evidence_id))
        response = await client.get(url[len(settings.public_url) :])
        assert response.status == 200 and await response.read() == photo
    finally:
        await client.close()


# ---------------------------------------------------------------------- 4. secrets in logs


async def test_a_token_in_a_failing_url_never_reaches_the_log(settings: Settings) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=502, text="bad gateway")

    fake = web.Application()
    fake.router.add_route("*", "/{tail:.*}", broken)
    runner = web.AppRunner(fake)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    settings.telegram_token = TOKEN
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("papibot.drill")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    factory = logging.getLogRecordFactory()
    try:
        logsafe.install(settings, root=logger)
        async with aiohttp.ClientSession(raise_for_status=True) as client:
            for url in (
                f"http://127.0.0.1:{port}/bot{TOKEN}/getMe",
                f"http://127.0.0.1:{port}/bot999:rotated-token-not-in-settings/getMe",
                f"http://127.0.0.1:{port}/v2.0/oa/getprofile?access_token={ZALO_ACCESS_TOKEN}",
            ):
                try:
                    async with client.get(url):
                        pass
                except aiohttp.ClientResponseError as error:
                    logger.warning("platform call failed: %s", error)
                    logger.exception("the same, with its traceback")
                    logger.info("request %s", error.request_info.real_url)
        media = media_url(
            settings.model_copy(update={"public_url": "https://x.example"}), MediaRef.outbox("k")
        )
        logger.info('"GET %s HTTP/1.1" 200', media.removeprefix("https://x.example"))
    finally:
        logging.setLogRecordFactory(factory)  # the rest of the suite logs as before
        logger.removeHandler(handler)
        await runner.cleanup()
    log = stream.getvalue()
    assert "502" in log and "getMe" in log and "/bot***/" in log
    assert "GET /media/*** HTTP/1.1" in log  # a signed link is a bearer credential too
    signed = media.rsplit("/", 1)[1]
    for secret in (
        TOKEN,
        TOKEN.split(":")[1],
        "rotated-token-not-in-settings",
        ZALO_ACCESS_TOKEN,
        signed,
    ):
        assert secret not in log, secret


# ---------------------------------------------------------------------- 5. the server holds up


@pytest.fixture
async def webhook_server(
    settings: Settings, db: Database, framework: Framework
) -> AsyncIterator[tuple[int, AppContext]]:
    settings.public_url = "https://x.example"
    settings.telegram_token = TOKEN
    settings.telegram_api_url = "http://127.0.0.1:9"
    settings.telegram_webhook_secret = "tg-webhook-secret-0123456789"
    settings.simulator_enabled = False
    settings.http_body_timeout_seconds = 0.5
    ctx = AppContext(settings=settings, db=db, framework=framework)
    runner = web.AppRunner(build_app(build_runtime(ctx)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1], ctx
    await runner.cleanup()


def slow_request(length: int) -> bytes:
    return (
        "POST /webhook/telegram HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "X-Telegram-Bot-Api-Secret-Token: tg-webhook-secret-0123456789\r\n"
        f"Content-Length: {length}\r\n\r\n{{"
    ).encode()


async def test_a_slow_body_gets_408_and_an_aborted_one_no_traceback(
    webhook_server: tuple[int, AppContext], caplog: pytest.LogCaptureFixture
) -> None:
    port, _ctx = webhook_server
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(slow_request(500))  # one byte of 500, then nothing
    await writer.drain()
    started = time.monotonic()
    answer = await asyncio.wait_for(reader.read(1024), timeout=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < 5
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(slow_request(500))
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.transport.abort()  # the client goes away mid-body
    await asyncio.sleep(0.8)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING]
    went_away = [r for r in caplog.records if "client went away" in r.getMessage()]
    assert went_away and all(r.levelno == logging.DEBUG for r in went_away)


async def test_healthz_says_why_it_is_not_ok_and_never_echoes_an_exception(
    settings: Settings, db: Database, framework: Framework, tmp_path: Path
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ctx = AppContext(settings=settings, db=db, framework=framework)
    client = TestClient(
        TestServer(build_app(build_runtime(ctx, lambda c, d: {})), host="127.0.0.1")
    )
    await client.start_server()
    try:

        async def health() -> tuple[int, dict]:
            response = await client.get("/healthz")
            return response.status, await response.json()

        assert await health() == (200, {"status": "ok"})
        settings.min_free_disk_mb = 10**12  # a threshold no disk meets: "nearly full"
        assert await health() == (503, {"status": "error", "reason": "disk nearly full"})
        settings.min_free_disk_mb = 0
        not_a_dir = tmp_path / "not-a-directory"
        not_a_dir.write_text("a file where the data directory should be")
        settings.data_dir = not_a_dir
        assert await health() == (
            503,
            {"status": "error", "reason": "data directory is not writable"},
        )
    finally:
        await client.close()

    (tmp_path / "a-directory").mkdir()  # SQLite cannot open it
    gone = Database(f"sqlite+aiosqlite:///{tmp_path / 'a-directory'}")
    broken = AppContext(settings=settings, db=gone, framework=framework)
    client = TestClient(
        TestServer(build_app(build_runtime(broken, lambda c, d: {})), host="127.0.0.1")
    )
    await client.start_server()
    try:
        response = await client.get("/healthz")
        text = await response.text()
        assert response.status == 503
        assert json.loads(text) == {"status": "error", "reason": "database unavailable"}
        assert "sqlite" not in text.lower() and "unable" not in text and str(tmp_path) not in text
    finally:
        await client.close()
        await gone.dispose()


@pytest.fixture
async def sim(settings: Settings, db: Database, framework: Framework) -> AsyncIterator[Sim]:
    from bot.app.demo import seed_demo

    world = await build_world(settings, db, framework)
    await seed_demo(world.app)
    client = TestClient(TestServer(build_app(build_runtime(world.app)), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Sim(world, client)
    finally:
        await client.close()


async def test_a_full_disk_during_an_upload_leaves_no_part_file_and_says_so(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, _occurrence = await _awaiting_photos(sim)
    mark = await sim.last_id(chat)
    real_write = Path.write_bytes

    def disk_fills_up(self: Path, data: bytes) -> int:  # noqa: ANN001
        if self.name.endswith(".part"):
            real_write(self, data[: len(data) // 2])  # half written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_fills_up)
    await sim.upload(chat, jpeg_bytes(64, 48), "anh.jpg", "image/jpeg")  # 200, not a raw 500
    replies = [m["text"] for m in await sim.messages(chat, mark)]
    assert any("hết chỗ lưu ảnh" in text for text in replies), replies
    assert list(sim.world.app.settings.data_dir.rglob("*.part")) == []
    assert draft_files(sim.world.app.settings) == []
    assert await count(sim.db, Evidence) == 0

    monkeypatch.setattr(Path, "write_bytes", real_write)  # room again: the same photo is taken
    await sim.upload(chat, jpeg_bytes(64, 48), "anh.jpg", "image/jpeg")
    assert len(draft_files(sim.world.app.settings)) == 1


def draft_files(settings) -> list[Path]:  # noqa: ANN001
    """A draft's photos wait in uploads/ until the report is sent (then move to evidence/)."""
    root = settings.data_dir / "uploads"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []
