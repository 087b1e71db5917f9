"""`GET /media/{token}`: the file a signed link's row points to (links: bot/core/media_links.py).

The file served is the one the row names, and only if it lies under the data directory's
`evidence/` or `digests/` folder: whatever the key, no link reaches the database, its WAL, a
backup or anything else (opening the live SQLite file, even to read it, would drop this
process's locks on it).
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web
from sqlmodel import select

from bot.core.config import Settings
from bot.core.media_links import MediaError, MediaRef, read_token
from bot.core.messages import Outgoing
from bot.core.models import Evidence, Outbox

if TYPE_CHECKING:
    from bot.core.context import AppContext

MEDIA_ROUTE = "/media/{token}"
_ROUTES_ADDED = web.AppKey("papibot_media_routes", bool)
_CTX_KEY = web.AppKey("papibot_media_ctx", object)
_DATABASE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".part")

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def _database_files(settings: Settings) -> list[Path]:
    database = settings.sqlite_path
    if database is None:
        return []
    return [Path(f"{database}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]


def confined(settings: Settings, stored: str) -> Path:
    """The file a row stores, only if it lies under `evidence/` or `digests/` of the data
    directory (symbolic links followed) and is none of the database's files. MediaError
    ('forbidden') otherwise, ('missing') when it is allowed but gone."""
    if not stored or "\x00" in stored:
        raise MediaError("missing")
    root = Path(settings.data_dir).resolve()
    candidate = Path(stored)
    target = (candidate if candidate.is_absolute() else root / candidate).resolve()
    folders = (Path(settings.evidence_dir).resolve(), Path(settings.digests_dir).resolve())
    if not any(target.is_relative_to(folder) and target != folder for folder in folders):
        raise MediaError("forbidden")
    if target.name.lower().endswith(_DATABASE_SUFFIXES):
        raise MediaError("forbidden")
    if not target.is_file():
        raise MediaError("missing")
    for database_file in _database_files(settings):  # a hard link into evidence/, say
        if database_file.exists() and os.path.samefile(database_file, target):
            raise MediaError("forbidden")
    return target


async def _stored_file(ctx: AppContext, ref: MediaRef) -> tuple[str, str]:
    """The stored path of the file a row names, and a download name for documents."""
    async with ctx.db.session() as session:
        if ref.record == "evidence":
            if not ref.key.isdigit() or len(ref.key) > 12:
                raise MediaError("missing")
            evidence = await session.get(Evidence, int(ref.key))
            return (evidence.path if evidence else ""), ""
        row = (await session.exec(select(Outbox).where(Outbox.idempotency_key == ref.key))).first()
    if row is None:
        return "", ""
    message = Outgoing.from_payload(row.payload)
    if ref.part == "document":
        return message.document_path, message.document_name
    return message.photo_path, ""


async def resolve_token(ctx: AppContext, token: str, now: float | None = None) -> Path:
    """The file a token's row points to (see `read_token` and `confined`)."""
    ref = read_token(ctx.settings, token, now)
    stored, _name = await _stored_file(ctx, ref)
    return confined(ctx.settings, stored)


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
    ctx: AppContext = request.app[_CTX_KEY]  # type: ignore[assignment]
    try:
        ref = read_token(ctx.settings, request.match_info["token"])
        stored, name = await _stored_file(ctx, ref)
        target = confined(ctx.settings, stored)
    except MediaError as error:
        status = 404 if error.reason == "missing" else 403
        return web.Response(status=status, text=error.reason)
    headers = {
        "Content-Type": content_type(target),
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
    }
    if name:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    return web.FileResponse(target, headers=headers)


def add_media_routes(app: web.Application, ctx: AppContext) -> None:
    """Add `GET /media/{token}` once, however many channels ask for it."""
    if app.get(_ROUTES_ADDED):
        return
    app[_ROUTES_ADDED] = True
    app[_CTX_KEY] = ctx
    app.router.add_get(MEDIA_ROUTE, serve_media)
