"""Pick the journey for an inbound update, inside one transaction with its replies.

Order: the update is recorded by (channel, update id) first, so a redelivery does nothing;
then registration for strangers; then commands, buttons, the dialog state, and free input.
Every command, button action and dialog state passes one role check, against the table below.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
)
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.framework import Framework
from bot.core.framework.schema import role_matches
from bot.core.i18n import translator
from bot.core.inbox import Inbox, chat_key, claim_recorded, fetch_first
from bot.core.messages import FetchRefused, Incoming, Kind, Outgoing
from bot.core.models import InboundUpdate, utcnow
from bot.core.services.chat_context import chat_context, touch
from bot.core.services.outbox import enqueue
from bot.core.services.people import audit
from handlers import (
    cannot,
    checklist,
    decision_reason,
    district,
    extension,
    followup,
    help,
    officer,
    onboarding,
    report,
    review,
    tasks,
    walk,
)
from handlers.common import main_menu, role_label, title
from handlers.conversation import Conversation
from handlers.web_login import request_link as web_link

log = logging.getLogger(__name__)


async def _approve(convo: Conversation, arg: str) -> None:
    await extension.decide(convo, arg, approve=True)


async def _decline(convo: Conversation, arg: str) -> None:
    await extension.decide(convo, arg, approve=False)


# Who may do what. Every command, button action and dialog state is declared here with the
# roles allowed; the router refuses (politely, audited) anything else before a journey runs, so
# a typed `evk:election` from a village head (Zalo OA lets people type button payloads) never
# reaches the event journey. Which unit's data a permitted action touches is then checked by
# its journey (handlers.common.load_occurrence and the officer, extension and follow-up checks).
# Entries are role names from roles.yaml, plus:
EVERYONE = "*"  # every registered role
OVERSEER = "@oversees"  # a role whose `oversees` list in roles.yaml is not empty
AGENCY = "province_agency:*"  # any provincial agency
# A role that oversees the commune committees: the district committee, or in the two-tier
# structure (no districts) the province committee (framework/structures.py).
OVER_COMMUNES = f"{OVERSEER}:commune_committee"

ANYONE = frozenset({EVERYONE})
COMMUNE = frozenset({"commune_committee"})
DISTRICT = frozenset({OVER_COMMUNES})
APPROVERS = frozenset({OVERSEER})  # extension requests go to the overseeing role, one level up
# District digests (with their "followed up" buttons) go to the district, or in the two-tier
# structure to the unit standing in for it: the province or an agency.
DIGEST_READERS = frozenset({"district_committee", "province_committee", AGENCY})


@dataclass(frozen=True)
class Action:
    journey: Callable[..., Awaitable[None]]  # (convo) for commands and states, (convo, arg) buttons
    roles: frozenset[str]


COMMANDS: dict[str, Action] = {
    "start": Action(onboarding.start, ANYONE),
    "viec": Action(tasks.list_tasks, ANYONE),
    "help": Action(help.show_help, ANYONE),
    "lang": Action(help.change_language, ANYONE),
    "web": Action(web_link, ANYONE),  # village heads see their own unit's page
    "tinhhinh": Action(officer.village_overview, COMMUNE),
    "moi": Action(officer.invite_menu, COMMUNE),
    "sukien": Action(officer.event_menu, COMMUNE),
    "baocao": Action(district.commune_report, DISTRICT),
}

# Button payloads are `action:argument`; `menu:<command>` runs the command (checked as such).
BUTTONS: dict[str, Action] = {
    # A task's own buttons: every role has tasks; the occurrence's unit is checked on loading.
    "done": Action(report.begin, ANYONE),
    "photo": Action(report.begin, ANYONE),
    "next": Action(report.ask_note, ANYONE),
    "skip": Action(report.show_summary, ANYONE),
    "more": Action(report.add_more_photos, ANYONE),
    "send": Action(report.submit, ANYONE),
    "cancel": Action(report.cancel, ANYONE),
    "pick": Action(report.pick_task, ANYONE),
    "qdone": Action(report.confirm_quick_done, ANYONE),
    "all": Action(checklist.review, ANYONE),
    "allok": Action(checklist.confirm, ANYONE),
    # The same reminder's tasks one at a time (handlers/walk.py): each card's answers.
    "one": Action(walk.start, ANYONE),
    "wkd": Action(walk.done, ANYONE),
    "wke": Action(walk.more_time, ANYONE),
    "wkx": Action(walk.more_time_days, ANYONE),
    "wkc": Action(walk.cannot_do, ANYONE),
    "wks": Action(walk.skip, ANYONE),
    "wkq": Action(walk.stop, ANYONE),
    "ext": Action(extension.ask_extension, ANYONE),
    "extd": Action(extension.extension_days, ANYONE),
    "cant": Action(cannot.ask_cannot, ANYONE),
    "appr": Action(_approve, APPROVERS),
    "decl": Action(_decline, APPROVERS),
    "decn": Action(extension.decline_without_reason, APPROVERS),
    "cnok": Action(cannot.accept, APPROVERS),  # "cannot do" is decided like an extension
    "cnno": Action(cannot.reject, APPROVERS),
    "obh": Action(officer.behalf_card, COMMUNE),  # report on a village's behalf
    "rv": Action(review.open_report, COMMUNE | DISTRICT),  # the district reads, without buttons
    "rva": Action(review.accept_report, COMMUNE),
    "rvr": Action(review.return_report, COMMUNE),
    "vil": Action(officer.village_detail, COMMUNE | DISTRICT),
    "inv": Action(officer.invite_village_head, COMMUNE),
    "evk": Action(officer.event_kind, COMMUNE),
    "fu": Action(followup.followed_up, DIGEST_READERS),
    "skipphone": Action(onboarding.skip_phone, ANYONE),
    "com": Action(district.commune_detail, DISTRICT),
    "comp": Action(district.commune_report_page, DISTRICT),  # a page of /baocao's ranking
}

# What free text means in each dialog state; allowed to the roles of the action that set it
# (a role changed in between is refused, not carried through).
STATE_TEXT: dict[str, Action] = {
    "awaiting_note": Action(report.note_text, BUTTONS["next"].roles),
    "awaiting_extension_date": Action(extension.typed_extension_date, BUTTONS["ext"].roles),
    "awaiting_extension_reason": Action(extension.extension_reason, BUTTONS["ext"].roles),
    "awaiting_cannot_reason": Action(cannot.cannot_reason, BUTTONS["cant"].roles),
    "awaiting_decision_reason": Action(decision_reason.typed_reason, BUTTONS["decl"].roles),
    "awaiting_event_date": Action(officer.event_date, BUTTONS["evk"].roles),
    walk.WALKING: Action(walk.typed, BUTTONS["one"].roles),
    "walk_cannot_reason": Action(walk.cannot_reason, BUTTONS["wkc"].roles),
    "walk_extension_date": Action(walk.typed_date, BUTTONS["wke"].roles),
    "walk_extension_reason": Action(walk.more_time_reason, BUTTONS["wke"].roles),
}


def role_may(framework: Framework, allowed: frozenset[str], role: str) -> bool:
    """Does someone holding `role` pass an action's declared `allowed` roles?"""
    if EVERYONE in allowed or role_matches(list(allowed), role):
        return True
    definition = framework.roles.get(role)
    if definition is None:
        return False
    if OVERSEER in allowed and definition.oversees:
        return True
    return any(
        entry.startswith(f"{OVERSEER}:") and entry.split(":", 1)[1] in definition.oversees
        for entry in allowed
    )


async def _permitted(convo: Conversation, action: Action, name: str) -> bool:
    """The one role check: True, or the person is told and the attempt audited."""
    role = convo.user.role if convo.user else ""
    if convo.user is not None and role_may(convo.app.framework, action.roles, role):
        return True
    await audit(
        convo.session,
        "forbidden",
        convo.subject,
        convo.user,
        reason="role",
        attempted=name,
        role=role,
        data=convo.incoming.data or convo.incoming.text[:200],
    )
    _ = convo._
    await convo.reply(
        _(
            "Sorry, this is not something {role} can do here, so nothing was changed. "
            "Type /help to see what you can do."
        ).format(role=_role_name(convo, role)),
        main_menu(convo),
    )
    return False


def _role_name(convo: Conversation, role: str) -> str:
    """The person's own title at their unit ("UBND phường Vĩnh Hòa"), else the role's name."""
    known = role in convo.app.framework.roles or role.startswith("province_agency:")
    if known and convo.unit is not None:
        return title(convo, role, convo.unit)
    return role_label(convo, role) if known else role


async def _run_command(convo: Conversation, name: str) -> None:
    action = COMMANDS.get(name)
    if action is None:
        await help.not_understood(convo)
        return
    if await _permitted(convo, action, f"/{name}"):
        await action.journey(convo)


async def _menu_command(convo: Conversation, arg: str) -> None:
    await _run_command(convo, arg)


def _number_to_button(convo: Conversation) -> None:
    """On a channel without buttons, "2" means the second entry of the last numbered menu."""
    incoming = convo.incoming
    menu = convo.state.data.get("menu") or []
    text = incoming.text.strip().rstrip(".")
    if incoming.kind == Kind.text and text.isdigit() and 1 <= int(text) <= len(menu):
        incoming.kind = Kind.button
        incoming.data = menu[int(text) - 1]
        incoming.message_id = ""  # the typed message is no card to replace


async def _dispatch(convo: Conversation) -> None:
    incoming = convo.incoming
    if convo.user is None:
        await onboarding.stranger(convo)
        return
    _number_to_button(convo)
    if incoming.kind == Kind.command:
        if incoming.command != "start" and incoming.command in COMMANDS:
            convo.clear_state()
        await _run_command(convo, incoming.command)
        return
    if incoming.kind == Kind.button:
        name, _sep, arg = incoming.data.partition(":")
        if name == "menu":
            convo.clear_state()
            await _menu_command(convo, arg)
            return
        button = BUTTONS.get(name)
        if button is None:
            await help.not_understood(convo)
        elif await _permitted(convo, button, f"{name}:"):
            await button.journey(convo, arg)
        return
    if incoming.kind in (Kind.photo, Kind.document):
        try:
            if convo.state.state == "awaiting_photos":
                await report.photo_in_report(convo)
            else:
                await report.photo_without_task(convo)
        except FetchRefused as refused:  # raised by the download, before anything is written
            await _refuse_source(convo, str(refused))
        return
    if incoming.kind == Kind.contact:
        await onboarding.contact_shared(convo)
        return
    if incoming.kind == Kind.text and convo.state.state in onboarding.STEPS:
        if onboarding.takes_text(convo):
            await onboarding.step_text(convo)
            return
        convo.clear_state()  # not an answer to the question asked: handled as usual below
    if incoming.kind == Kind.text:
        state_action = STATE_TEXT.get(convo.state.state)
        if state_action is not None:
            if await _permitted(convo, state_action, convo.state.state):
                await state_action.journey(convo)
            return
        if report.means_done(incoming.text):
            await report.quick_done(convo)
            return
        if onboarding.looks_like_code(incoming.text) and incoming.text.strip().isupper():
            await onboarding.register(convo, incoming.text)
            return
    if incoming.kind == Kind.follow:
        await onboarding.start(convo)
        return
    await help.not_understood(convo)


async def _refuse_source(convo: Conversation, why: str) -> None:
    await audit(
        convo.session,
        "evidence.refused_source",
        convo.subject,
        convo.user,
        ref=convo.incoming.file.ref[:300] if convo.incoming.file else "",
        why=why[:200],
    )
    await convo.reply(
        convo._(
            "I could not take this photo: it was not sent through Zalo itself. Please send "
            "the photo again from the Zalo app (tap the picture icon), not as a link."
        )
    )


def database_unavailable(error: Exception) -> bool:
    """The database went away (a restart, a failover, a killed connection) or is too busy:
    nothing was committed, and the same update will work once it is back."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError | InternalError)


Claim = Callable[[AsyncSession], Awaitable[bool]]


class Dispatcher:
    """Handles inbound updates end to end; `after_commit` wakes the sender.

    Platforms' updates go through the inbox (`accept`: recorded at once, handled by its worker
    in order); the web simulator, which shows the replies in its answer, calls `handle`."""

    def __init__(self, app: AppContext, after_commit: Callable[[], None] | None = None) -> None:
        self.app = app
        self.after_commit = after_commit or (lambda: None)
        self.inbox = Inbox(app.db, self)

    @property
    def button_actions(self) -> set[str]:
        return {*BUTTONS, "menu"}

    async def accept(self, incoming: Incoming) -> None:
        """Record a platform's update to be handled shortly (see bot/core/inbox.py)."""
        await self.inbox.accept(incoming)

    async def idle(self) -> None:
        """Wait until every update accepted so far has been handled."""
        await self.inbox.idle()

    async def handle(self, incoming: Incoming) -> bool:
        """Record and handle an update in one go. Returns False when it was seen before
        (nothing happens the second time).

        Raises when the database is unavailable: the update was not recorded, so the channel
        answers with an error and the platform delivers it again (an apology would record it
        and lose it)."""
        await fetch_first(incoming)
        try:
            return await self._handle_claimed(incoming, _record_new(incoming), racing=True)
        except IntegrityError:
            # A concurrent delivery of the same update won the insert of its inbound row.
            return False

    async def handle_recorded(self, row_id: int, incoming: Incoming) -> bool:
        """Handle an update the inbox recorded; False when another worker already did."""
        return await self._handle_claimed(incoming, _mark_handled(row_id, incoming), racing=False)

    async def give_up(self, row_id: int, incoming: Incoming) -> bool:
        """A recorded update that keeps failing: the apology, and it is marked handled."""
        handled = await self._apologise(incoming, _mark_handled(row_id, incoming))
        if handled:
            self.after_commit()
        return handled

    async def discard_recorded(self, row_id: int) -> None:
        """A recorded update that cannot be read back: marked handled, never retried."""
        async with self.app.db.writer(), self.app.db.session() as session:
            await _mark_handled(row_id, None)(session)
            await session.commit()

    async def _handle_claimed(self, incoming: Incoming, claim: Claim, racing: bool) -> bool:
        """`racing`: the claim inserts the inbound row, so an IntegrityError may mean that a
        concurrent delivery of the same update won (the caller decides)."""
        try:
            handled = await self._handle(incoming, claim)
        except IntegrityError:
            if racing:
                raise
            log.exception("handling %s:%s failed", incoming.channel, incoming.update_id)
            handled = await self._apologise(incoming, claim)
        except Exception as error:
            if database_unavailable(error):
                raise
            log.exception("handling %s:%s failed", incoming.channel, incoming.update_id)
            handled = await self._apologise(incoming, claim)
        if handled:
            self.after_commit()
        return handled

    async def handle_in_round(self, session: AsyncSession, row_id: int, incoming: Incoming) -> bool:
        """Handle a recorded update inside the inbox's round: the caller's transaction, which
        commits the round's updates together and then calls `after_commit`. False when it is
        not this worker's now. A failure is raised as it is (no apology here): the inbox rolls
        the round back and handles its updates one at a time (`handle_recorded`), so that only
        the failing one is apologised for and its neighbours' effects are kept, once."""
        return await self._handle_in(session, incoming, _mark_handled(row_id, incoming))

    async def _handle(self, incoming: Incoming, claim: Claim) -> bool:
        async with self.app.db.writer(), self.app.db.session() as session:
            if not await self._handle_in(session, incoming, claim):
                return False
            await session.commit()
        return True

    async def _handle_in(self, session: AsyncSession, incoming: Incoming, claim: Claim) -> bool:
        if not await claim(session):
            return False
        chat = await chat_context(session, incoming.channel, incoming.external_id)
        if chat.identity is not None:
            touch(chat.identity)
        convo = Conversation(
            self.app, session, incoming, chat.state, chat.identity, chat.user, chat.unit
        )
        await _dispatch(convo)
        await convo.flush()
        return True

    async def _apologise(self, incoming: Incoming, claim: Claim) -> bool:
        """A bug must not leave the person in silence, nor be retried forever."""
        async with self.app.db.writer(), self.app.db.session() as session:
            if not await claim(session):
                return False
            _ = translator(self.app.settings.locale)
            await enqueue(
                session,
                incoming.channel,
                incoming.external_id,
                Outgoing(
                    text=_(
                        "Sorry, something went wrong on our side. Please try again in a moment, or type /help."
                    )
                ),
                f"reply:{incoming.channel}:{incoming.update_id}:error",
            )
            await session.commit()
        return True


def _record_new(incoming: Incoming) -> Claim:
    """Claim by inserting the update's row; False when it was recorded before."""

    async def claim(session: AsyncSession) -> bool:
        seen = await session.exec(
            select(InboundUpdate.id).where(
                InboundUpdate.channel == incoming.channel,
                InboundUpdate.update_id == incoming.update_id,
            )
        )
        if seen.first() is not None:
            return False
        session.add(
            InboundUpdate(
                channel=incoming.channel, update_id=incoming.update_id, handled_at=utcnow()
            )
        )
        await session.flush()
        return True

    return claim


def _mark_handled(row_id: int, incoming: Incoming | None) -> Claim:
    """Claim a recorded row; False when it is not this worker's now (handled already, or its
    chat in another worker's hands: bot/core/inbox.py, claim_recorded)."""
    chat = chat_key(incoming.channel, incoming.external_id) if incoming is not None else None

    async def claim(session: AsyncSession) -> bool:
        return await claim_recorded(session, row_id, chat)

    return claim
