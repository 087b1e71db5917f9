"""Signed, expiring links to files under the data directory (charts, evidence, exports).

Zalo cannot receive a file upload for everything we send (the Zalo Bot API's sendPhoto takes
only a URL; neither platform takes an XLSX), so such files are served at
`GET {public_url}/media/{token}`. The token names the file (relative to the data directory) and
an expiry, signed with HMAC-SHA256 under `settings.secret_key`; nothing else is served there.

    token = base64url(json {"p": relative path, "e": unix expiry}) "." base64url(signature)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import mimetypes
import time
from pathlib import Path

from aiohttp import web

from bot.core.config import Settings

DEFAULT_TTL_SECONDS = 7 * 24 * 3600  # long enough for a chat client to load it again later
MEDIA_ROUTE = "/media/{token}"
_ROUTES_ADDED = web.AppKey("papibot_media_routes", bool)
_SETTINGS_KEY = web.AppKey("papibot_media_settings", Settings)

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


class MediaError(Exception):
    """Why a token or a path is refused: `forbidden` (bad, expired) or `missing`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, body: str) -> bytes:
    return hmac.new(
        secret.encode("utf-8"), b"papibot-media:" + body.encode(), hashlib.sha256
    ).digest()


def relative_to_data(settings: Settings, path: str | Path) -> str:
    """The path as stored in a token: relative to the data directory, which it must be under."""
    root = Path(settings.data_dir).resolve()
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root) or resolved == root:
        raise MediaError("forbidden")
    return resolved.relative_to(root).as_posix()


def sign_path(
    settings: Settings,
    path: str | Path,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> str:
    expires = int((time.time() if now is None else now) + ttl_seconds)
    body = _b64(json.dumps({"p": relative_to_data(settings, path), "e": expires}).encode())
    return f"{body}.{_b64(_signature(settings.secret_key, body))}"


def media_url(settings: Settings, path: str | Path, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
    """The public link to a file under the data directory (settings.public_url must be set)."""
    base = settings.public_url.rstrip("/")
    if not base:
        raise MediaError("no public_url configured: media links cannot be made")
    return f"{base}/media/{sign_path(settings, path, ttl_seconds)}"


def resolve_token(settings: Settings, token: str, now: float | None = None) -> Path:
    """The file a token names. Raises MediaError('forbidden') for a bad, forged or expired
    token or a path outside the data directory, MediaError('missing') when the file is gone."""
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature or len(token) > 2048:
        raise MediaError("forbidden")
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise MediaError("forbidden") from None
    if not hmac.compare_digest(given, _signature(settings.secret_key, body)):
        raise MediaError("forbidden")
    try:
        claims = json.loads(_unb64(body))
        relative, expires = str(claims["p"]), int(claims["e"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise MediaError("forbidden") from None
    if expires < (time.time() if now is None else now):
        raise MediaError("forbidden")
    root = Path(settings.data_dir).resolve()
    if Path(relative).is_absolute() or "\x00" in relative:
        raise MediaError("forbidden")
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or target == root:
        raise MediaError("forbidden")  # a signed token never says this; defence in depth
    if not target.is_file():
        raise MediaError("missing")
    return target


def content_type(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(16)
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    guessed, _encoding = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


async def serve_media(request: web.Request) -> web.StreamResponse:
    settings = request.app[_SETTINGS_KEY]
    try:
        target = resolve_token(settings, request.match_info["token"])
    except MediaError as error:
        status = 404 if error.reason == "missing" else 403
        return web.Response(status=status, text=error.reason)
    return web.FileResponse(
        target,
        headers={
            "Content-Type": content_type(target),
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        },
    )


def add_media_routes(app: web.Application, settings: Settings) -> None:
    """Add `GET /media/{token}` once, however many channels ask for it."""
    if app.get(_ROUTES_ADDED):
        return
    app[_ROUTES_ADDED] = True
    app[_SETTINGS_KEY] = settings
    app.router.add_get(MEDIA_ROUTE, serve_media)
