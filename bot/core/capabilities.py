"""What each channel can show and when it may write: facts the core needs as data.

The buttons decide between buttons and numbered menus; the reply window (Zalo OA lets an
Official Account write to a person only for a while after that person last wrote) decides
whether an identity may be written to now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.core.models import ChannelIdentity
from bot.core.timeutil import from_db


@dataclass(frozen=True)
class Capabilities:
    buttons: bool  # inline buttons; without them the numbered menu is used
    max_buttons: int  # more than this and the numbered menu is used
    text_limit: int  # characters per message; longer text is split
    reply_window: timedelta | None = None  # may write only this long after the person wrote
    free_window: timedelta | None = None  # ... and at no cost this long
    contact_button: bool = False  # a button that shares the phone number (Telegram)
    # Attachments ("photo", "document") sent only as a link to GET /media/… (Zalo Bot's sendPhoto
    # takes a URL; neither Zalo channel uploads a document): no PAPIBOT_PUBLIC_URL, no file.
    linked_files: frozenset[str] = frozenset()
    # A sent message can be changed in place (Telegram's editMessageText, the simulator): a
    # tapped card is replaced by what comes next instead of a new message below it.
    can_edit: bool = False


CAPABILITIES: dict[str, Capabilities] = {
    "telegram": Capabilities(
        buttons=True, max_buttons=100, text_limit=4096, contact_button=True, can_edit=True
    ),
    "web": Capabilities(buttons=True, max_buttons=100, text_limit=4096, can_edit=True),
    "zalo_oa": Capabilities(
        buttons=True,
        max_buttons=5,
        text_limit=2000,
        reply_window=timedelta(days=7),
        free_window=timedelta(hours=48),
        linked_files=frozenset({"document"}),
    ),
    "zalo_bot": Capabilities(
        buttons=False,
        max_buttons=0,
        text_limit=2000,
        linked_files=frozenset({"photo", "document"}),
    ),
}


def uses_numbered_menu(channel: str, button_count: int) -> bool:
    caps = CAPABILITIES.get(channel)
    if caps is None or not caps.buttons:
        return button_count > 0
    return button_count > caps.max_buttons


def _within(identity: ChannelIdentity, window: timedelta | None, now: datetime | None) -> bool:
    if window is None:
        return True
    if identity.last_interaction_at is None:
        return False
    moment = from_db(now or datetime.now(UTC))
    return moment - from_db(identity.last_interaction_at) <= window


def within_window(identity: ChannelIdentity, now: datetime | None = None) -> bool:
    """May this identity be messaged now? Always on channels without a reply window; on Zalo
    OA only within 7 days of the person's last message to us (never, if they never wrote)."""
    caps = CAPABILITIES.get(identity.channel)
    return _within(identity, caps.reply_window if caps else None, now)


def within_free_window(identity: ChannelIdentity, now: datetime | None = None) -> bool:
    """Within the time in which a message costs nothing (48 hours on Zalo OA)."""
    caps = CAPABILITIES.get(identity.channel)
    return _within(identity, caps.free_window if caps else None, now)


def shows_buttons(channel: str, button_count: int) -> bool:
    """Whether the person sees buttons to tap (else numbered lines, or no choices at all)."""
    caps = CAPABILITIES.get(channel)
    return caps is not None and caps.buttons and button_count <= caps.max_buttons


def asks_contact(channel: str) -> bool:
    """Whether the channel has a button that shares the person's phone number."""
    caps = CAPABILITIES.get(channel)
    return caps is not None and caps.contact_button


def carries_file(channel: str, kind: str, public_url: str) -> bool:
    """Whether a `kind` ("photo" or "document") attachment reaches a person on `channel`:
    always where the file itself is uploaded, only with a public URL where it goes as a link."""
    caps = CAPABILITIES.get(channel)
    if caps is None:
        return True  # a channel we do not know sends its files the usual way
    return bool(public_url) or kind not in caps.linked_files


def can_edit(channel: str) -> bool:
    """Whether a message already sent on this channel can be replaced in place."""
    caps = CAPABILITIES.get(channel)
    return caps is not None and caps.can_edit
