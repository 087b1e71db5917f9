"""Registration: `/start CODE`, a typed code, or following the OA — binds the chat to a role."""

from __future__ import annotations

import re

from bot.core.services.people import InviteProblem, audit, redeem_invite
from handlers.common import main_menu, role_label
from handlers.conversation import Conversation

CODE_SHAPE = re.compile(r"^[A-Za-z0-9\- ]{6,12}$")


def looks_like_code(text: str) -> bool:
    return bool(CODE_SHAPE.match(text.strip()))


async def greet_stranger(convo: Conversation) -> None:
    _ = convo._
    await convo.reply(
        _(
            "Hello! I am papibot, the assistant for the tasks of decision 3012/QĐ-UBND.\n"
            "To start, please type the registration code you received from the commune "
            "committee (8 letters and digits). If you have no code, ask the commune office "
            "for one."
        )
    )


async def register(convo: Conversation, code: str) -> None:
    _ = convo._
    incoming = convo.incoming
    try:
        registration = await redeem_invite(
            convo.session, code, incoming.channel, incoming.external_id, incoming.display_name
        )
    except InviteProblem as problem:
        await _refuse(convo, problem.reason, code)
        return
    convo.user, convo.unit = registration.user, registration.unit
    await audit(convo.session, "invite.redeemed", convo.subject, registration.user, code=code)
    convo.clear_state()
    role = role_label(convo, registration.user.role)
    text = _("You are registered as {role} of {unit}.").format(
        role=role, unit=registration.unit.name
    )
    if registration.linked_existing:
        text = _("This chat is now linked to your account: {role} of {unit}.").format(
            role=role, unit=registration.unit.name
        )
    await convo.reply(
        text + "\n" + _("Type /viec to see your tasks, or tap a button below."),
        main_menu(convo),
    )


async def _refuse(convo: Conversation, reason: str, code: str) -> None:
    _ = convo._
    if reason == "rate_limited":
        await audit(convo.session, "invite.rate_limited", convo.subject, code=code)
        await convo.reply(
            _(
                "Too many wrong codes. Please wait an hour and try again, or call the commune "
                "office to check your code."
            )
        )
        return
    await audit(convo.session, "invite.wrong_code", convo.subject, code=code, reason=reason)
    messages = {
        "unknown": _("I cannot find the code {code}. Please check it and type it again."),
        "used": _(
            "The code {code} has already been used. Please ask the commune office for a new one."
        ),
        "expired": _("The code {code} has expired. Please ask the commune office for a new one."),
    }
    await convo.reply(messages[reason].format(code=code.strip().upper()))


async def start(convo: Conversation) -> None:
    """`/start` with or without a code."""
    code = convo.incoming.text.strip()
    if code:
        await register(convo, code)
        return
    if convo.user is None:
        await greet_stranger(convo)
        return
    _ = convo._
    await convo.reply(
        _("Welcome back, {role} of {unit}.").format(
            role=role_label(convo, convo.user.role), unit=convo.unit.name if convo.unit else ""
        ),
        main_menu(convo),
    )


async def stranger(convo: Conversation) -> None:
    """Anything from a chat that is not registered yet."""
    incoming = convo.incoming
    if incoming.kind == "command" and incoming.command == "start":
        await start(convo)
    elif incoming.kind == "text" and looks_like_code(incoming.text):
        await register(convo, incoming.text)
    else:
        await greet_stranger(convo)
