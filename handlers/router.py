"""Pick the journey for an inbound update, inside one transaction with its replies.

Order: the update is recorded by (channel, update id) first, so a redelivery does nothing;
then registration for strangers; then commands, buttons, the dialog state, and free input.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
)
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.i18n import translator
from bot.core.inbox import Inbox, fetch_first
from bot.core.messages import Incoming, Kind, Outgoing
from bot.core.models import InboundUpdate, Unit, User, utcnow
from bot.core.services.outbox import dialog_state, enqueue
from bot.core.services.people import identity_for
from handlers import district, extension, followup, help, officer, onboarding, report, tasks
from handlers.conversation import Conversation

log = logging.getLogger(__name__)

Journey = Callable[[Conversation], Awaitable[None]]

COMMANDS: dict[str, Journey] = {
    "start": onboarding.start,
    "viec": tasks.list_tasks,
    "help": help.show_help,
    "lang": help.change_language,
}
ROLE_COMMANDS: dict[str, dict[str, Journey]] = {
    "commune_committee": {
        "tinhhinh": officer.village_overview,
        "moi": officer.invite_menu,
        "sukien": officer.event_menu,
    },
    "district_committee": {"baocao": district.commune_report},
}

ButtonJourney = Callable[[Conversation, str], Awaitable[None]]


async def _approve(convo: Conversation, arg: str) -> None:
    await extension.decide(convo, arg, approve=True)


async def _decline(convo: Conversation, arg: str) -> None:
    await extension.decide(convo, arg, approve=False)


BUTTONS: dict[str, ButtonJourney] = {
    "done": report.begin,
    "photo": report.begin,
    "next": report.ask_note,
    "skip": report.show_summary,
    "send": report.submit,
    "cancel": report.cancel,
    "pick": report.pick_task,
    "qdone": report.confirm_quick_done,
    "ext": extension.ask_extension,
    "extd": extension.extension_days,
    "cant": extension.ask_cannot,
    "appr": _approve,
    "decl": _decline,
    "vil": officer.village_detail,
    "inv": officer.invite_village_head,
    "evk": officer.event_kind,
    "fu": followup.followed_up,
}

# What free text means in each dialog state.
STATE_TEXT: dict[str, Journey] = {
    "awaiting_note": report.note_text,
    "awaiting_extension_date": extension.typed_extension_date,
    "awaiting_extension_reason": extension.extension_reason,
    "awaiting_cannot_reason": extension.cannot_reason,
    "awaiting_event_date": officer.event_date,
}


async def _menu_command(convo: Conversation, arg: str) -> None:
    journey = COMMANDS.get(arg) or ROLE_COMMANDS.get(convo.user.role, {}).get(arg)
    if arg == "help":
        journey = help.show_help
    await (journey or help.not_understood)(convo)


def _number_to_button(convo: Conversation) -> None:
    """On a channel without buttons, "2" means the second entry of the last numbered menu."""
    incoming = convo.incoming
    menu = convo.state.data.get("menu") or []
    text = incoming.text.strip().rstrip(".")
    if incoming.kind == Kind.text and text.isdigit() and 1 <= int(text) <= len(menu):
        incoming.kind = Kind.button
        incoming.data = menu[int(text) - 1]


async def _dispatch(convo: Conversation) -> None:
    incoming = convo.incoming
    if convo.user is None:
        await onboarding.stranger(convo)
        return
    _number_to_button(convo)
    if incoming.kind == Kind.command:
        journey = COMMANDS.get(incoming.command) or ROLE_COMMANDS.get(convo.user.role, {}).get(
            incoming.command
        )
        if journey is None:
            await help.not_understood(convo)
            return
        if incoming.command != "start":
            convo.clear_state()
        await journey(convo)
        return
    if incoming.kind == Kind.button:
        action, _sep, arg = incoming.data.partition(":")
        if action == "menu":
            convo.clear_state()
            await _menu_command(convo, arg)
            return
        button = BUTTONS.get(action)
        await (button(convo, arg) if button else help.not_understood(convo))
        return
    if incoming.kind in (Kind.photo, Kind.document):
        if convo.state.state == "awaiting_photos":
            await report.photo_in_report(convo)
        else:
            await report.photo_without_task(convo)
        return
    if incoming.kind == Kind.text:
        state_journey = STATE_TEXT.get(convo.state.state)
        if state_journey is not None:
            await state_journey(convo)
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
        return await self._handle_claimed(incoming, _mark_handled(row_id), racing=False)

    async def give_up(self, row_id: int, incoming: Incoming) -> bool:
        """A recorded update that keeps failing: the apology, and it is marked handled."""
        handled = await self._apologise(incoming, _mark_handled(row_id))
        if handled:
            self.after_commit()
        return handled

    async def discard_recorded(self, row_id: int) -> None:
        """A recorded update that cannot be read back: marked handled, never retried."""
        async with self.app.db.writer(), self.app.db.session() as session:
            await _mark_handled(row_id)(session)
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

    async def _handle(self, incoming: Incoming, claim: Claim) -> bool:
        async with self.app.db.writer(), self.app.db.session() as session:
            if not await claim(session):
                return False
            identity = await identity_for(session, incoming.channel, incoming.external_id)
            user = await session.get(User, identity.user_id) if identity else None
            if user is not None and not user.active:
                user = None
            unit = await session.get(Unit, user.unit_id) if user else None
            if identity is not None:
                identity.last_interaction_at = utcnow()
                identity.blocked = False
                session.add(identity)
            state = await dialog_state(session, incoming.channel, incoming.external_id)
            convo = Conversation(self.app, session, incoming, state, identity, user, unit)
            await _dispatch(convo)
            await session.commit()
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


def _mark_handled(row_id: int) -> Claim:
    """Claim a recorded row; False when another worker handled it first (PostgreSQL: the
    UPDATE waits for that worker's transaction, then finds the row handled)."""

    async def claim(session: AsyncSession) -> bool:
        result = await session.exec(
            update(InboundUpdate)
            .where(col(InboundUpdate.id) == row_id, col(InboundUpdate.handled_at).is_(None))
            .values(handled_at=utcnow(), payload=None)
        )
        return result.rowcount == 1

    return claim
