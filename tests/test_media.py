"""Signed, expiring media links: a link names a row, and only the file that row points to,
under evidence/ or digests/, is ever served."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.media_links import MediaError, MediaRef, media_url, read_token, sign_ref
from bot.core.messages import Outgoing
from bot.core.services.outbox import enqueue
from bot.web.media import add_media_routes, resolve_token
from tests.helpers.fake_zalo import jpeg_bytes

CHART = "digests/2026-11-30/chart.png"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(secret: str, claims: dict) -> str:
    """A token made by hand (as an attacker who knew the key and the format would)."""
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), b"papibot-media-record:" + body.encode(), hashlib.sha256)
    return f"{body}.{b64(mac.digest())}"


@pytest.fixture
async def ctx(settings: Settings, db, framework) -> AppContext:  # noqa: ANN001
    data = Path(settings.data_dir)
    chart = data / CHART
    chart.parent.mkdir(parents=True, exist_ok=True)
    chart.write_bytes(jpeg_bytes(80, 60))
    (data / "digests" / "2026-11-30" / "book.xlsx").write_bytes(b"PK\x03\x04 fake xlsx")
    (data.parent / "secret.txt").write_text("not for the internet")
    context = AppContext(settings=settings, db=db, framework=framework)
    async with db.session() as session:
        for key, message in (
            ("chart", Outgoing(photo_path=CHART)),
            (
                "book",
                Outgoing(
                    document_path="digests/2026-11-30/book.xlsx", document_name="báo cáo.xlsx"
                ),
            ),
            ("outside", Outgoing(photo_path="../secret.txt")),
            ("absolute", Outgoing(photo_path="/etc/passwd")),
        ):
            await enqueue(session, "zalo_bot", "chat-1", message, key)
        await session.commit()
    return context


@pytest.fixture
async def server(ctx: AppContext):  # noqa: ANN201
    app = web.Application()
    add_media_routes(app, ctx)
    add_media_routes(app, ctx)  # both Zalo channels ask; the route is added once
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ctx.settings.public_url = f"http://127.0.0.1:{port}/"
    async with aiohttp.ClientSession() as client:
        yield client
    await runner.cleanup()


async def fetch(
    client: aiohttp.ClientSession, url: str
) -> tuple[int, bytes, aiohttp.ClientResponse]:
    async with client.get(url) as response:
        return response.status, await response.read(), response


async def test_a_signed_link_serves_the_file_its_outbox_row_names(server, ctx: AppContext) -> None:  # noqa: ANN001
    settings = ctx.settings
    url = media_url(settings, MediaRef.outbox("chart", "photo"))
    assert url.startswith(settings.public_url.rstrip("/") + "/media/")
    status, body, response = await fetch(server, url)
    assert status == 200 and body == (settings.data_dir / CHART).read_bytes()
    assert response.headers["Content-Type"] == "image/jpeg"
    status, body, response = await fetch(
        server, media_url(settings, MediaRef.outbox("book", "document"))
    )
    assert status == 200 and body.startswith(b"PK")
    assert "attachment" in response.headers["Content-Disposition"]
    assert (
        await resolve_token(ctx, sign_ref(settings, MediaRef.outbox("chart")))
        == (settings.data_dir / CHART).resolve()
    )


async def test_bad_expired_and_forged_tokens_are_refused(server, ctx: AppContext) -> None:  # noqa: ANN001
    settings = ctx.settings
    base = settings.public_url.rstrip("/") + "/media/"
    good = sign_ref(settings, MediaRef.outbox("chart"))
    body, signature = good.split(".")
    tampered = b64(
        json.dumps({"r": "outbox", "i": "book", "k": "document", "e": 9999999999}).encode()
    )
    for token in (
        "nonsense",
        f"{body}.",
        f"{body}.{signature[:-2]}AA",
        f"{tampered}.{signature}",
        forge("another-secret", {"r": "outbox", "i": "chart", "k": "photo", "e": 9999999999}),
        forge(settings.secret_key, {"r": "file", "i": "papibot.db", "k": "photo", "e": 9999999999}),
    ):
        assert (await fetch(server, base + token))[0] == 403, token
    expired = sign_ref(settings, MediaRef.outbox("chart"), ttl_seconds=-1)
    assert (await fetch(server, base + expired))[0] == 403
    with pytest.raises(MediaError):
        read_token(
            settings, sign_ref(settings, MediaRef.outbox("chart"), 60), now=time.time() + 120
        )
    async with server.get(base + "..%2F..%2Fsecret.txt") as response:
        assert response.status == 403


async def test_a_row_pointing_outside_evidence_and_digests_serves_nothing(
    server, ctx: AppContext
) -> None:  # noqa: ANN001
    settings = ctx.settings
    for key in ("outside", "absolute"):
        status, body, _response = await fetch(server, media_url(settings, MediaRef.outbox(key)))
        assert status == 403 and b"internet" not in body and b"root:" not in body, key
    # No such row, no such evidence, or the row's file removed: 404.
    assert (await fetch(server, media_url(settings, MediaRef.outbox("never-queued"))))[0] == 404
    assert (await fetch(server, media_url(settings, MediaRef.evidence(123456))))[0] == 404
    (settings.data_dir / CHART).unlink()
    assert (await fetch(server, media_url(settings, MediaRef.outbox("chart"))))[0] == 404


async def test_no_public_url_means_no_link(ctx: AppContext) -> None:
    ctx.settings.public_url = ""
    with pytest.raises(MediaError):
        media_url(ctx.settings, MediaRef.outbox("chart"))
