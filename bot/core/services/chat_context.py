"""Who is talking in a chat, read in one query: the identity, the person, their unit and the
chat's dialog state. Every inbound update needs all four; four look-ups were a third of the
statements of a handled update."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import String, and_, bindparam
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.models import ChannelIdentity, DialogState, Unit, User, utcnow
from bot.core.timeutil import from_db

# last_interaction_at is written at most this often. What reads it: the Zalo OA window (7 days
# since the person last wrote: a moment up to this much too early closes the window early,
# never late) and the preferred channel (the one used last, to within this much).
TOUCH_EVERY = timedelta(seconds=60)


@dataclass
class ChatContext:
    identity: ChannelIdentity | None
    user: User | None  # None for a stranger, or a person switched off
    unit: Unit | None
    state: DialogState  # new (not yet in the database) for a chat never seen


def _chat_statement():  # noqa: ANN202  (a Select)
    chat = select(
        bindparam("channel", type_=String).label("channel"),
        bindparam("external_id", type_=String).label("external_id"),
    ).subquery("chat")
    return (
        select(ChannelIdentity, User, Unit, DialogState)
        .select_from(chat)
        .outerjoin(
            ChannelIdentity,
            and_(
                ChannelIdentity.channel == chat.c.channel,
                ChannelIdentity.external_id == chat.c.external_id,
            ),
        )
        .outerjoin(User, User.id == ChannelIdentity.user_id)
        .outerjoin(Unit, Unit.id == User.unit_id)
        .outerjoin(
            DialogState,
            and_(
                DialogState.channel == chat.c.channel,
                DialogState.external_id == chat.c.external_id,
            ),
        )
    )


_CHAT = _chat_statement()  # built once: constructing it cost as much as running it


async def chat_context(session: AsyncSession, channel: str, external_id: str) -> ChatContext:
    """One SELECT from the chat's address, outer-joined to what exists of the four."""
    result = await session.exec(_CHAT, params={"channel": channel, "external_id": external_id})
    row = result.one()
    identity, user, unit, state = row
    if user is not None and not user.active:
        user = unit = None
    if state is None:
        state = DialogState(channel=channel, external_id=external_id, state="idle", data={})
        session.add(state)
    return ChatContext(identity, user, unit, state)


def touch(identity: ChannelIdentity) -> None:
    """The person wrote: their chat is reachable, and used now (written at most once a
    TOUCH_EVERY, see there)."""
    now = utcnow()
    last = identity.last_interaction_at
    if identity.blocked or last is None or now - from_db(last) >= TOUCH_EVERY:
        identity.last_interaction_at = now
        identity.blocked = False
