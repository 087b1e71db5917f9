"""`/help`, `/lang`, and the short menu for anything not understood."""

from __future__ import annotations

from bot.core.i18n import LOCALES, translator
from handlers.common import main_menu
from handlers.conversation import Conversation


async def show_help(convo: Conversation) -> None:
    _ = convo._
    lines = [
        _("What you can do:"),
        _("/viec — your open tasks; answer each with a tap"),
        _("Send a photo — evidence for a task"),
        _('Type "xong" — mark the last reminded task done'),
    ]
    role = convo.user.role if convo.user else ""
    if role == "commune_committee":
        lines += [
            _("/tinhhinh — the state of every village"),
            _("/moi — invite a village head"),
            _("/sukien — declare an election, a review, public works …"),
        ]
    if role == "district_committee":
        lines.append(_("/baocao — every commune, worst first"))
    lines.append(_("/lang vi | en — change the language"))
    await convo.reply("\n".join(lines), main_menu(convo))


async def change_language(convo: Conversation) -> None:
    choice = convo.incoming.text.strip().lower()
    if choice not in LOCALES:
        await convo.reply(convo._("Type /lang vi for Vietnamese or /lang en for English."))
        return
    convo.user.locale = choice
    convo.session.add(convo.user)
    await convo.reply(translator(choice)("Language changed."))


async def not_understood(convo: Conversation) -> None:
    await convo.reply(convo._("Sorry, I did not understand. Please choose:"), main_menu(convo))
