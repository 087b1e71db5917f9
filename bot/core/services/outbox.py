"""Queue messages in the same transaction as the state change they report."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.capabilities import shows_buttons, uses_numbered_menu
from bot.core.messages import Outgoing, resolve_taps
from bot.core.models import ChannelIdentity, DialogState, Outbox, OutboxLane, User, utcnow
from bot.core.services.people import preferred_identities
from bot.core.sqlutil import INSERT_CHUNK, dialect_name, insert_new

# Which lane a message goes in, read from its key (the keys say what a message is).
_LANE_PREFIXES = (
    ("reply:", OutboxLane.reply),
    ("remind:", OutboxLane.reminder),
    ("digest:", OutboxLane.digest),
    ("evidence:", OutboxLane.digest),
)


def lane_for(key: str, chain_key: str | None = None) -> int:
    """The sender's lane of a message: replies first, then news for others, reminders, digests.

    A step of a reach chain is a reminder, whatever its key."""
    for prefix, lane in _LANE_PREFIXES:
        if key.startswith(prefix):
            return int(lane)
    return int(OutboxLane.reminder if chain_key else OutboxLane.notify)


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
    if uses_numbered_menu(channel, len(message.flat_buttons())):
        state = state or await dialog_state(session, channel, external_id)
        message = _remember_menu(session, state, message, burst)
    message = resolve_taps(message, not shows_buttons(channel, len(message.flat_buttons())))
    row = Outbox(
        idempotency_key=key,
        user_id=user_id,
        channel=channel,
        external_id=external_id,
        payload=message.to_payload(),
        lane=lane_for(key),
        edit_of=message.edit_of,
    )
    session.add(row)
    return row


def _remember_menu(
    session: AsyncSession, state: DialogState, message: Outgoing, burst: str
) -> Outgoing:
    """Keep the message's buttons as the chat's numbered menu; returns the message numbered."""
    buttons = message.flat_buttons()
    same_burst = bool(burst) and state.data.get("menu_burst") == burst
    earlier = list(state.data.get("menu") or []) if same_burst else []
    menu = [*earlier, *(button.data for button in buttons)]
    state.data = {**state.data, "menu": menu, "menu_burst": burst}
    session.add(state)
    return replace(message, menu_start=len(earlier) + 1)


def reply_values(
    session: AsyncSession,
    channel: str,
    external_id: str,
    message: Outgoing,
    key: str,
    user_id: int | None,
    state: DialogState,
    burst: str = "",
) -> dict:
    """The outbox row `enqueue` would add, as column values for `insert_messages`: the
    replies to one update are inserted together, in one statement, when it is handled (its
    numbered menu is remembered in `state` now, as `enqueue` does)."""
    if uses_numbered_menu(channel, len(message.flat_buttons())):
        message = _remember_menu(session, state, message, burst)
    message = resolve_taps(message, not shows_buttons(channel, len(message.flat_buttons())))
    now = utcnow()
    return {
        **_row_defaults(),
        "idempotency_key": key,
        "user_id": user_id,
        "channel": channel,
        "external_id": external_id,
        "payload": message.to_payload(),
        "lane": lane_for(key),
        "edit_of": message.edit_of,
        "next_attempt_at": now,
        "created_at": now,
    }


@cache
def _row_defaults() -> dict:
    """Every column of a new outbox row with the model's defaults (built once: an Outbox
    object per reply cost more than its insert)."""
    row = Outbox(idempotency_key="", channel="", external_id="")
    return {c.name: getattr(row, c.name) for c in Outbox.__table__.columns if c.name != "id"}


@cache
def _insert_ignoring_seen(dialect: str):  # noqa: ANN202  (a dialect's Insert)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(Outbox.__table__).on_conflict_do_nothing(index_elements=["idempotency_key"])


async def insert_messages(session: AsyncSession, rows: Sequence[dict]) -> None:
    """Insert prepared rows (`reply_values`) in their order, as one executemany of one
    statement compiled once; a key already in the outbox (or earlier in `rows`) adds
    nothing, as in `enqueue`."""
    unique: dict[str, dict] = {}
    for row in rows:
        unique.setdefault(row["idempotency_key"], row)
    await session.exec(  # type: ignore[call-overload]
        _insert_ignoring_seen(dialect_name(session)), params=list(unique.values())
    )


@dataclass(frozen=True)
class Queued:
    """One message for enqueue_many: the same fields as enqueue's arguments."""

    channel: str
    external_id: str
    message: Outgoing
    key: str
    user_id: int | None = None
    created_at: datetime | None = None  # default: now
    chain_key: str | None = None  # the reach chain it is a step of (bot/core/services/reach.py)
    payload: dict | None = None  # instead of the message's: a template channel's (ZNS)


def _chunks(items: Sequence, size: int = INSERT_CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _keys_in_outbox(session: AsyncSession, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(keys):
        rows = await session.exec(
            select(Outbox.idempotency_key).where(col(Outbox.idempotency_key).in_(chunk))
        )
        found.update(rows.all())
    return found


async def _dialog_states(
    session: AsyncSession, chats: set[tuple[str, str]]
) -> dict[tuple[str, str], DialogState]:
    """The dialog state of each (channel, external_id), created (unsaved) where there is none."""
    states: dict[tuple[str, str], DialogState] = {}
    ordered = sorted(chats)
    for chunk in _chunks(ordered):
        rows = await session.exec(
            select(DialogState).where(
                col(DialogState.external_id).in_({external_id for _, external_id in chunk}),
                col(DialogState.channel).in_({channel for channel, _ in chunk}),
            )
        )
        for state in rows.all():
            states[(state.channel, state.external_id)] = state
    for channel, external_id in ordered:
        if (channel, external_id) not in states:
            states[(channel, external_id)] = DialogState(
                channel=channel, external_id=external_id, state="idle", data={}
            )
    return {chat: states[chat] for chat in chats}


def _needs_menu(queued: Queued) -> bool:
    if queued.payload is not None:
        return False
    return uses_numbered_menu(queued.channel, len(queued.message.flat_buttons()))


def _outbox_values(queued: Queued, message: Outgoing) -> dict:
    """The row's column values, defaults filled by the model exactly as for enqueue's rows."""
    row = Outbox(
        idempotency_key=queued.key,
        user_id=queued.user_id,
        channel=queued.channel,
        external_id=queued.external_id,
        payload=queued.payload if queued.payload is not None else message.to_payload(),
        chain_key=queued.chain_key,
        lane=lane_for(queued.key, queued.chain_key),
        edit_of=message.edit_of if queued.payload is None else "",
    )
    if queued.created_at is not None:
        row.created_at = queued.created_at
    return {
        column.name: getattr(row, column.name)
        for column in Outbox.__table__.columns
        if column.name != "id"
    }


async def enqueue_many(session: AsyncSession, messages: Sequence[Queued]) -> set[str]:
    """What `enqueue` does for each message, in a few statements instead of a few per message:
    one look-up of the keys, one read of the dialog states that numbered menus need, one insert.
    A key seen before (in the outbox, or earlier in `messages`) adds nothing. Returns the keys
    added. Unlike `enqueue`, the rows are inserted at once (no Outbox objects in the session).
    """
    seen = await _keys_in_outbox(session, list({queued.key for queued in messages}))
    fresh: list[Queued] = []
    for queued in messages:
        if queued.key not in seen:
            seen.add(queued.key)
            fresh.append(queued)
    states = await _dialog_states(
        session, {(q.channel, q.external_id) for q in fresh if _needs_menu(q)}
    )
    rows = []
    for queued in fresh:
        message = queued.message
        if _needs_menu(queued):
            state = states[(queued.channel, queued.external_id)]
            message = _remember_menu(session, state, message, burst="")
        message = resolve_taps(
            message, not shows_buttons(queued.channel, len(message.flat_buttons()))
        )
        rows.append(_outbox_values(queued, message))
    # A key a concurrent worker added meanwhile is skipped.
    added = await insert_new(session, Outbox.__table__, rows, ("idempotency_key",))
    return {key for (key,) in added}


async def preferred_identity(session: AsyncSession, user_id: int) -> ChannelIdentity | None:
    """The reachable channel the person used last (reminders go where they answer).

    A Zalo OA identity silent for over 7 days is skipped: Zalo forbids writing to it.
    """
    return (await preferred_identities(session, [user_id]))[user_id]


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
