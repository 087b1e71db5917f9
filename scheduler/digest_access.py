"""How a digest's reader gets to its files and to the dashboard, whatever the channel.

Every digest's headline carries a button that asks for a one-time sign-in link to the dashboard
(`menu:web`, the `/web` command: handlers/web_login.py), so one tap leads from the digest to the
dashboard. Where the reader's channel cannot carry the chart or the workbook (Zalo Bot sends a
photo or a file only as a link, which needs PAPIBOT_PUBLIC_URL), those messages are not queued
(a caption without its picture helps nobody, and a record must not say a file was sent), the
headline says where to find them instead, and the operator is warned once per process with the
setting to change.
"""

from __future__ import annotations

import logging

from bot.core.capabilities import carries_file
from bot.core.config import Settings
from bot.core.i18n import Translator
from bot.core.messages import Button, Outgoing

log = logging.getLogger(__name__)

DASHBOARD_ACTION = "menu:web"  # runs /web: a sign-in link for the person who tapped
_warned: set[str] = set()  # channels already named in a warning by this process


def dashboard_button(_: Translator) -> Button:
    return Button(_("🌐 Open the dashboard"), DASHBOARD_ACTION)


def carries(channel: str, message: Outgoing, settings: Settings) -> bool:
    """Whether every attachment of `message` reaches a person on `channel`."""
    kinds = [
        kind
        for kind, path in (("photo", message.photo_path), ("document", message.document_path))
        if path
    ]
    return all(carries_file(channel, kind, settings.public_url) for kind in kinds)


def files_note(_: Translator, channel: str, settings: Settings) -> str:
    """One line for the headline when the chart or the workbook cannot come in this chat (no
    public URL for their links), empty where they can; logs the warning for the operator, once
    per process and channel."""
    photo = carries_file(channel, "photo", settings.public_url)
    document = carries_file(channel, "document", settings.public_url)
    if photo and document:
        return ""
    warn_once(channel)
    what = _("The spreadsheet") if photo else _("The chart and the spreadsheet")
    return _(
        "📎 {what} cannot come in this chat: type /web for a link to the dashboard, where "
        "everything is."
    ).format(what=what)


def warn_once(channel: str) -> None:
    if channel in _warned:
        return
    _warned.add(channel)
    log.warning(
        "%s cannot carry the digest's chart and spreadsheet: it sends files only as links, and "
        "PAPIBOT_PUBLIC_URL is not set. Set PAPIBOT_PUBLIC_URL to the server's public https "
        "address so that they are sent; until then the digest tells its readers to use /web.",
        channel,
    )


__all__ = ["DASHBOARD_ACTION", "carries", "dashboard_button", "files_note", "warn_once"]
