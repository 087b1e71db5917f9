"""The minute sweep's follow-up of reach chains (bot/core/services/reach.py): a step that failed, or
was accepted by a channel with receipts but not delivered within the policy's wait, gives way to
the person's next step; when none is left, the commune is told, by name, with the number to
call ("📵 Không liên lạc được …"). Every step, tried or skipped, is recorded on the chain.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.i18n import mark, translator
from bot.core.messages import Outgoing
from bot.core.models import ChainStatus, Outbox, ReachChain, Unit, User
from bot.core.services.outbox import enqueue, lane_for
from bot.core.services.reach import (
    NOT_DELIVERED,
    ZNS,
    Step,
    identities_of,
    log_entry,
    mark_reminders,
    phone_for,
    plan,
    tried_in,
    zns_payload,
)
from bot.core.services.reach_policy import ReachPolicy, load_reach_policy
from bot.core.sqlutil import for_update_skip_locked
from bot.core.timeutil import to_db
from scheduler.escalation import Directory, level_above
from scheduler.policy import Policies

log = logging.getLogger(__name__)

FOLLOW_UP_LIMIT = 2000  # chains advanced per sweep; the rest wait a minute

REASON_TEXT = {
    "outside_window": mark("has not written to the Zalo OA lately, so Zalo allows no message"),
    "blocked": mark("has blocked the chat or unfollowed"),
    "no_channel": mark("has no chat linked"),
    "quota": mark("the Zalo message quota is used up"),
    "invalid_phone": mark("the phone number on record is not valid"),
    "platform_error": mark("the platform refused the message"),
    NOT_DELIVERED: mark("the message did not arrive in time"),
}


def reason_in_words(_, reason: str) -> str:  # noqa: ANN001  (a Translator)
    """Why someone cannot be reached, as the coverage reports say it (the code if unknown)."""
    text = REASON_TEXT.get(reason)
    return _(text) if text else reason


@dataclass
class FollowUpReport:
    advanced: int = 0  # chains given their next step
    flagged: int = 0  # chains that ended with the commune told


def zns_on(policy: ReachPolicy, app: AppContext, kind: str) -> bool:
    return bool(app.settings.zalo_oa_app_id) and policy.template(kind) is not None


async def _due_chains(
    session: AsyncSession, policy: ReachPolicy, now: datetime
) -> list[ReachChain]:
    waited = to_db(now - policy.receipt_wait)
    query = (
        select(ReachChain)
        .where(
            or_(
                ReachChain.status == ChainStatus.failed,
                and_(
                    ReachChain.status == ChainStatus.sent,
                    col(ReachChain.awaiting_since) <= waited,
                ),
            )
        )
        .order_by(col(ReachChain.awaiting_since))
        .limit(FOLLOW_UP_LIMIT)
    )
    return list((await session.exec(for_update_skip_locked(session, query))).all())


async def follow_up(
    session: AsyncSession, app: AppContext, policies: Policies, now: datetime
) -> FollowUpReport:
    """Advance every chain whose step failed or was not delivered in time (in this session's
    transaction; the caller commits)."""
    policy = load_reach_policy(app.settings)
    report = FollowUpReport()
    chains = await _due_chains(session, policy, now)
    if not chains:
        return report
    users = {
        user.id: user
        for user in (
            await session.exec(select(User).where(col(User.id).in_({c.user_id for c in chains})))
        ).all()
    }
    identities = await identities_of(session, users)
    directory = Directory(session, app)
    # Officer id → (officer, the chains flagged to them): one message each, however many.
    to_tell: dict[int, tuple[User, list[ReachChain]]] = {}
    for chain in chains:
        user = users[chain.user_id]
        if chain.status == ChainStatus.sent:  # accepted, but no receipt in time
            _note(chain, NOT_DELIVERED, now)
        step, skipped = plan(
            policy.order,
            identities.get(user.id, []),
            phone_for(user),
            zns_on(policy, app, chain.kind),
            tried_in(chain),
            now,
        )
        chain.steps = [*(chain.steps or []), *skipped]
        if step is not None:
            await queue_step(session, chain, step, now)
            report.advanced += 1
        else:
            for officer in await flag(session, policies, directory, chain, user, now):
                to_tell.setdefault(officer.id, (officer, []))[1].append(chain)
            report.flagged += 1
        chain.updated_at = now
        session.add(chain)
    await _tell(session, app, directory, users, to_tell)
    return report


async def _tell(
    session: AsyncSession,
    app: AppContext,
    directory: Directory,
    users: dict[int, User],
    to_tell: dict[int, tuple[User, list[ReachChain]]],
) -> None:
    """One "📵 cannot reach" message per officer, naming everyone flagged to them; each chain
    records the keys of the messages that named its person."""
    for officer, flagged in to_tell.values():
        identity = directory.identity(officer.id)
        if identity is None:
            continue
        keys = sorted(chain.key for chain in flagged)
        key = f"flag:{officer.id}:{hashlib.sha256('|'.join(keys).encode()).hexdigest()[:16]}"
        sections = []
        for chain in sorted(flagged, key=lambda c: (users[c.user_id].name, c.key)):
            user = users[chain.user_id]
            unit = await directory.unit(user.unit_id)
            sections.append(unreachable_notice(app, officer.locale, user, unit, chain).text)
        message = Outgoing(text="\n\n".join(sections))
        await enqueue(
            session, identity.channel, identity.external_id, message, key, user_id=officer.id
        )
        for chain in flagged:
            entries = list(chain.steps)
            told = [*entries[-1].get("notices", []), key]
            entries[-1] = {**entries[-1], "notices": told}
            chain.steps = entries


def _note(chain: ReachChain, reason: str, now: datetime) -> None:
    chain.reason = reason
    entries = list(chain.steps or [])
    if entries and entries[-1]["outcome"] == "sent":
        entries[-1] = {**entries[-1], "outcome": "sent", "reason": reason}
    chain.steps = entries


async def queue_step(session: AsyncSession, chain: ReachChain, step: Step, now: datetime) -> None:
    """Queue the chain's message on `step` and make it the chain's current step."""
    chain.step += 1
    key = f"{chain.key}:{chain.step}"
    if step.channel == ZNS:
        row = Outbox(
            idempotency_key=key,
            user_id=chain.user_id,
            channel=ZNS,
            external_id=step.address,
            payload=zns_payload(chain.kind, chain.template),
            chain_key=chain.key,
            lane=lane_for(key, chain.key),
            created_at=to_db(now),
        )
        if (await session.exec(select(Outbox.id).where(Outbox.idempotency_key == key))).first():
            return
        session.add(row)
    else:
        row = await enqueue(
            session,
            step.channel,
            step.address,
            Outgoing.from_payload(chain.payload),
            key,
            user_id=chain.user_id,
        )
        if row is None:
            return
        row.chain_key = chain.key
        row.lane = lane_for(key, chain.key)
    chain.status = ChainStatus.queued
    chain.channel = step.channel
    chain.outbox_key = key
    chain.awaiting_since = None
    chain.steps = [
        *(chain.steps or []),
        log_entry(step.name, step.channel, step.address, "queued", "", now),
    ]


async def flag(
    session: AsyncSession,
    policies: Policies,
    directory: Directory,
    chain: ReachChain,
    user: User,
    now: datetime,
) -> list[User]:
    """Nothing reached the person: the chain ends, flagged; their reminders that no message
    carried are recorded unreachable. Returns who at the unit above is to be told (by `_tell`:
    who, why, and the number to call)."""
    reason = chain.reason or "no_channel"
    chain.status = ChainStatus.flagged
    chain.reason = reason
    chain.awaiting_since = None
    unit = await directory.unit(user.unit_id)
    target = await level_above(directory, unit) if unit is not None else None
    told = await directory.notified_at(policies, target) if target is not None else []
    chain.steps = [
        *(chain.steps or []),
        log_entry("commune", "", str(target.code if target else ""), "flagged", reason, now),
    ]
    await mark_reminders(session, chain.reminders or [], "unreachable")
    if not told:
        log.warning("nobody to tell that %s (user %s) cannot be reached", user.name, user.id)
    return told


def unreachable_notice(
    app: AppContext, locale: str, user: User, unit: Unit | None, chain: ReachChain
) -> Outgoing:
    _ = translator(locale)
    reason = chain.reason or "no_channel"
    fields = chain.template or {}
    try:
        role = app.framework.role_name(user.role, locale)
    except KeyError:
        role = user.role
    who = user.name or _("(no name)")
    lines = [
        _("📵 Cannot reach {name} ({role}, {unit}): {reason}.").format(
            name=who, role=role, unit=unit.name if unit else "", reason=_(REASON_TEXT[reason])
        )
    ]
    if fields.get("task"):
        lines.append(
            _("Not delivered: {count} task(s) to report, first «{task}», due {due}.").format(
                count=fields.get("count", 1), task=fields["task"], due=fields.get("due", "")
            )
        )
    phone = phone_for(user)
    if phone:
        lines.append(_("Please call them: {phone}.").format(phone="0" + phone[2:]))
    else:
        lines.append(
            _(
                "No phone number on record: please reach them in person and ask them to "
                "open the chat again."
            )
        )
    return Outgoing(text="\n".join(lines))


__all__ = [
    "FollowUpReport",
    "flag",
    "follow_up",
    "queue_step",
    "reason_in_words",
    "unreachable_notice",
]
