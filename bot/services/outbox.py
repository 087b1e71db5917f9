"""Queue messages in the same transaction as the state change they report."""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.capabilities import uses_numbered_menu
from bot.messages import Outgoing
from bot.models import ChannelIdentity, DialogState, Outbox, User, utcnow


async def dialog_state(session: AsyncSession, channel: str, external_id: str) -> DialogState:
    state = (
        await session.exec(
            select(DialogState).where(
                DialogState.channel == channel, DialogState.external_id == external_id
            )
        )
    ).first()
    if state is None:
        state = DialogState(channel=channel, external_id=external_id, state="idle", data={})
        session.add(state)
    return state


async def enqueue(
    session: AsyncSession,
    channel: str,
    external_id: str,
    message: Outgoing,
    key: str,
    user_id: int | None = None,
    state: DialogState | None = None,
    burst: str = "",
) -> Outbox | None:
    """Add one message to the outbox; a key seen before adds nothing (exactly-once effect).

    For a channel that cannot show these buttons, the numbered menu is remembered in the
    recipient's dialog state so that a typed "2" means the second button. Menus queued in one
    `burst` (the replies to one update) are numbered on from each other and all remembered.
    """
    existing = (await session.exec(select(Outbox.id).where(Outbox.idempotency_key == key))).first()
    if existing is not None:
        return None
    buttons = message.flat_buttons()
    if uses_numbered_menu(channel, len(buttons)):
        state = state or await dialog_state(session, channel, external_id)
        same_burst = bool(burst) and state.data.get("menu_burst") == burst
        earlier = list(state.data.get("menu") or []) if same_burst else []
        message = replace(message, menu_start=len(earlier) + 1)
        menu = [*earlier, *(button.data for button in buttons)]
        state.data = {**state.data, "menu": menu, "menu_burst": burst}
        session.add(state)
    row = Outbox(
        idempotency_key=key,
        user_id=user_id,
        channel=channel,
        external_id=external_id,
        payload=message.to_payload(),
    )
    session.add(row)
    return row


async def preferred_identity(session: AsyncSession, user_id: int) -> ChannelIdentity | None:
    """The reachable channel the person used last (reminders go where they answer).

    A Zalo OA identity silent for over 7 days is skipped: Zalo forbids writing to it.
    """
    identities = (
        await session.exec(
            select(ChannelIdentity)
            .where(ChannelIdentity.user_id == user_id, col(ChannelIdentity.blocked).is_(False))
            .order_by(
                col(ChannelIdentity.last_interaction_at).desc().nulls_last(),
                col(ChannelIdentity.id).desc(),
            )
        )
    ).all()
    from bot.channels.zalo_oa import within_window  # late: the channel module is heavier

    now = utcnow()
    reachable = [identity for identity in identities if within_window(identity, now)]
    return reachable[0] if reachable else None


async def notify_user(
    session: AsyncSession, user: User, message: Outgoing, key: str
) -> ChannelIdentity | None:
    """Queue a message to a person on their preferred channel; None when unreachable."""
    identity = await preferred_identity(session, user.id)
    if identity is None:
        return None
    await enqueue(session, identity.channel, identity.external_id, message, key, user_id=user.id)
    return identity


def touch(identity: ChannelIdentity) -> None:
    identity.last_interaction_at = utcnow()
