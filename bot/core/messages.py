"""Channel-neutral messages: what adapters hand to handlers, and what handlers answer."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from functools import partial
from typing import Any

CALLBACK_DATA_LIMIT = 64  # Telegram's limit; the tightest of our channels


class Kind(StrEnum):
    text = "text"
    command = "command"
    button = "button"
    photo = "photo"
    document = "document"
    location = "location"
    contact = "contact"
    follow = "follow"  # the user opened the bot / followed the OA: greet them
    unsupported = "unsupported"  # a sticker, a voice note …: answered with the menu


class FetchRefused(Exception):
    """A channel would not download a file from where the update said it is (not one of the
    platform's hosts, or a private address): the person is told, nothing is fetched."""


@dataclass
class IncomingFile:
    """A file the user sent; `fetch` downloads it through the channel (None: nothing to fetch)."""

    file_name: str = ""
    mime: str = ""
    size: int | None = None  # as announced by the platform, before downloading
    fetch: Callable[[], Awaitable[bytes]] | None = None
    ref: str = ""  # what the channel downloads it by (Telegram file id, Zalo CDN address)


@dataclass
class Incoming:
    channel: str
    external_id: str  # the chat / user id on that channel, always a string
    update_id: str  # unique per channel: redeliveries carry the same one
    kind: Kind
    text: str = ""  # message text, or the command's argument text
    command: str = ""  # "start", "viec" … without the slash
    data: str = ""  # button payload
    file: IncomingFile | None = None
    latitude: float | None = None
    longitude: float | None = None
    display_name: str = ""
    message_id: str = ""  # the platform message the button was on (to remove its buttons)
    ack_id: str = ""  # what the platform wants acknowledged (Telegram's callback query id)
    # A reply replaces the tapped card (see Conversation.reply): the channel then leaves that
    # card's buttons to the edit instead of taking them off itself.
    card_replaced: bool = False

    def to_payload(self) -> dict[str, Any]:
        """What the inbox stores until the update is handled (a file by its `ref`)."""
        # Not asdict(): it would deep-copy the file's `fetch`, and with it the channel.
        payload = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "file"}
        if self.file is not None:
            file = self.file
            payload["file"] = {
                "file_name": file.file_name,
                "mime": file.mime,
                "size": file.size,
                "ref": file.ref,
            }
        return payload

    @classmethod
    def from_payload(
        cls, payload: dict[str, Any], download: Callable[[str], Awaitable[bytes]] | None
    ) -> Incoming:
        """The stored form back; `download(ref)` fetches its file through the channel."""
        values = dict(payload)
        stored_file = values.pop("file", None)
        values["kind"] = Kind(values["kind"])
        incoming = cls(**values)
        if stored_file is not None:
            ref = stored_file.get("ref", "")
            incoming.file = IncomingFile(
                file_name=stored_file.get("file_name", ""),
                mime=stored_file.get("mime", ""),
                size=stored_file.get("size"),
                ref=ref,
                fetch=partial(download, ref) if download is not None and ref else None,
            )
        return incoming


@dataclass
class Button:
    label: str
    data: str

    def __post_init__(self) -> None:
        if len(self.data.encode("utf-8")) > CALLBACK_DATA_LIMIT:
            raise ValueError(f"button data over {CALLBACK_DATA_LIMIT} bytes: {self.data!r}")


@dataclass
class Outgoing:
    text: str = ""
    buttons: list[list[Button]] = field(default_factory=list)  # rows of buttons
    photo_path: str = ""  # a file under the data directory (chart, evidence)
    document_path: str = ""
    document_name: str = ""
    # Numbered menus: the number of the first button. Several menus in one reply (the task
    # cards of /viec) are numbered on from each other, so every number stays answerable.
    menu_start: int = 1
    # A channel that can ask for the phone number (Telegram's contact button) shows a button
    # with this label; elsewhere the text says to type the number.
    contact_label: str = ""
    # The platform message (a card with buttons) this message replaces in place, on a channel
    # that can edit (capabilities.can_edit); empty: a new message. If the card is gone, the
    # sender sends a new message instead.
    edit_of: str = ""

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Outgoing:
        rows = [[Button(**button) for button in row] for row in payload.get("buttons", [])]
        return cls(
            text=payload.get("text", ""),
            buttons=rows,
            photo_path=payload.get("photo_path", ""),
            document_path=payload.get("document_path", ""),
            document_name=payload.get("document_name", ""),
            menu_start=int(payload.get("menu_start", 1)),
            contact_label=payload.get("contact_label", ""),
            edit_of=payload.get("edit_of", ""),
        )

    def flat_buttons(self) -> list[Button]:
        return [button for row in self.buttons for button in row]

    @property
    def text_only(self) -> bool:
        """Only text and inline buttons: what an edit can put into a card."""
        return not (self.photo_path or self.document_path or self.contact_label)


def numbered_menu(message: Outgoing) -> tuple[str, list[str]]:
    """The same message for a channel without buttons: numbered lines, answered by number.

    Returns the text and the button payloads in number order (stored in the dialog state so
    that "2" can be turned back into the second button).
    """
    buttons = message.flat_buttons()
    if not buttons:
        return message.text, []
    lines = [message.text, ""] if message.text else []
    lines += [
        f"{number}. {button.label}"
        for number, button in enumerate(buttons, start=message.menu_start)
    ]
    return "\n".join(lines), [button.data for button in buttons]


# A phrase that names a button ("bấm «Tiếp tục»") is only true where buttons show; where the
# menu is numbered it must say "gõ số 2". Handlers write both, and the outbox keeps the one that
# fits the recipient's channel once it knows (see `resolve_taps`).
TAP_OPEN, TAP_SEP, TAP_CLOSE = "\u27e6", "\u2502", "\u27e7"
TAP_PATTERN = re.compile(f"{TAP_OPEN}([^{TAP_CLOSE}]*){TAP_CLOSE}")


def tap_phrase(tap_text: str, type_text: str, data: str = "") -> str:
    """How to choose one button (`data`) or, without data, any of them: `tap_text` where buttons
    are shown, `type_text` (which may hold `{number}`, the button's number) in a numbered menu."""
    for part in (tap_text, type_text, data):
        if TAP_SEP in part or TAP_CLOSE in part:
            raise ValueError(f"tap phrase part {part!r} holds a reserved character")
    return f"{TAP_OPEN}{data}{TAP_SEP}{tap_text}{TAP_SEP}{type_text}{TAP_CLOSE}"


def tap(_: Callable[[str], str], label: str, data: str, start: bool = False) -> str:
    """ "bấm «➡️ Tiếp tục»" where buttons show, "gõ số 1" in a numbered menu (`start`: the
    phrase begins a sentence)."""
    if start:
        return tap_phrase(_("Tap “{label}”").format(label=label), _("Type {number}"), data)
    return tap_phrase(_("tap “{label}”").format(label=label), _("type {number}"), data)


def tap_any(_: Callable[[str], str], start: bool = False) -> str:
    """ "bấm một nút bên dưới" where buttons show, "gõ số của mục cần chọn" elsewhere."""
    if start:
        return tap_phrase(_("Tap a button below"), _("Type the number of your choice"))
    return tap_phrase(_("tap a button below"), _("type the number of your choice"))


def resolve_taps(message: Outgoing, numbered: bool) -> Outgoing:
    """The message with every tap phrase resolved for a channel with buttons or numbers."""
    if TAP_OPEN not in message.text:
        return message
    numbers = {
        button.data: number
        for number, button in enumerate(message.flat_buttons(), start=message.menu_start)
    }

    def choose(match: re.Match[str]) -> str:
        data, tap_text, type_text = match.group(1).split(TAP_SEP)
        if not numbered:
            return tap_text
        return type_text.replace("{number}", str(numbers.get(data, message.menu_start)))

    return replace(message, text=TAP_PATTERN.sub(choose, message.text))


def split_text(text: str, limit: int) -> list[str]:
    """Split long text at line breaks (or spaces) so each part fits the channel's limit."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest:
        parts.append(rest)
    return parts
