"""Channel-neutral messages: what adapters hand to handlers, and what handlers answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
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
        )

    def flat_buttons(self) -> list[Button]:
        return [button for row in self.buttons for button in row]


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
