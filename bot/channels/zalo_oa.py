"""Zalo Official Account (Open API v3): the OA the commune follows in the Zalo app.

Inbound: `POST /webhook/zalo-oa`, signed in `X-ZEvent-Signature` as
`mac=` hex SHA-256 of `app_id + raw body + timestamp + OA secret key` (the timestamp being the
body's own field, epoch milliseconds). The signature is checked on the raw bytes before anything
is handled, and an event signed longer ago than `zalo_oa_replay_window_seconds` is refused. Zalo
ids are larger than 2^53, so numbers in the body are kept as their text, never as floats/ints.

Outbound: `POST /v3.0/oa/message/cs` (consultation messages) with the `access_token` header.
Errors come back with HTTP 200 and `error != 0`. Buttons (≤ 5) are a template attachment of
`oa.query.hide` buttons; a tap comes back as a user_send_text whose text is the button payload.
Photos are uploaded first (`/v2.0/oa/upload/image`, ≤ 1 MB) and sent as a media template.

Zalo allows consultation messages only within 7 days of the user's last message (free within
48 hours): `within_window` (bot/core/capabilities.py) says whether an identity may still be
written to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import mimetypes
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image, ImageOps

from bot.channels.base import DeliveryError, loads_body
from bot.channels.zalo_bot import ZaloHTTPChannel, update_key
from bot.channels.zalo_tokens import Token, ZaloTokenStore
from bot.core.capabilities import CAPABILITIES, uses_numbered_menu, within_window
from bot.core.context import AppContext
from bot.core.messages import Incoming, IncomingFile, Kind, Outgoing, numbered_menu, split_text
from bot.core.services.people import identity_for
from bot.core.services.reach import record_receipts

log = logging.getLogger(__name__)

CHANNEL = "zalo_oa"
WEBHOOK_PATH = "/webhook/zalo-oa"
SIGNATURE_HEADER = "X-ZEvent-Signature"
SEND_PATH = "/v3.0/oa/message/cs"
UPLOAD_IMAGE_PATH = "/v2.0/oa/upload/image"
TEXT_LIMIT = CAPABILITIES[CHANNEL].text_limit  # 2,000 characters
MAX_BUTTONS = CAPABILITIES[CHANNEL].max_buttons  # 5
BUTTON_TITLE_LIMIT = 100
IMAGE_LIMIT = 1_000_000  # Zalo refuses uploads over 1 MB
IMAGE_MAX_SIDE = 2048


TOKEN_ERRORS = {-216, -220, -124}  # access token invalid / expired
RATE_LIMITED = -32
NOT_FOLLOWING = -213
OUTSIDE_WINDOW = {-230, -232}
# Zalo's receipts, for consultation messages and ZNS alike: delivered to the phone, or seen.
RECEIPT_EVENTS = {"user_received_message": False, "user_seen_message": True}
RECEIPT_RETRIES = (0.2, 0.5, 1.0, 2.0, 5.0)  # seconds before trying an unmatched receipt again

BUTTON_PAYLOAD = re.compile(r"^([a-z]{2,12}):[A-Za-z0-9_:\-]{1,60}$")


# ---------------------------------------------------------------------- signatures and images


def signature(app_id: str, raw_body: bytes, timestamp: str, secret_key: str) -> str:
    """Zalo's webhook MAC: plain SHA-256 (not HMAC) over app id, body, timestamp and key."""
    material = app_id.encode() + raw_body + timestamp.encode() + secret_key.encode()
    return hashlib.sha256(material).hexdigest()


def fit_image(data: bytes, limit: int = IMAGE_LIMIT) -> tuple[bytes, str]:
    """The image as JPEG/PNG of at most `limit` bytes (downscaled and recompressed as needed);
    returns the bytes and a file name with the right extension."""
    with Image.open(io.BytesIO(data)) as probe:
        kind = probe.format
    if len(data) <= limit and kind in ("JPEG", "PNG"):
        return data, "image.png" if kind == "PNG" else "image.jpg"
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, "white")
            background.paste(image, mask=image.split()[-1])
            image = background
        elif image.mode != "RGB":
            image = image.convert("RGB")
    image.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
    quality = 85
    while True:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
        if buffer.tell() <= limit:
            return buffer.getvalue(), "image.jpg"
        if quality > 55:
            quality -= 10
        else:
            width, height = image.size
            if width < 64 or height < 64:
                return buffer.getvalue(), "image.jpg"
            image = image.resize((int(width * 0.75), int(height * 0.75)))


# ---------------------------------------------------------------------- the channel


class ZaloOAChannel(ZaloHTTPChannel):
    name = CHANNEL

    def __init__(self, ctx: AppContext, dispatcher: Any) -> None:
        super().__init__(ctx, dispatcher)
        self.tokens = ZaloTokenStore(ctx.db, ctx.settings, self.http)
        self.rate_limit_retry_after = 30.0  # Zalo's -32 says no wait time: half a minute
        self._receipt_tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ platform calls

    @property
    def api_base(self) -> str:
        return self.settings.zalo_oa_api_url.rstrip("/")

    async def _post(self, path: str, token: Token, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            async with self.http().post(
                self.api_base + path, headers={"access_token": token.access_token}, **kwargs
            ) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise DeliveryError(f"Zalo OA {path}: {type(error).__name__}: {error}") from error
        if status == 429:
            raise DeliveryError(
                f"Zalo OA {path}: HTTP 429", retry_after=self.rate_limit_retry_after
            )
        if status >= 500:
            raise DeliveryError(f"Zalo OA {path}: HTTP {status}")
        try:
            body = json.loads(text, parse_int=str) if text else {}
        except ValueError:
            body = {}
        if status != 200 or not isinstance(body, dict):
            raise DeliveryError(f"Zalo OA {path}: HTTP {status} {text[:200]}", permanent=True)
        try:
            error = int(str(body.get("error", "0")))
        except ValueError:
            error = -1
        return error, body

    async def api(
        self,
        path: str,
        json_body: dict[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> dict[str, Any]:
        """One OA API call with the stored token; an expired token is refreshed once."""

        def request_args() -> dict[str, Any]:
            return {"data": form()} if form is not None else {"json": json_body or {}}

        token = await self.tokens.current()
        error, body = await self._post(path, token, **request_args())
        if error in TOKEN_ERRORS:
            token = await self.tokens.refresh(token.version)
            error, body = await self._post(path, token, **request_args())
        if error == 0:
            data = body.get("data")
            return data if isinstance(data, dict) else {}
        raise self._error(path, error, body)

    def _error(self, path: str, error: int, body: dict[str, Any]) -> DeliveryError:
        message = f"Zalo OA {path}: error {error} {str(body.get('message') or '')[:300]}"
        if error in TOKEN_ERRORS:
            return DeliveryError(message + " (after a token refresh)")
        if error == RATE_LIMITED:
            return DeliveryError(message, retry_after=self.rate_limit_retry_after)
        if error == NOT_FOLLOWING:
            return DeliveryError(message, unreachable=True)
        if error in OUTSIDE_WINDOW:
            # Not retried: the window opens again only when the person writes.
            return DeliveryError(message, permanent=True, reason="outside_window")
        return DeliveryError(message, permanent=True)

    async def _send_message(self, user_id: str, message: dict[str, Any]) -> str:
        data = await self.api(
            SEND_PATH, json_body={"recipient": {"user_id": user_id}, "message": message}
        )
        return str(data.get("message_id") or "")

    async def upload_image(self, path: Path) -> str:
        data, filename = await asyncio.to_thread(lambda: fit_image(path.read_bytes()))
        mime = mimetypes.guess_type(filename)[0] or "image/jpeg"

        def form() -> aiohttp.FormData:
            built = aiohttp.FormData()
            built.add_field("file", data, filename=filename, content_type=mime)
            return built

        result = await self.api(UPLOAD_IMAGE_PATH, form=form)
        attachment_id = str(result.get("attachment_id") or "")
        if not attachment_id:
            raise DeliveryError("Zalo OA image upload returned no attachment_id", permanent=True)
        return attachment_id

    # ------------------------------------------------------------------ sending

    async def _check_window(self, external_id: str) -> None:
        async with self.ctx.db.session() as session:
            identity = await identity_for(session, CHANNEL, external_id)
        # No identity: a stranger we are answering right after their own message.
        if identity is not None and not within_window(identity):
            raise DeliveryError(
                "Zalo OA: the person has not written for over 7 days; Zalo allows no message",
                permanent=True,
                reason="outside_window",
            )

    async def send(self, external_id: str, message: Outgoing, idempotency_key: str) -> str:
        await self._check_window(external_id)
        buttons = message.flat_buttons()
        text = message.text
        if uses_numbered_menu(CHANNEL, len(buttons)):
            text, _menu = numbered_menu(message)
            buttons = []
        if message.document_path:
            url = self.link(idempotency_key, "document")
            name = message.document_name or "tệp"
            text = f"{text}\n\n📎 {name}: {url}" if url else text
        parts = split_text(text, TEXT_LIMIT) if text else []
        last_id = ""
        if message.photo_path:
            path = Path(self.settings.data_dir) / message.photo_path
            attachment_id = await self.upload_image(path)
            media: dict[str, Any] = {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "media",
                        "elements": [{"media_type": "image", "attachment_id": attachment_id}],
                    },
                }
            }
            if len(parts) == 1 and not buttons:
                media["text"] = parts.pop()
            last_id = await self._send_message(external_id, media)
        for index, part in enumerate(parts):
            body: dict[str, Any] = {"text": part}
            if buttons and index == len(parts) - 1:
                body["attachment"] = {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "buttons": [
                            {
                                "title": button.label[:BUTTON_TITLE_LIMIT],
                                "payload": button.data,
                                "type": "oa.query.hide",
                            }
                            for button in buttons[:MAX_BUTTONS]
                        ],
                    },
                }
            last_id = await self._send_message(external_id, body)
        return last_id

    # ------------------------------------------------------------------ receiving

    def _button_actions(self) -> set[str]:
        return set(self.dispatcher.button_actions)

    def to_incomings(self, body: dict[str, Any]) -> list[Incoming]:
        """A verified event as Incoming updates (several for an album of images)."""
        event = str(body.get("event_name") or "")
        timestamp = str(body.get("timestamp") or "")
        if event in ("follow", "unfollow"):
            follower = body.get("follower") if isinstance(body.get("follower"), dict) else {}
            user = str(follower.get("id") or body.get("user_id_by_app") or "")
            if not user or event == "unfollow":
                return []
            return [
                Incoming(
                    channel=CHANNEL,
                    external_id=user,
                    update_id=update_key(f"follow:{user}:{timestamp}"),
                    kind=Kind.follow,
                )
            ]
        if not event.startswith("user_send_"):
            return []  # oa_send_* echoes, user_seen_message, user_received_message …
        sender = body.get("sender") if isinstance(body.get("sender"), dict) else {}
        message = body.get("message") if isinstance(body.get("message"), dict) else {}
        user = str(sender.get("id") or "")
        msg_id = str(message.get("msg_id") or "")
        if not user or not msg_id or len(user) > 64:
            return []
        base = {"channel": CHANNEL, "external_id": user, "message_id": msg_id}
        listed = message.get("attachments")
        attachments = [a for a in listed if isinstance(a, dict)] if isinstance(listed, list) else []
        if event == "user_send_text":
            return [self._text(str(message.get("text") or ""), update_key(msg_id), base)]
        if event == "user_send_location":
            payload = attachments[0].get("payload") if attachments else {}
            payload = payload if isinstance(payload, dict) else {}
            coordinates = payload.get("coordinates")
            coordinates = coordinates if isinstance(coordinates, dict) else {}
            try:
                latitude = float(str(coordinates.get("latitude")))
                longitude = float(str(coordinates.get("longitude")))
            except (TypeError, ValueError):
                return [Incoming(update_id=update_key(msg_id), kind=Kind.unsupported, **base)]
            return [
                Incoming(
                    update_id=update_key(msg_id),
                    kind=Kind.location,
                    latitude=latitude,
                    longitude=longitude,
                    **base,
                )
            ]
        if event in ("user_send_image", "user_send_file"):
            incomings = []
            for index, attachment in enumerate(attachments):
                payload = (
                    attachment.get("payload") if isinstance(attachment.get("payload"), dict) else {}
                )
                url = str(payload.get("url") or "")
                if not url:
                    continue
                update_id = update_key(msg_id if index == 0 else f"{msg_id}:{index}")
                if event == "user_send_image":
                    file = self.photo_file(url)
                    kind = Kind.photo
                else:
                    name = str(payload.get("name") or "file")
                    mime = mimetypes.guess_type(name)[0] or ""
                    size = _int_or_none(payload.get("size"))
                    file = IncomingFile(
                        file_name=name, mime=mime, size=size, fetch=_fetcher(self, url), ref=url
                    )
                    kind = Kind.document
                incomings.append(
                    Incoming(
                        update_id=update_id,
                        kind=kind,
                        text=str(message.get("text") or ""),
                        file=file,
                        **base,
                    )
                )
            return incomings or [
                Incoming(update_id=update_key(msg_id), kind=Kind.unsupported, **base)
            ]
        # sticker, gif, audio, video, link, business card …
        return [Incoming(update_id=update_key(msg_id), kind=Kind.unsupported, **base)]

    def _text(self, text: str, update_id: str, base: dict[str, Any]) -> Incoming:
        stripped = text.strip()
        match = BUTTON_PAYLOAD.match(stripped)
        if match and match.group(1) in self._button_actions():
            return Incoming(update_id=update_id, kind=Kind.button, data=stripped, **base)
        if stripped.startswith("/") and len(stripped) > 1:
            command, _sep, rest = stripped[1:].partition(" ")
            return Incoming(
                update_id=update_id,
                kind=Kind.command,
                command=command.lower(),
                text=rest.strip(),
                **base,
            )
        return Incoming(update_id=update_id, kind=Kind.text, text=text, **base)

    async def _unfollow(self, body: dict[str, Any]) -> None:
        follower = body.get("follower") if isinstance(body.get("follower"), dict) else {}
        user = str(follower.get("id") or "")
        if not user:
            return
        async with self.ctx.db.session() as session:
            identity = await identity_for(session, CHANNEL, user)
            if identity is not None and not identity.blocked:
                identity.blocked = True  # a new follow (any message) clears it again
                session.add(identity)
                await session.commit()

    def _fresh(self, timestamp: str, now: datetime | None = None) -> bool:
        """Was the event signed within the replay window? The timestamp (epoch milliseconds) is
        part of the signature, so an attacker who captured an event cannot make it look new.
        Zalo's own retries keep the first timestamp: within the window the inbox deduplicates
        them, past it they are refused like a replay (the window is a setting)."""
        if not timestamp.isdigit() or len(timestamp) > 16:
            return False
        signed = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
        age = (now or datetime.now(UTC)) - signed
        return abs(age.total_seconds()) <= self.settings.zalo_oa_replay_window_seconds

    async def _receipt(self, body: dict[str, Any]) -> None:
        """A delivery or seen receipt: the outbox rows it names (by Zalo message id) say so.
        Zalo may report delivery before our sender has recorded the message id it was given:
        an id with no row yet is tried again a few times in the background."""
        message = body.get("message") if isinstance(body.get("message"), dict) else {}
        listed = message.get("msg_ids")
        ids = [str(i) for i in listed] if isinstance(listed, list) else []
        ids.append(str(message.get("msg_id") or ""))
        ids = [i for i in ids if 0 < len(i) <= 64]
        seen = RECEIPT_EVENTS[str(body["event_name"])]
        missing = set(ids) - await self._record_receipts(ids, seen)
        if missing:
            task = asyncio.create_task(self._receipt_later(sorted(missing), seen))
            self._receipt_tasks.add(task)
            task.add_done_callback(self._receipt_tasks.discard)

    async def _record_receipts(self, ids: list[str], seen: bool) -> set[str]:
        async with self.ctx.db.writer(), self.ctx.db.session() as session:
            found = await record_receipts(session, ids, seen, datetime.now(UTC))
            await session.commit()
        return found

    async def _receipt_later(self, ids: list[str], seen: bool) -> None:
        for delay in RECEIPT_RETRIES:
            await asyncio.sleep(delay)
            ids = sorted(set(ids) - await self._record_receipts(ids, seen))
            if not ids:
                return
        log.info("Zalo OA receipts for unknown messages: %s", ", ".join(ids[:5]))

    async def settle_receipts(self) -> None:
        """Wait for the receipts being tried again (tests, and a clean stop)."""
        while self._receipt_tasks:
            await asyncio.gather(*list(self._receipt_tasks), return_exceptions=True)

    async def webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SIGNATURE_HEADER, "").strip()
        secret = self.settings.zalo_oa_secret_key
        if not given or not secret:
            return web.Response(status=403, text="forbidden")
        raw = await request.read()
        if given.lower().startswith("mac="):
            given = given[4:].strip()
        try:
            # Read only to find the timestamp; numbers stay text (ids exceed 2^53).
            body = loads_body(raw, parse_int=str)
        except ValueError:  # not JSON: signed, if at all, without a timestamp
            body = None
        timestamp = body.get("timestamp") if isinstance(body, dict) else ""
        timestamp = timestamp if isinstance(timestamp, str) else ""
        expected = signature(self.settings.zalo_oa_app_id, raw, timestamp, secret)
        if not hmac.compare_digest(given.lower().encode(), expected.encode()):
            return web.Response(status=403, text="forbidden")
        if not isinstance(body, dict):
            return web.Response(status=400, text="not a JSON object")
        if not self._fresh(timestamp):
            return web.Response(status=403, text="stale event")
        if body.get("event_name") == "unfollow":
            await self._unfollow(body)
            return web.json_response({"ok": True})
        if str(body.get("event_name")) in RECEIPT_EVENTS:  # any JSON value: never a 500
            await self._receipt(body)
            return web.json_response({"ok": True})
        return await self.dispatch(self.to_incomings(body))

    # ------------------------------------------------------------------ lifecycle

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.webhook)

    async def start(self) -> None:
        """The webhook URL is set in the Zalo developer console; nothing to call here."""

    async def stop(self) -> None:
        for task in self._receipt_tasks:
            task.cancel()
        await self.close()


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _fetcher(channel: ZaloHTTPChannel, url: str):  # noqa: ANN202
    async def fetch() -> bytes:
        return await channel.download(url)

    return fetch
