"""Signed, expiring media links: only the file a valid token names is ever served."""

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
from bot.web.media import MediaError, add_media_routes, media_url, resolve_token, sign_path
from tests.helpers.fake_zalo import jpeg_bytes


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(secret: str, claims: dict) -> str:
    """A token made by hand (as an attacker who knew the key format, or a bug, would)."""
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), b"papibot-media:" + body.encode(), hashlib.sha256).digest()
    return f"{body}.{b64(mac)}"


@pytest.fixture
def files(settings: Settings) -> dict[str, Path]:
    data = Path(settings.data_dir)
    chart = data / "charts" / "digest.png"
    chart.parent.mkdir(parents=True, exist_ok=True)
    chart.write_bytes(jpeg_bytes(80, 60))
    evidence = data / "evidence" / "ab" / ("ab" + "0" * 62)  # stored without an extension
    evidence.parent.mkdir(parents=True, exist_ok=True)
    evidence.write_bytes(jpeg_bytes(30, 20, "red"))
    outside = data.parent / "secret.txt"
    outside.write_text("not for the internet")
    return {"chart": chart, "evidence": evidence, "outside": outside}


@pytest.fixture
async def server(settings: Settings):  # noqa: ANN201
    app = web.Application()
    add_media_routes(app, settings)
    add_media_routes(app, settings)  # both Zalo channels ask; the route is added once
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    settings.public_url = f"http://127.0.0.1:{port}/"
    async with aiohttp.ClientSession() as client:
        yield client
    await runner.cleanup()


async def fetch(client: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str]:
    async with client.get(url) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


async def test_a_signed_link_serves_its_file(server, settings: Settings, files) -> None:  # noqa: ANN001
    url = media_url(settings, "charts/digest.png")
    assert url.startswith(settings.public_url.rstrip("/") + "/media/")
    status, body, mime = await fetch(server, url)
    assert status == 200 and body == files["chart"].read_bytes() and mime == "image/jpeg"
    # Absolute paths under the data directory are accepted too; type sniffed from the bytes.
    status, body, mime = await fetch(server, media_url(settings, files["evidence"]))
    assert status == 200 and body == files["evidence"].read_bytes() and mime == "image/jpeg"


async def test_bad_expired_and_forged_tokens_are_refused(server, settings: Settings, files) -> None:  # noqa: ANN001
    base = settings.public_url.rstrip("/") + "/media/"
    good = sign_path(settings, "charts/digest.png")
    body, signature = good.split(".")
    tampered_body = b64(
        json.dumps({"p": "evidence/ab/" + "ab" + "0" * 62, "e": 9999999999}).encode()
    )
    for token in (
        "nonsense",
        f"{body}.",
        f"{body}.{signature[:-2]}AA",
        f"{tampered_body}.{signature}",
        forge("another-secret", {"p": "charts/digest.png", "e": 9999999999}),
    ):
        status, _body, _mime = await fetch(server, base + token)
        assert status == 403, token
    expired = sign_path(settings, "charts/digest.png", ttl_seconds=-1)
    assert (await fetch(server, base + expired))[0] == 403
    with pytest.raises(MediaError):
        resolve_token(settings, sign_path(settings, "charts/digest.png", 60), now=time.time() + 120)

    # A valid signature on a path that climbs out of the data directory is still refused.
    for path in ("../secret.txt", "/etc/passwd", "charts/../../secret.txt", ""):
        token = forge(settings.secret_key, {"p": path, "e": 9999999999})
        assert (await fetch(server, base + token))[0] == 403, path
    with pytest.raises(MediaError):
        sign_path(settings, "../secret.txt")
    with pytest.raises(MediaError):
        sign_path(settings, files["outside"])
    # Dot segments in the URL itself never reach the file system either.
    async with server.get(base + "..%2F..%2Fsecret.txt") as response:
        assert response.status == 403

    # A file that was removed: 404.
    gone = sign_path(settings, "charts/digest.png")
    files["chart"].unlink()
    assert (await fetch(server, base + gone))[0] == 404


async def test_no_public_url_means_no_link(settings: Settings, files) -> None:  # noqa: ANN001
    settings.public_url = ""
    with pytest.raises(MediaError):
        media_url(settings, "charts/digest.png")
