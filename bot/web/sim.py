"""The chat simulator's page and JSON API (`/sim`), on the shared aiohttp app.

Inbound calls become `Incoming` updates of channel `web` and go through the dispatcher like a
webhook; the transcript is the chat's sent outbox rows. Errors are JSON with a Vietnamese
`message` the page shows as is: a bad request is a 400, never a 500.
"""

from __future__ import annotations

import errno
import json
import logging
import mimetypes
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from bot.channels.base import loads_body
from bot.channels.sender import Sender
from bot.core.messages import CALLBACK_DATA_LIMIT, Incoming, Outgoing
from bot.core.models import ChannelIdentity, Outbox, OutboxStatus, Unit, User
from bot.core.services.evidence import MAX_PHOTO_BYTES
from bot.core.services.people import link_identity
from bot.web.keys import SENDER_KEY
from bot.web.media import MediaError, confined
from bot.web.sim_channel import (
    SHOWN_IN_PLACE,
    WebChannel,
    button_update,
    chat_for_user,
    file_update,
    new_update_id,
    text_update,
    valid_chat,
    valid_update_id,
)

log = logging.getLogger(__name__)
_dumps = partial(json.dumps, ensure_ascii=False)  # readable Vietnamese in the answers
STATIC_DIR = Path(__file__).resolve().parent / "static"
TEXT_LIMIT = 4096
NAME_LIMIT = 200
FIELD_LIMIT = 4096  # a form field other than the file (chat, update id)
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the small fields
TRANSCRIPT_PAGE = 200
USERS_LIMIT = 1000
MAX_ID = 2**31 - 1  # integer primary keys (PostgreSQL `integer`)

CHANNEL_KEY = web.AppKey("web_channel", WebChannel)


class ApiProblem(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return _json({"error": self.code, "message": self.message}, status=self.status)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _bad(code: str, message: str) -> ApiProblem:
    return ApiProblem(400, code, message)


def _too_large() -> ApiProblem:
    return ApiProblem(
        413, "too_large", "Tệp lớn hơn 20 MB. Vui lòng gửi ảnh nhỏ hơn (ảnh chụp điện thoại là đủ)."
    )


def _channel(request: web.Request) -> WebChannel:
    return request.app[CHANNEL_KEY]


def _sender(request: web.Request) -> Sender | None:
    return request.app.get(SENDER_KEY)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = loads_body(await request.read())
    except web.HTTPRequestEntityTooLarge:
        raise ApiProblem(413, "too_large", "Nội dung gửi lên quá lớn.") from None
    except ValueError:
        raise _bad("bad_json", "Dữ liệu gửi lên không phải JSON hợp lệ.") from None
    if not isinstance(body, dict):
        raise _bad("bad_json", "Dữ liệu gửi lên phải là một đối tượng JSON.")
    return body


def _chat(value: object) -> str:
    if not valid_chat(value):
        raise _bad(
            "bad_chat",
            "Thiếu hoặc sai mã cuộc trò chuyện (chat): `web-<số>` hoặc `guest-<chữ, số>`.",
        )
    return str(value)


def _update_id(value: object) -> str:
    if value is None or value == "":
        return new_update_id()
    if not valid_update_id(value):
        raise _bad("bad_update_id", "Mã cập nhật (update_id) sai: tối đa 64 chữ, số, - hoặc _.")
    return str(value)


def _short_text(body: dict[str, Any], name: str, limit: int, required: bool = True) -> str:
    value = body.get(name, "")
    if value is None:
        value = ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _bad(f"bad_{name}", f"Trường `{name}` phải là chuỗi.")
    if required and not value.strip():
        raise _bad(f"missing_{name}", f"Thiếu trường `{name}`.")
    if len(value) > limit:
        raise _bad(f"bad_{name}", f"Trường `{name}` dài quá {limit} ký tự.")
    return value


async def _answer(request: web.Request, incoming: Incoming) -> web.Response:
    handled = await _channel(request).receive(incoming, _sender(request))
    return _json({"ok": True, "update_id": incoming.update_id, "duplicate": not handled})


# --- inbound ------------------------------------------------------------------------------


async def api_send(request: web.Request) -> web.Response:
    body = await _json_body(request)
    chat = _chat(body.get("chat"))
    text = _short_text(body, "text", TEXT_LIMIT)
    name = _short_text(body, "name", NAME_LIMIT, required=False).strip()
    incoming = text_update(chat, text, _update_id(body.get("update_id")), display_name=name)
    return await _answer(request, incoming)


async def api_button(request: web.Request) -> web.Response:
    body = await _json_body(request)
    chat = _chat(body.get("chat"))
    data = _short_text(body, "data", CALLBACK_DATA_LIMIT)
    if len(data.encode("utf-8")) > CALLBACK_DATA_LIMIT:
        raise _bad("bad_data", f"Dữ liệu nút (data) dài quá {CALLBACK_DATA_LIMIT} byte.")
    message_id = _short_text(body, "message_id", 64, required=False)
    incoming = button_update(chat, data, message_id, _update_id(body.get("update_id")))
    return await _answer(request, incoming)


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    """A part's bytes, stopping as soon as it is over `limit` (the rest is never buffered)."""
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data.extend(chunk)
        if len(data) > limit:
            raise _too_large()
    return bytes(data)


async def api_photo(request: web.Request) -> web.Response:
    """multipart/form-data: `chat`, `file`, optional `update_id`.

    Read part by part with our own cap, since the app's 1 MiB `client_max_size` is for webhooks
    and would refuse a phone photo; an announced length over the cap is refused unread.
    """
    if (request.content_length or 0) > MAX_PHOTO_BYTES + MULTIPART_OVERHEAD:
        raise _too_large()
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise _bad("bad_form", "Cần gửi dạng multipart/form-data với `chat` và `file`.") from None
    fields: dict[str, str] = {}
    content: bytes | None = None
    file_name = mime = ""
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise _bad("bad_form", "Biểu mẫu lồng nhau không được hỗ trợ.")
            if part.name == "file":
                file_name = (part.filename or "")[:NAME_LIMIT]
                mime = part.headers.get("Content-Type", "").split(";")[0].strip().lower()
                content = await _read_part(part, MAX_PHOTO_BYTES)
            else:
                raw = await _read_part(part, FIELD_LIMIT) if part.name else b""
                if part.name:
                    fields[part.name] = raw.decode("utf-8", errors="replace")
    except ValueError:
        raise _bad("bad_form", "Biểu mẫu gửi lên bị hỏng.") from None
    chat = _chat(fields.get("chat"))
    update_id = _update_id(fields.get("update_id"))
    if content is None:
        raise _bad("missing_file", "Thiếu tệp ảnh (file).")
    if not content:
        raise _bad("empty_file", "Tệp gửi lên rỗng.")
    if not mime or mime == "application/octet-stream":
        mime = mimetypes.guess_type(file_name)[0] or mime or "application/octet-stream"
    return await _answer(request, file_update(chat, content, file_name, mime, update_id))


# --- what the page shows -------------------------------------------------------------------


def _message_json(row: Outbox) -> dict[str, Any]:
    message = Outgoing.from_payload(row.payload)
    base = f"/sim/api/media/{row.id}"
    return {
        "id": row.id,
        # An edit: shown in place of that earlier card (which keeps its id for taps).
        "replaces": int(row.edit_of) if row.edit_result in SHOWN_IN_PLACE else None,
        "text": message.text,
        "buttons": [[{"label": b.label, "data": b.data} for b in line] for line in message.buttons],
        "photo_url": f"{base}/photo" if message.photo_path else None,
        "document_url": f"{base}/document" if message.document_path else None,
        "document_name": message.document_name or None,
        "sent_at": row.sent_at.isoformat() + "Z" if row.sent_at else None,
    }


async def api_messages(request: web.Request) -> web.Response:
    """What the bot sent to a chat after message `after`, oldest first."""
    chat = _chat(request.query.get("chat"))
    raw_after = request.query.get("after", "0") or "0"
    if not raw_after.isdigit() or len(raw_after) > 10:
        raise _bad("bad_after", "Tham số `after` phải là số.")
    after = min(int(raw_after), MAX_ID)
    ctx = _channel(request).ctx
    async with ctx.db.session() as session:
        rows = (
            await session.exec(
                select(Outbox)
                .where(
                    Outbox.channel == "web",
                    Outbox.external_id == chat,
                    Outbox.status == OutboxStatus.sent,
                    col(Outbox.id) > after,
                )
                .order_by(col(Outbox.id))
                .limit(TRANSCRIPT_PAGE)
            )
        ).all()
    messages = [_message_json(row) for row in rows]
    last_id = messages[-1]["id"] if messages else after
    return _json({"chat": chat, "messages": messages, "last_id": last_id})


async def api_media(request: web.Request) -> web.StreamResponse:
    """The photo or document of a delivered simulator message (never an arbitrary path)."""
    outbox_id, kind = int(request.match_info["id"]), request.match_info["kind"]
    ctx = _channel(request).ctx
    async with ctx.db.session() as session:
        row = await session.get(Outbox, outbox_id) if outbox_id <= MAX_ID else None
    if row is None or row.channel != "web" or row.status != OutboxStatus.sent:
        raise ApiProblem(404, "not_found", "Không tìm thấy tệp.")
    message = Outgoing.from_payload(row.payload)
    stored = message.photo_path if kind == "photo" else message.document_path
    try:  # only evidence and digests, never the database or a backup
        target = confined(ctx.settings, stored)
    except MediaError:
        raise ApiProblem(404, "not_found", "Không tìm thấy tệp.") from None
    response = web.FileResponse(target)
    if kind == "document":
        name = message.document_name or target.name
        response.headers["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(name, safe='')}"
        )
    return response


def _role_label(request: web.Request, role: str) -> str:
    try:
        return _channel(request).ctx.framework.role_name(role, "vi")
    except KeyError:
        return role


async def api_users(request: web.Request) -> web.Response:
    """Everyone who can be tried in the simulator, with unit and role, and their web chat."""
    ctx = _channel(request).ctx
    async with ctx.db.session() as session:
        rows = (
            await session.exec(
                select(User, Unit)
                .join(Unit, Unit.id == User.unit_id)
                .where(col(User.active).is_(True))
                .order_by(col(Unit.code), col(User.role), col(User.id))
                .limit(USERS_LIMIT)
            )
        ).all()
        user_ids = [user.id for user, _unit in rows]
        identities = (
            await session.exec(
                select(ChannelIdentity)
                .where(ChannelIdentity.channel == "web", col(ChannelIdentity.user_id).in_(user_ids))
                .order_by(col(ChannelIdentity.id))
            )
        ).all()
    chats: dict[int, str] = {}
    for identity in identities:
        # The simulator's own `web-<id>` wins over a guest chat that registered with a code.
        if chats.get(identity.user_id) != chat_for_user(identity.user_id):
            chats[identity.user_id] = identity.external_id
    users = [
        {
            "id": user.id,
            "name": user.name,
            "role": user.role,
            "role_name": _role_label(request, user.role),
            "unit_id": unit.id,
            "unit_code": unit.code,
            "unit_name": unit.name,
            "unit_level": unit.level,
            "chat": chats.get(user.id),
        }
        for user, unit in rows
    ]
    return _json({"users": users})


async def api_login(request: web.Request) -> web.Response:
    """Act as a person: link a `web-<id>` chat to them (a simulator convenience)."""
    body = await _json_body(request)
    raw = body.get("user_id")
    if isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) <= 10:
        raw = int(raw.strip())
    if not isinstance(raw, int) or isinstance(raw, bool) or raw <= 0:
        raise _bad("bad_user_id", "Thiếu hoặc sai mã người dùng (user_id).")
    ctx = _channel(request).ctx
    async with ctx.db.session() as session:
        user = await session.get(User, raw) if raw <= MAX_ID else None
        if user is None or not user.active:
            raise ApiProblem(404, "unknown_user", "Không tìm thấy người dùng này.")
        unit = await session.get(Unit, user.unit_id)
        chat = chat_for_user(user.id)
        await link_identity(session, user, "web", chat, user.name)
        await session.commit()
    return _json(
        {
            "chat": chat,
            "user": {
                "id": user.id,
                "name": user.name,
                "role": user.role,
                "role_name": _role_label(request, user.role),
                "unit_name": unit.name if unit else "",
            },
        }
    )


async def page(request: web.Request) -> web.StreamResponse:
    response = web.FileResponse(STATIC_DIR / "sim.html")
    response.headers["Cache-Control"] = "no-cache"
    response.content_type = "text/html"
    response.charset = "utf-8"
    return response


async def page_slash(request: web.Request) -> web.Response:
    raise web.HTTPFound("/sim")


DISK_FULL = "Máy chủ đã hết chỗ lưu trữ nên chưa nhận được. Vui lòng thử lại sau ít phút."


def _disk_full(error: BaseException) -> bool:
    """A full disk, as the file system (ENOSPC) or SQLite ("database or disk is full") says."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return "disk is full" in str(error)


def _guard(handler):  # noqa: ANN001, ANN202
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiProblem as problem:
            return problem.response()
        except (OSError, OperationalError) as error:
            if not _disk_full(error):
                raise
            log.warning("simulator: %s %s: the disk is full", request.method, request.path)
            return ApiProblem(503, "disk_full", DISK_FULL).response()

    guarded.__name__ = handler.__name__
    return guarded


def add_routes(app: web.Application, channel: WebChannel) -> None:
    app[CHANNEL_KEY] = channel
    app.router.add_get("/sim", page)
    app.router.add_get("/sim/", page_slash)
    app.router.add_post("/sim/api/send", _guard(api_send))
    app.router.add_post("/sim/api/button", _guard(api_button))
    app.router.add_post("/sim/api/photo", _guard(api_photo))
    app.router.add_get("/sim/api/messages", _guard(api_messages))
    app.router.add_get("/sim/api/users", _guard(api_users))
    app.router.add_post("/sim/api/login", _guard(api_login))
    app.router.add_get(r"/sim/api/media/{id:\d{1,10}}/{kind:photo|document}", _guard(api_media))
