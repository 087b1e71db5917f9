"""The commune's own copy of the weekly coverage report: on the digest day (Mondays), at the
digest time, each commune committee learns who in its villages could not be reached last week
and why, and which of its roles nobody holds, each with what to do next (invite, call, ask for
a phone number). In the commune's own words (phường ≠ xã), its units only, a message of its own
(never inside the overdue lists), sent once per person and week: the outbox key names both, so
a second run adds nothing. Nothing is sent to a commune where everyone can be reached.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.capabilities import within_window
from bot.core.context import AppContext
from bot.core.i18n import Translator, format_number, translator
from bot.core.messages import Outgoing
from bot.core.models import ChannelIdentity, Unit, User
from bot.core.services.outbox import enqueue, preferred_identity
from bot.core.services.reach import Unreachable, identities_of, phone_for, unreachable_by_commune
from bot.core.timeutil import to_db
from bot.core.unit_words import place, titled
from bot.core.vietnamese_order import sort_key
from scheduler.coverage import Gap, role_gaps
from scheduler.policy import Policies
from scheduler.reach import reason_in_words

LISTED = 5  # people, and roles, per message; the dashboard's People page has the rest


def _next_step(_: Translator, person: Unreachable) -> str:
    """What the commune can do about one person it could not reach."""
    if person.reason == "outside_window":
        step = _("ask them to send any message to the Zalo OA, then Zalo lets us write again")
    elif person.reason == "blocked":
        step = _("ask them to open the chat with the bot again")
    elif person.reason == "no_channel":
        step = _("invite them again (/moi)")
    else:
        step = _("call them")
    if person.phone:
        return step + " — " + _("phone {phone}").format(phone="0" + person.phone[2:])
    return step + " — " + _("no phone number on record: ask them for one")


def _gap_step(_: Translator, gap: Gap, unit: Unit) -> str:
    if unit.level == "village":
        return _("invite them (/moi)")
    return _("ask the administrator for an invitation code for this role")


def commune_coverage_text(
    app: AppContext,
    locale: str,
    commune: Unit,
    people: list[Unreachable],
    gaps: list[Gap],
    units: dict[int, Unit],
) -> str:
    _ = translator(locale)
    lines = [_("📵 Weekly coverage — {unit}").format(unit=place(commune, locale))]
    if people:
        lines.append(
            _("Could not be reached last week: {count}").format(
                count=format_number(len(people), locale)
            )
        )
        for person in people[:LISTED]:
            why = reason_in_words(_, person.reason)
            lines.append(f"• {person.name or '—'} ({person.unit}): {why}; {_next_step(_, person)}")
        if len(people) > LISTED:
            lines.append(
                _("… and {count} more.").format(count=format_number(len(people) - LISTED, locale))
            )
    if gaps:
        lines.append(
            _("Roles nobody is registered for: {count}").format(
                count=format_number(len(gaps), locale)
            )
        )
        for gap in gaps[:LISTED]:
            unit = units[gap.unit_id]
            role = titled(app.framework, gap.role, unit, locale)
            line = "• " + _("{role}: nobody registered; {step}").format(
                role=role, step=_gap_step(_, gap, unit)
            )
            if gap.covered_by:
                line += " " + _("(until then, {role} is reminded)").format(
                    role=titled(app.framework, gap.covered_by, unit, locale)
                )
            lines.append(line)
        if len(gaps) > LISTED:
            lines.append(
                _("… and {count} more.").format(count=format_number(len(gaps) - LISTED, locale))
            )
    lines.append(_("The whole list: /web, the People page."))
    return "\n".join(lines)


async def communes_of_units(session: AsyncSession) -> tuple[dict[int, Unit], dict[int, Unit]]:
    """Every unit by id, and for each unit at or below a commune, that commune."""
    units = {unit.id: unit for unit in (await session.exec(select(Unit))).all()}
    found: dict[int, Unit] = {}
    for unit in units.values():
        walk: Unit | None = unit
        while walk is not None and walk.level != "commune":
            walk = units.get(walk.parent_id) if walk.parent_id is not None else None
        if walk is not None:
            found[unit.id] = walk
    return units, found


def _state_reason(identities: list[ChannelIdentity], now: datetime) -> str | None:
    """Why no chat can reach this person now, from the chats themselves (a village head who
    left the only chat is escalated as "nobody reachable" and has no reach chain): None when
    one can."""
    if not identities:
        return "no_channel"
    open_chats = [i for i in identities if not i.blocked]
    if not open_chats:
        return "blocked"
    if not any(within_window(i, now) for i in open_chats):
        return "outside_window"
    return None


async def cannot_reach(
    session: AsyncSession, commune_of: dict[int, Unit], units: dict[int, Unit], now: datetime
) -> dict[int, list[Unreachable]]:
    """Per commune id: its villages' people no message reached last week (the reach chains),
    and those no chat can reach now (left the chat, Zalo's window closed, no chat at all)."""
    found = await unreachable_by_commune(session, now - timedelta(days=7))
    seen = {person.user_id for people in found.values() for person in people}
    village_ids = [uid for uid, unit in units.items() if unit.level == "village"]
    people = [
        user
        for user in (
            await session.exec(
                select(User).where(col(User.active).is_(True), col(User.unit_id).in_(village_ids))
            )
        ).all()
        if user.id not in seen and user.unit_id in commune_of
    ]
    identities = await identities_of(session, [user.id for user in people])
    for user in people:
        reason = _state_reason(identities.get(user.id, []), now)
        if reason is None:
            continue
        commune = commune_of[user.unit_id]
        found.setdefault(commune.id, []).append(
            Unreachable(
                user.id, user.name, units[user.unit_id].name, phone_for(user), reason, to_db(now)
            )
        )
    for listed in found.values():
        listed.sort(key=lambda p: (sort_key(p.unit), sort_key(p.name or "")))
    return found


async def send_commune_coverage(
    session: AsyncSession, app: AppContext, policies: Policies, now: datetime
) -> int:
    """Queue this week's copy for each commune committee that has something to act on;
    returns how many were queued (0 on other days, and on a second run)."""
    today = policies.local_day(now)
    if today.weekday() != policies.escalation.digests.weekly_weekday:
        return 0
    roles = policies.escalation.notify_roles.get("commune", [])
    readers = (
        await session.exec(
            select(User, Unit)
            .join(Unit, Unit.id == User.unit_id)
            .where(Unit.level == "commune", col(User.active).is_(True))
            .order_by(col(User.id))
        )
    ).all()
    readers = [(user, unit) for user, unit in readers if "*" in roles or user.role in roles]
    if not readers:
        return 0
    units, commune_of = await communes_of_units(session)
    people = await cannot_reach(session, commune_of, units, now)
    gaps: dict[int, list[Gap]] = {}
    for gap in await role_gaps(session, app.framework):
        commune = commune_of.get(gap.unit_id)
        if commune is not None:
            gaps.setdefault(commune.id, []).append(gap)
    queued = 0
    for user, commune in readers:
        mine_people = people.get(commune.id, [])
        mine_gaps = sorted(
            gaps.get(commune.id, []),
            key=lambda gap: (gap.unit_id != commune.id, sort_key(gap.unit_name), gap.role),
        )
        if not mine_people and not mine_gaps:
            continue
        identity = await preferred_identity(session, user.id)
        if identity is None:
            continue
        text = commune_coverage_text(app, user.locale, commune, mine_people, mine_gaps, units)
        key = f"coverage:{user.id}:{today:%Y%m%d}"
        row = await enqueue(
            session, identity.channel, identity.external_id, Outgoing(text=text), key, user.id
        )
        queued += row is not None
    return queued


__all__ = ["cannot_reach", "commune_coverage_text", "communes_of_units", "send_commune_coverage"]
