"""`/help`, `/lang`, and the short menu for anything not understood."""

from __future__ import annotations

from bot.core.capabilities import shows_buttons
from bot.core.commands import commands_for
from bot.core.framework import Framework
from bot.core.i18n import LOCALES, Translator, translator
from handlers.common import main_menu
from handlers.conversation import Conversation


def command_lines(
    _: Translator, role: str, buttons: bool, framework: Framework | None = None
) -> list[str]:
    """One line per command the role has, in the order of `commands_for`."""
    lines = {
        "viec": _("/viec — your open tasks; answer each with a tap")
        if buttons
        else _("/viec — your open tasks; answer each by typing the number of your choice"),
        "tinhhinh": _("/tinhhinh — the state of every village and residential group, worst first"),
        "moi": _("/moi — invite a village head or group leader"),
        "sukien": _("/sukien — declare an election, a review, public works …"),
        "baocao": _("/baocao — every commune and ward, worst first"),
        "web": _("/web — a link to open the dashboard in a browser"),
        "lang": _("/lang vi | en — change the language"),
        "help": _("/help — this list"),
    }
    return [lines[name] for name in commands_for(role, framework) if name in lines]


async def show_help(convo: Conversation) -> None:
    _ = convo._
    role = convo.user.role if convo.user else ""
    buttons = shows_buttons(convo.incoming.channel, 1)
    lines = [_("What you can do:"), *command_lines(_, role, buttons, convo.app.framework)]
    lines += [
        _("Send a photo — evidence for a task (a caption is kept as the note)"),
        _('Type "xong" — mark the last reminded task done'),
    ]
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
