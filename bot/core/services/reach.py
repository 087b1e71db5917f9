"""Reaching a person: the chain of steps one message takes until it is delivered.

A message to a person (a reminder letter, a notice) starts a chain (`reach_chains`): the first
step is queued on the channel the policy puts first (framework_data/reach.yaml: the chat the
person used last, their other chats, a ZNS template to their phone). The sender records what the
platform said (`message_sent` / `message_failed`) and the Zalo OA webhook what it delivered
(`record_receipts`); the minute sweep (scheduler/reach.py) starts the next step when a step
failed, or sent no receipt in time, and at the end tells the commune by name. Nothing here marks
a message sent that the platform did not accept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import tuple_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.capabilities import within_window
from bot.core.models import (
    ChainStatus,
    ChannelIdentity,
    Outbox,
    OutboxStatus,
    ReachChain,
    Reminder,
    Unit,
    User,
)
from bot.core.timeutil import to_db

ZNS = "zalo_zns"
RECEIPT_CHANNELS = frozenset({"zalo_oa", ZNS})  # channels that say when a message arrived
NOT_DELIVERED = "not_delivered"  # a step accepted but with no receipt in time
# Vietnamese mobile numbers: 0 or 84 (or +84), then 9 digits starting 3, 5, 7, 8 or 9.
_MOBILE = re.compile(r"^(?:\+?84|0)([35789]\d{8})$")


def normalise_phone(text: str) -> str | None:
    """A Vietnamese mobile number in ZNS's form (84xxxxxxxxx), or None if it is not one."""
    compact = re.sub(r"[\s.\-()]", "", text or "")
    match = _MOBILE.match(compact)
    return f"84{match.group(1)}" if match else None


def phone_for(user: User) -> str | None:
    """The person's phone number for ZNS (users.phone, stored normalised), if any."""
    return normalise_phone(user.phone or "")


# --- planning the steps ------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str  # the policy's step: last_used | other_channels | zns
    channel: str
    address: str  # chat id, Zalo user id, or phone number


def log_entry(
    name: str, channel: str, address: str, outcome: str, reason: str, at: datetime
) -> dict:
    return {
        "step": name,
        "channel": channel,
        "address": address,
        "outcome": outcome,
        "reason": reason,
        "at": to_db(at).isoformat(),
    }


def ordered_identities(identities: Iterable[ChannelIdentity]) -> list[ChannelIdentity]:
    """Most recently used first, as bot.core.services.people.preferred_identities orders them."""
    never = datetime.min.replace(tzinfo=None)
    return sorted(
        identities,
        key=lambda i: (
            i.last_interaction_at is not None,
            to_db(i.last_interaction_at).replace(tzinfo=None) if i.last_interaction_at else never,
            i.id or 0,
        ),
        reverse=True,
    )


def plan(
    order: Sequence[str],
    identities: Sequence[ChannelIdentity],
    phone: str | None,
    zns_on: bool,
    tried: set[tuple[str, str]],
    now: datetime,
) -> tuple[Step | None, list[dict]]:
    """The next step not tried yet, in the policy's order, and the log of the steps skipped on
    the way (a blocked chat, a Zalo OA window that closed: never tried blindly). None: only the
    commune is left. `tried` (channel, address) pairs grows with what this call looked at."""

    ordered = ordered_identities(identities)
    skipped: list[dict] = []
    for name in order:
        if name == "commune":
            break
        if name == "zns":
            if not zns_on or (ZNS, phone or "") in tried:
                continue
            if not phone:
                skipped.append(log_entry(name, ZNS, "", "skipped", "no_channel", now))
                tried.add((ZNS, ""))
                continue
            return Step(name, ZNS, phone), skipped
        candidates = ordered[:1] if name == "last_used" else ordered[1:]
        for identity in candidates:
            where = (identity.channel, identity.external_id)
            if where in tried:
                continue
            tried.add(where)
            if identity.blocked:
                skipped.append(log_entry(name, *where, "skipped", "blocked", now))
            elif not within_window(identity, now):
                skipped.append(log_entry(name, *where, "skipped", "outside_window", now))
            else:
                return Step(name, *where), skipped
    return None, skipped


def tried_in(chain: ReachChain) -> set[tuple[str, str]]:
    return {(entry["channel"], entry["address"]) for entry in chain.steps or []}


async def identities_of(
    session: AsyncSession, user_ids: Iterable[int]
) -> dict[int, list[ChannelIdentity]]:
    wanted = sorted(set(user_ids))
    found: dict[int, list[ChannelIdentity]] = {user_id: [] for user_id in wanted}
    for start in range(0, len(wanted), 500):
        rows = await session.exec(
            select(ChannelIdentity).where(
                col(ChannelIdentity.user_id).in_(wanted[start : start + 500])
            )
        )
        for identity in rows.all():
            found[identity.user_id].append(identity)
    return found


def zns_payload(kind: str, fields: dict) -> dict:
    """The outbox payload of a ZNS step: the kind picks the template, the fields fill it."""
    return {"zns": {"kind": kind, "fields": fields}}


# --- what the sender and the webhooks learn ------------------------------------------------


async def _current_chain(session: AsyncSession, row: Outbox) -> ReachChain | None:
    if not row.chain_key:
        return None
    chain = await session.get(ReachChain, row.chain_key)
    if chain is None or chain.outbox_key != row.idempotency_key:
        return None  # an earlier step, already given up on
    return chain


async def mark_reminders(
    session: AsyncSession, pairs: Sequence[Sequence], outcome: str, only_from: str = "queued"
) -> None:
    """Reminders (occurrence id, stage) still `only_from` become `outcome`."""
    pairs = [tuple(pair) for pair in pairs]
    for start in range(0, len(pairs), 500):
        await session.exec(
            update(Reminder)
            .where(
                tuple_(col(Reminder.occurrence_id), col(Reminder.stage)).in_(
                    pairs[start : start + 500]
                ),
                Reminder.outcome == only_from,
            )
            .values(outcome=outcome)
        )


def _log(chain: ReachChain, outcome: str, reason: str, now: datetime) -> None:
    """The current step's entry (the last one tried) takes its new outcome."""
    entries = list(chain.steps or [])
    for index in range(len(entries) - 1, -1, -1):
        if entries[index]["outcome"] != "skipped":
            stamp = to_db(now).isoformat()
            entries[index] = {**entries[index], "outcome": outcome, "reason": reason, "at": stamp}
            break
    chain.steps = entries


async def message_sent(session: AsyncSession, row: Outbox, now: datetime) -> None:
    """The platform accepted the chain's current message: the chain and its reminders are
    sent. On a channel with receipts, the wait for one starts."""
    chain = await _current_chain(session, row)
    if chain is None:
        return
    chain.status = ChainStatus.sent
    chain.reason = ""
    chain.awaiting_since = now if row.channel in RECEIPT_CHANNELS else None
    chain.updated_at = now
    _log(chain, "sent", "", now)
    session.add(chain)
    await mark_reminders(session, chain.reminders or [], "sent")


async def message_failed(session: AsyncSession, row: Outbox, reason: str, now: datetime) -> None:
    """The chain's current message failed for good: the sweep starts the next step."""
    chain = await _current_chain(session, row)
    if chain is None:
        return
    chain.status = ChainStatus.failed
    chain.reason = reason
    chain.awaiting_since = now
    chain.updated_at = now
    _log(chain, "failed", reason, now)
    session.add(chain)


async def record_receipts(
    session: AsyncSession, message_ids: Sequence[str], seen: bool, at: datetime
) -> set[str]:
    """Zalo said these messages arrived (or were seen): their outbox rows and chains say so.
    Returns the ids it found a row for. A receipt never moves a row back (seen stays seen)."""
    ids = [m for m in dict.fromkeys(message_ids) if m]
    if not ids:
        return set()
    rows = (
        await session.exec(
            select(Outbox).where(
                col(Outbox.platform_message_id).in_(ids),
                col(Outbox.channel).in_(RECEIPT_CHANNELS),
            )
        )
    ).all()
    for row in rows:
        if seen and row.status != OutboxStatus.seen:
            row.status = OutboxStatus.seen
            row.seen_at = at
            row.delivered_at = row.delivered_at or at
        elif not seen and row.status == OutboxStatus.sent:
            row.status = OutboxStatus.delivered
            row.delivered_at = at
        else:
            continue
        session.add(row)
        chain = await _current_chain(session, row)
        if chain is not None and chain.status != ChainStatus.seen:
            chain.status = ChainStatus.seen if seen else ChainStatus.delivered
            chain.awaiting_since = None
            chain.updated_at = at
            _log(chain, chain.status, "", at)
            session.add(chain)
    return {row.platform_message_id for row in rows}


# --- who cannot be reached -----------------------------------------------------------------


@dataclass(frozen=True)
class Unreachable:
    user_id: int
    name: str
    unit: str
    phone: str | None
    reason: str
    at: datetime


async def unreachable_by_commune(
    session: AsyncSession, since: datetime | None = None
) -> dict[int, list[Unreachable]]:
    """People whose last message could not reach them (the chain ended with the commune told),
    with the reason, by the unit that was told (the commune above a village; for a commune's
    own officers, the unit above). For the weekly coverage report and the People page."""
    query = select(ReachChain, User, Unit).where(
        ReachChain.status == ChainStatus.flagged,
        ReachChain.user_id == User.id,
        User.unit_id == Unit.id,
    )
    if since is not None:
        query = query.where(col(ReachChain.updated_at) >= to_db(since))
    latest: dict[int, tuple[ReachChain, User, Unit]] = {}
    for chain, user, unit in (await session.exec(query)).all():
        known = latest.get(user.id)
        if known is None or to_db(known[0].updated_at) < to_db(chain.updated_at):
            latest[user.id] = (chain, user, unit)
    by_unit: dict[int, list[Unreachable]] = {}
    for chain, user, unit in latest.values():
        told = unit.parent_id or unit.id  # as scheduler.escalation.level_above, one level up
        by_unit.setdefault(told, []).append(
            Unreachable(
                user.id, user.name, unit.name, phone_for(user), chain.reason, chain.updated_at
            )
        )
    for people in by_unit.values():
        people.sort(key=lambda p: (p.unit, p.name))
    return by_unit


__all__ = [
    "NOT_DELIVERED",
    "RECEIPT_CHANNELS",
    "ZNS",
    "Step",
    "Unreachable",
    "identities_of",
    "message_failed",
    "message_sent",
    "normalise_phone",
    "phone_for",
    "plan",
    "record_receipts",
    "unreachable_by_commune",
]
