"""Signed, expiring links to the file a database row points to (digest charts and workbooks
sent through the outbox, evidence photos); served by bot/web/media.py.

Zalo cannot receive a file upload for everything we send (the Zalo Bot API's sendPhoto takes
only a URL; neither platform takes an XLSX), so such files are served at
`GET {public_url}/media/{token}`. The token names a row, never a path: an outbox message (by its
idempotency key) and which of its files, or an evidence row (by id), with an expiry, signed
with HMAC-SHA256 under `settings.secret_key`.

    token = base64url(json {"r": "outbox"|"evidence", "i": key, "k": part, "e": expiry})
            "." base64url(signature)

Links are made here, in the core, because the channels that send them (Zalo) must not import
the web pages that serve them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from bot.core.config import Settings

DEFAULT_TTL_SECONDS = 7 * 24 * 3600  # long enough for a chat client to load it again later
_DOMAIN = b"papibot-media-record:"  # links of the older, path-naming form never verify
PARTS = ("photo", "document")


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
