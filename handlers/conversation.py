"""One inbound update being handled: who is talking, where they are in a dialog, how to answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.capabilities import can_edit
from bot.core.context import AppContext
from bot.core.i18n import Translator, translator
from bot.core.messages import Button, Incoming, Kind, Outgoing
from bot.core.models import ChannelIdentity, DialogState, Unit, User, utcnow
from bot.core.services.outbox import insert_messages, notify_user, reply_values


@dataclass
class Conversation:
    app: AppContext
    session: AsyncSession
    incoming: Incoming
    state: DialogState
    identity: ChannelIdentity | None = None
    user: User | None = None
    unit: Unit | None = None
    _replies: int = field(default=0)
    _pending: list[dict] = field(default_factory=list)  # replies not inserted yet (`flush`)

    @property
    def locale(self) -> str:
        if self.user is not None:
            return self.user.locale
        return self.app.settings.locale

    @property
    def _(self) -> Translator:
        return translator(self.locale)

    @property
    def subject(self) -> str:
        return f"{self.incoming.channel}:{self.incoming.external_id}"

    async def reply(
        self,
        text: str,
        buttons: list[list[Button]] | None = None,
        *,
        in_place: bool = False,
        **extra: Any,
    ) -> None:
        """Answer in the same chat, through the outbox, in this transaction: the replies to
        one update are inserted together by `flush`, before the commit.

        `in_place`: this answers the card whose button was tapped, so where the channel can
        edit, it replaces that card (its old buttons go with it) instead of adding a message.
        Elsewhere, or for a photo, it is a new message as usual."""
        self._replies += 1
        key = f"reply:{self.incoming.channel}:{self.incoming.update_id}:{self._replies}"
        message = Outgoing(text=text, buttons=buttons or [], **extra)
        if in_place and self._may_replace_card(message):
            message.edit_of = self.incoming.message_id
            self.incoming.card_replaced = True
        self._pending.append(
            reply_values(
                self.session,
                self.incoming.channel,
                self.incoming.external_id,
                message,
                key,
                user_id=self.user.id if self.user else None,
                state=self.state,
                burst=f"{self.incoming.channel}:{self.incoming.update_id}",
            )
        )

    async def flush(self) -> None:
        """Insert the replies so far, in order, in one statement (the caller then commits)."""
        if self._pending:
            rows, self._pending = self._pending, []
            await insert_messages(self.session, rows)

    def _may_replace_card(self, message: Outgoing) -> bool:
        """A tapped card can be replaced once per update, by text, on a channel that edits."""
        incoming = self.incoming
        return (
            incoming.kind == Kind.button
            and bool(incoming.message_id)
            and not incoming.card_replaced
            and message.text_only
            and bool(message.text.strip())
            and can_edit(incoming.channel)
        )

    async def notify(self, user: User, message: Outgoing, purpose: str) -> bool:
        """Tell someone else (an approver, the requester); False when they cannot be reached."""
        key = f"notify:{purpose}:{user.id}"
        return await notify_user(self.session, user, message, key) is not None

    def set_state(self, name: str, **data: Any) -> None:
        menu = self.state.data.get("menu")
        new_data = {**data, **({"menu": menu} if menu else {})}
        if self.state.id is not None and (self.state.state, self.state.data) == (name, new_data):
            return  # already there (an idle chat told to be idle): no write
        self.state.state = name
        self.state.data = new_data
        self.state.updated_at = utcnow()
        self.session.add(self.state)

    def clear_state(self) -> None:
        self.set_state("idle")

    @property
    def state_data(self) -> dict[str, Any]:
        return self.state.data
