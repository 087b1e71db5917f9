"""`GET /media/{token}`: the file a signed link names (links are made in bot/core/media_links.py).

Nothing else is served there."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from bot.core.config import Settings
from bot.core.media_links import MediaError, resolve_token

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
