"""The weekly digest of a provincial agency (Sở): the misses of the units under it, for the
tasks it supervises ("Cơ quan hướng dẫn, kiểm tra" in the decision).

Escalations of a village's or a commune's task go to its district whoever supervises it (a Sở
supervises through the districts), so without this a Sở would never hear how its tasks went.
On the digest day (Mondays) at the digest time, each agency with a registered person and at
least one overdue item among the tasks it supervises gets a headline like the district's (≤ 15 lines,
≤ 1,200 characters): its totals, then the districts (three-tier) or the communes (two-tier, no
districts) with the most overdue items, and the button to the dashboard, which shows the same
tasks (bot/web/dashboard/scope.py counts by the same rule). The unit standing in for the
districts in the two-tier structure already gets the district digest of every commune: not
this one as well. Sent once per person and week (the outbox key says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.i18n import format_day, format_number, translator
from bot.core.messages import Button, Outgoing
from bot.core.models import Occurrence, Unit, User
from bot.core.services.occurrences import RECENT_WINDOW
from bot.core.services.outbox import enqueue, preferred_identity
from bot.core.services.status import StatusCounts
from bot.core.timeutil import to_db
from bot.core.unit_words import collective
from bot.core.vietnamese_order import sort_key
from scheduler.digest_access import dashboard_button
from scheduler.period_words import recent_period_line
from scheduler.policy import Policies

LISTED = 5  # the units with the most overdue items named in the headline
KIND = "agency-weekly"


@dataclass
class AgencyCounts:
    groups: list[StatusCounts]  # per district (three-tier) or commune (two-tier), worst first
    total: StatusCounts
    group_level: str


async def agency_counts(
    session: AsyncSession, app: AppContext, task_keys: list[str], now: datetime
) -> AgencyCounts:
    """Done / excused / overdue / open of these tasks in the last three months, per district
    (or per commune where there are no districts), everything under each counted."""
    level = "commune" if app.settings.structure == "two_tier" else "district"
    units = {unit.id: unit for unit in (await session.exec(select(Unit))).all()}

    def group_of(unit_id: int) -> Unit | None:
        unit = units.get(unit_id)
        while unit is not None and unit.level != level:
            unit = units.get(unit.parent_id) if unit.parent_id is not None else None
        return unit

    rows = await session.exec(
        select(Occurrence.unit_id, Occurrence.status, func.count())
        .where(
            col(Occurrence.task_key).in_(task_keys),
            col(Occurrence.due_at) >= to_db(now - RECENT_WINDOW),
            col(Occurrence.window_start) <= to_db(now),
        )
        .group_by(Occurrence.unit_id, Occurrence.status)
    )
    by_group: dict[int, StatusCounts] = {}
    total = StatusCounts()
    for unit_id, status, count in rows.all():
        group = group_of(unit_id)
        if group is None:
            continue  # the province's or an agency's own occurrence: not a unit under it
        by_group.setdefault(group.id, StatusCounts(group)).add(status, count)
        total.add(status, count)
    groups = sorted(by_group.values(), key=lambda t: (-t.overdue, t.rate, sort_key(t.unit.name)))
    return AgencyCounts(groups, total, level)


def agency_text(
    policies: Policies, agency: Unit, counts: AgencyCounts, tasks: int, locale: str, today: date
) -> str:
    """The headline: ≤ 15 lines, ≤ 1,200 characters."""
    _ = translator(locale)

    total = counts.total
    lines = [
        f"{_('📊 Weekly summary')} — {agency.name}",
        format_day(today, locale),
        recent_period_line(_, policies, today),
        _("Tasks you supervise: {count}").format(count=format_number(tasks, locale)),
        _("✅ Done {done} · 🟦 Excused {excused} · 🔴 Overdue {overdue}").format(
            done=format_number(total.done, locale),
            excused=format_number(total.excused, locale),
            overdue=format_number(total.overdue, locale),
        ),
    ]
    late = [group for group in counts.groups if group.overdue]  # sent only when some are
    if late:
        words = collective([group.unit for group in late], counts.group_level, locale)
        lines.append(_("🔴 Most overdue, per {units}:").format(units=words))
        for number, group in enumerate(late[:LISTED], start=1):
            lines.append(
                f"{number}. {group.unit.name}: "
                + _("{count} overdue of {total}").format(
                    count=format_number(group.overdue, locale),
                    total=format_number(group.total, locale),
                )
            )
        if len(late) > LISTED:
            lines.append(
                _("… and {count} more with overdue items: see the dashboard.").format(
                    count=format_number(len(late) - LISTED, locale)
                )
            )
    return "\n".join(lines)


async def send_agency_digests(
    session: AsyncSession, app: AppContext, policies: Policies, now: datetime
) -> int:
    """Queue this week's digest for each agency's people; returns how many were queued."""
    today = policies.local_day(now)
    if today.weekday() != policies.escalation.digests.weekly_weekday:
        return 0
    roles = policies.escalation.notify_roles.get("agency", [])
    agencies = (
        await session.exec(select(Unit).where(Unit.level == "agency").order_by(col(Unit.code)))
    ).all()
    queued = 0
    for agency in agencies:
        if app.settings.structure == "two_tier" and agency.code == app.settings.district_substitute:
            continue  # it has the district digest of every commune
        readers = [
            user
            for user in (
                await session.exec(
                    select(User)
                    .where(User.unit_id == agency.id, col(User.active).is_(True))
                    .order_by(col(User.id))
                )
            ).all()
            if "*" in roles or user.role in roles
        ]
        tasks = sorted(app.framework.supervised_by(agency.code))
        if not readers or not tasks:
            continue
        counts = await agency_counts(session, app, tasks, now)
        if not counts.total.overdue:
            continue  # no misses to tell of: the dashboard has the rest
        for user in readers:
            identity = await preferred_identity(session, user.id)
            if identity is None:
                continue
            _ = translator(user.locale)
            text = agency_text(policies, agency, counts, len(tasks), user.locale, today)
            buttons: list[list[Button]] = [[dashboard_button(_)]]
            key = f"digest:{user.id}:{KIND}:{today:%Y%m%d}:text"
            row = await enqueue(
                session,
                identity.channel,
                identity.external_id,
                Outgoing(text=text, buttons=buttons),
                key,
                user.id,
            )
            queued += row is not None
    return queued


__all__ = ["agency_counts", "agency_text", "send_agency_digests"]
