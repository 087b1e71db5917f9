"""Signed, expiring links to the file a database row points to (digest charts and workbooks
sent through the outbox, evidence photos).

Zalo cannot receive a file upload for everything we send (the Zalo Bot API's sendPhoto takes
only a URL; neither platform takes an XLSX), so such files are served at
`GET {public_url}/media/{token}`. The token names a row, never a path: an outbox message (by its
idempotency key) and which of its files, or an evidence row (by id), with an expiry, signed
with HMAC-SHA256 under `settings.secret_key`. The file served is the one the row names, and
only if it lies under the data directory's `evidence/` or `digests/` folder: whatever the key,
no link reaches the database, its WAL, a backup or anything else (opening the live SQLite file,
even to read it, would drop this process's locks on it).

    token = base64url(json {"r": "outbox"|"evidence", "i": key, "k": part, "e": expiry})
            "." base64url(signature)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import mimetypes
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web
from sqlmodel import select

from bot.core.config import Settings
from bot.core.messages import Outgoing
from bot.core.models import Evidence, Outbox

if TYPE_CHECKING:
    from bot.core.context import AppContext

DEFAULT_TTL_SECONDS = 7 * 24 * 3600  # long enough for a chat client to load it again later
MEDIA_ROUTE = "/media/{token}"
_ROUTES_ADDED = web.AppKey("papibot_media_routes", bool)
_CTX_KEY = web.AppKey("papibot_media_ctx", object)
_DOMAIN = b"papibot-media-record:"  # links of the older, path-naming form never verify
PARTS = ("photo", "document")
_DATABASE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".part")

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


class MediaError(Exception):
    """Why a token or a file is refused: `forbidden` (bad, expired, not ours) or `missing`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MediaRef:
    """The row a link names: `outbox` (key = idempotency key, part = photo | document) or
    `evidence` (key = its id)."""

    record: str
    key: str
    part: str = "photo"

    @classmethod
    def outbox(cls, idempotency_key: str, part: str = "photo") -> MediaRef:
        return cls("outbox", idempotency_key, part)

    @classmethod
    def evidence(cls, evidence_id: int) -> MediaRef:
        return cls("evidence", str(evidence_id))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, body: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), _DOMAIN + body.encode(), hashlib.sha256).digest()


def sign_ref(
    settings: Settings,
    ref: MediaRef,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> str:
    if ref.record not in ("outbox", "evidence") or ref.part not in PARTS:
        raise MediaError("forbidden")
    expires = int((time.time() if now is None else now) + ttl_seconds)
    claims = {"r": ref.record, "i": ref.key, "k": ref.part, "e": expires}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{body}.{_b64(_signature(settings.secret_key, body))}"


def media_url(settings: Settings, ref: MediaRef, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
    """The public link to the file a row names (settings.public_url must be set)."""
    base = settings.public_url.rstrip("/")
    if not base:
        raise MediaError("no public_url configured: media links cannot be made")
    return f"{base}/media/{sign_ref(settings, ref, ttl_seconds)}"


def read_token(settings: Settings, token: str, now: float | None = None) -> MediaRef:
    """The row a token names. MediaError('forbidden') for a bad, forged or expired token."""
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
        ref = MediaRef(str(claims["r"]), str(claims["i"]), str(claims["k"]))
        expires = int(claims["e"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise MediaError("forbidden") from None
    if expires < (time.time() if now is None else now):
        raise MediaError("forbidden")
    if ref.record not in ("outbox", "evidence") or ref.part not in PARTS:
        raise MediaError("forbidden")
    return ref


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
