"""Registration: `/start CODE`, a typed code, or following the OA — binds the chat to a role,
then asks the person's name and, if they wish, a phone number."""

from __future__ import annotations

import re

from bot.core.capabilities import asks_contact
from bot.core.messages import Button
from bot.core.models import Unit
from bot.core.services.people import InviteProblem, audit, redeem_invite
from bot.core.services.reach import normalise_phone
from bot.core.unit_words import place
from handlers.common import main_menu, tap, title
from handlers.conversation import Conversation
from handlers.report import fold, means_done

CODE_SHAPE = re.compile(r"^[A-Za-z0-9\- ]{6,12}$")
NAME_MAX = 80
AWAITING_NAME, AWAITING_PHONE = "awaiting_name", "awaiting_phone"
STEPS = (AWAITING_NAME, AWAITING_PHONE)
SKIP_WORDS = {"bo qua", "skip", "khong", "no"}
# Vietnamese mobile numbers: 0 or +84/84, then 3x, 5x, 7x, 8x or 9x and 8 more digits.


def looks_like_code(text: str) -> bool:
    return bool(CODE_SHAPE.match(text.strip()))


def clean_name(text: str) -> str | None:
    """A typed full name, tidied ("nguyễn  văn an" → "Nguyễn Văn An"); None if it is not one."""
    words = text.split()
    name = " ".join(words)
    if not words or len(name) > NAME_MAX or means_done(name):
        return None
    if not all(ch.isalpha() or ch in " .'-" for ch in name):
        return None  # digits, slashes, payloads: not a name
    if name.isupper() and looks_like_code(name) and len(words) == 1:
        return None  # a registration code typed again
    return " ".join(word[:1].upper() + word[1:] for word in words)


# One rule for a Vietnamese mobile number, shared with ZNS and the CLI.
normalise_mobile = normalise_phone


def _has_digits(text: str) -> bool:
    return sum(ch.isdigit() for ch in text) >= 6


def takes_text(convo: Conversation) -> bool:
    """Whether free text answers the registration question being asked (else it is handled as
    usual: a village head who types "xong" instead of a name still gets their task)."""
    text = convo.incoming.text
    if convo.state.state == AWAITING_NAME:
        return clean_name(text) is not None
    if convo.state.state == AWAITING_PHONE:
        return _has_digits(text) or _means_skip(text)  # a number, or Telegram's "Bỏ qua" key
    return False


def _means_skip(text: str) -> bool:
    words = [word for word in fold(text).split() if any(ch.isalnum() for ch in word)]
    return " ".join(words) in SKIP_WORDS


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


async def _where(convo: Conversation) -> str:
    """ "Tổ trưởng Tổ dân phố 1, phường Vĩnh Hòa": the title and, for a village, its commune."""
    unit = convo.unit
    text = title(convo, convo.user.role, unit)
    if unit.level == "village" and unit.parent_id is not None:
        parent = await convo.session.get(Unit, unit.parent_id)
        if parent is not None:
            text += f", {place(parent, convo.locale)}"
    return text


async def register(convo: Conversation, code: str) -> None:
    _ = convo._
    incoming = convo.incoming
    try:
        registration = await redeem_invite(
            convo.session,
            code,
            incoming.channel,
            incoming.external_id,
            incoming.display_name,
            wrong_codes_per_minute=convo.app.settings.invite_wrong_codes_per_minute,
        )
    except InviteProblem as problem:
        await _refuse(convo, problem.reason, code)
        return
    convo.user, convo.unit = registration.user, registration.unit
    await audit(convo.session, "invite.redeemed", convo.subject, registration.user, code=code)
    convo.clear_state()
    where = await _where(convo)
    if registration.linked_existing:
        text = _("This chat is now linked to your account: {title}.").format(title=where)
    else:
        text = _("Welcome to papibot! You are registered as {title}.").format(title=where)
    text += "\n" + _("Type /viec to see your tasks, or {action}.").format(
        action=tap(_, _("📋 My tasks"), "menu:viec")
    )
    if not registration.linked_existing:
        # The name the platform shows (kept until then) is often a nickname: ask the real one.
        convo.set_state(AWAITING_NAME)
        text += "\n\n" + _(
            "So that the commune knows who reports, please type your full name "
            "(for example: Nguyễn Văn An)."
        )
    await convo.reply(text, main_menu(convo))


async def step_text(convo: Conversation) -> None:
    """A typed answer to the name or phone question (see `takes_text`)."""
    if convo.state.state == AWAITING_NAME:
        await _name_given(convo, clean_name(convo.incoming.text) or "")
    elif _has_digits(convo.incoming.text):
        await phone_given(convo, convo.incoming.text)
    else:
        await skip_phone(convo, "")


async def _name_given(convo: Conversation, name: str) -> None:
    _ = convo._
    convo.user.name = name
    convo.session.add(convo.user)
    await audit(convo.session, "user.named", f"user:{convo.user.id}", convo.user)
    convo.set_state(AWAITING_PHONE)
    skip = _("⏭️ Skip")
    if asks_contact(convo.incoming.channel):
        how = _("tap “{label}” below, or type it").format(label=_("📱 Share my phone number"))
    else:
        how = _("type it (for example 0905 123 456)")
    await convo.reply(
        _(
            "Thank you, {name}. If you wish, leave your mobile number so the commune can call "
            "you when a message cannot reach you: {how}. Or {action}."
        ).format(name=name, how=how, action=tap(_, skip, "skipphone:")),
        [[Button(skip, "skipphone:")]],
        contact_label=_("📱 Share my phone number") if asks_contact(convo.incoming.channel) else "",
    )


async def phone_given(convo: Conversation, text: str) -> None:
    """A typed number or a shared contact."""
    _ = convo._
    phone = normalise_mobile(text)
    if phone is None:
        await convo.reply(
            _(
                "{number} is not a Vietnamese mobile number (10 digits, for example "
                "0905 123 456). Please type it again, or {action}."
            ).format(number=text.strip(), action=tap(_, _("⏭️ Skip"), "skipphone:")),
            [[Button(_("⏭️ Skip"), "skipphone:")]],
        )
        return
    convo.user.phone = phone
    convo.session.add(convo.user)
    await audit(convo.session, "user.phone", f"user:{convo.user.id}", convo.user)
    convo.clear_state()
    await convo.reply(
        _("Saved: {phone}.").format(phone="0" + phone[2:]) + "\n" + _("What would you like to do?"),
        main_menu(convo),
    )


async def skip_phone(convo: Conversation, _arg: str) -> None:
    convo.clear_state()
    await convo.reply(convo._("What would you like to do?"), main_menu(convo))


async def contact_shared(convo: Conversation) -> None:
    """Telegram's contact button: only the person's own number is taken."""
    if convo.state.state != AWAITING_PHONE:
        await convo.reply(convo._("Sorry, I did not understand. Please choose:"), main_menu(convo))
        return
    await phone_given(convo, convo.incoming.text)


async def _refuse(convo: Conversation, reason: str, code: str) -> None:
    _ = convo._
    if reason == "busy":
        await audit(convo.session, "invite.rate_limited", convo.subject, code=code, scope="all")
        await convo.reply(
            _(
                "Many wrong codes have been typed in the last minute, so registration is paused "
                "for a moment. Please wait a minute and type your code again."
            )
        )
        return
    if reason == "rate_limited":
        await audit(convo.session, "invite.rate_limited", convo.subject, code=code, scope="chat")
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
    """`/start` with or without a code; a registered person is greeted by name."""
    code = convo.incoming.text.strip()
    if code:
        await register(convo, code)
        return
    if convo.user is None:
        await greet_stranger(convo)
        return
    _ = convo._
    where = await _where(convo) if convo.unit else ""
    if convo.user.name:
        text = _("Hello {name} ({title}). What would you like to do today?").format(
            name=convo.user.name, title=where
        )
    else:
        text = _("Hello ({title}). What would you like to do today?").format(title=where)
        text += "\n" + _(
            "So that the commune knows who reports, please type your full name "
            "(for example: Nguyễn Văn An)."
        )
        convo.set_state(AWAITING_NAME)
    await convo.reply(text, main_menu(convo))


async def stranger(convo: Conversation) -> None:
    """Anything from a chat that is not registered yet."""
    incoming = convo.incoming
    if incoming.kind == "command" and incoming.command == "start":
        await start(convo)
    elif incoming.kind == "text" and looks_like_code(incoming.text):
        await register(convo, incoming.text)
    else:
        await greet_stranger(convo)
