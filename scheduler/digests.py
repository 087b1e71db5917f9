"""Digests for the supervising level, at 07:30 local:

- daily, to every district user, when something in the district was escalated since their last
  digest; weekly (Mondays) always. Both: per commune done / open / overdue, the overdue items
  oldest first (village, task, days late), follow-ups recorded since the last digest, a button
  "Đã đôn đốc" per commune with overdue items (`fu:<commune id>`, handlers/followup.py), a chart
  of the completion rate per commune (PNG) and every overdue and open item (XLSX);
- monthly (on `monthly_day`), to the holders of `monthly_roles` (Sở Nội vụ): last month by PAPI
  dimension.

In the two-tier structure the unit named by `district_substitute` receives the district digests
for every commune. Each (person, kind, day) is sent once: the outbox key says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.i18n import Translator, format_day, format_short_day, mark, translator
from bot.core.messages import Button, Outgoing
from bot.core.models import (
    CLOSED_STATUSES,
    AuditLog,
    Escalation,
    Occurrence,
    OccurrenceStatus,
    Outbox,
    TaskDefinition,
    Unit,
    User,
)
from bot.core.services.occurrences import LATE_STATUSES, RECENT_WINDOW, Tally, rollup_tallies
from bot.core.services.outbox import enqueue, preferred_identity
from bot.core.timeutil import from_db, to_db
from scheduler.charts import completion_chart
from scheduler.policy import Policies, load_policies
from scheduler.workbook import Sheet, write_workbook

FOLLOWED_UP = "commune.followed_up"
DIGEST_SENT = "digest.sent"
DAILY, WEEKLY, MONTHLY = "daily", "weekly", "monthly"
STEP_LABELS = {
    "commune": mark("commune told"),
    "supervisor": mark("escalated to the supervising unit"),
    "unreachable": mark("cannot be reached"),
}


@dataclass
class DigestReport:
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    files: list[str] = field(default_factory=list)
    reason: str = ""  # why nothing was due, when nothing was

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        text = f"digests: {self.daily} daily, {self.weekly} weekly, {self.monthly} monthly"
        return text + (f" ({self.reason})" if self.reason else "")


@dataclass
class Scope:
    """A district (or its two-tier substitute), the communes it supervises and its people."""

    unit: Unit
    communes: list[Unit]
    unit_ids: list[int]
    commune_of: dict[int, Unit]
    recipients: list[User]


@dataclass
class Line:
    occurrence: Occurrence
    task: TaskDefinition
    unit: Unit
    commune: Unit | None


# --- who supervises what --------------------------------------------------------------------


async def _children(session: AsyncSession, parent_ids: list[int]) -> list[Unit]:
    if not parent_ids:
        return []
    rows = await session.exec(
        select(Unit).where(col(Unit.parent_id).in_(parent_ids)).order_by(col(Unit.name))
    )
    return list(rows.all())


async def supervised_communes(session: AsyncSession, app: AppContext, unit: Unit) -> list[Unit]:
    """The communes a district (or the two-tier substitute) follows up."""
    if app.settings.structure == "two_tier" and unit.code == app.settings.district_substitute:
        rows = await session.exec(
            select(Unit).where(Unit.level == "commune").order_by(col(Unit.name))
        )
        return list(rows.all())
    if unit.level != "district":
        return []
    return [child for child in await _children(session, [unit.id]) if child.level == "commune"]


async def _scope(
    session: AsyncSession, app: AppContext, policies: Policies, unit: Unit
) -> Scope | None:
    roles = policies.escalation.notify_roles.get(unit.level, [])
    users = (
        await session.exec(
            select(User)
            .where(User.unit_id == unit.id, col(User.active).is_(True))
            .order_by(col(User.id))
        )
    ).all()
    recipients = [user for user in users if "*" in roles or user.role in roles]
    if not recipients:
        return None
    communes = await supervised_communes(session, app, unit)
    commune_of: dict[int, Unit] = {}
    unit_ids: list[int] = [] if unit.level != "district" else [unit.id]
    for commune in communes:
        frontier, ids = [commune.id], [commune.id]
        while frontier:
            below = await _children(session, frontier)
            frontier = [child.id for child in below]
            ids += frontier
        for unit_id in ids:
            commune_of[unit_id] = commune
        unit_ids += ids
    return Scope(unit, communes, unit_ids, commune_of, recipients)


async def scopes(session: AsyncSession, app: AppContext, policies: Policies) -> list[Scope]:
    settings = app.settings
    if settings.structure == "two_tier":
        substitute = (
            await session.exec(select(Unit).where(Unit.code == settings.district_substitute))
        ).first()
        units = [substitute] if substitute is not None else []
    else:
        units = list(
            (
                await session.exec(
                    select(Unit).where(Unit.level == "district").order_by(col(Unit.name))
                )
            ).all()
        )
    found = []
    for unit in units:
        scope = await _scope(session, app, policies, unit)
        if scope is not None:
            found.append(scope)
    return found


# --- what happened --------------------------------------------------------------------------


async def _items(
    session: AsyncSession, scope: Scope, statuses: tuple, now_db: datetime
) -> list[Line]:
    if not scope.unit_ids:
        return []
    rows = await session.exec(
        select(Occurrence, TaskDefinition, Unit)
        .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
        .join(Unit, Unit.id == Occurrence.unit_id)
        .where(
            col(Occurrence.unit_id).in_(scope.unit_ids),
            col(Occurrence.status).in_(statuses),
            col(Occurrence.window_start) <= now_db,
        )
        .order_by(col(Occurrence.due_at), col(Unit.name), col(Occurrence.id))
    )
    return [Line(occ, task, unit, scope.commune_of.get(unit.id)) for occ, task, unit in rows.all()]


async def _new_escalations(
    session: AsyncSession, scope: Scope, since: datetime, now_db: datetime
) -> list[tuple[Escalation, Line]]:
    if not scope.unit_ids:
        return []
    rows = await session.exec(
        select(Escalation, Occurrence, TaskDefinition, Unit)
        .join(Occurrence, Occurrence.id == Escalation.occurrence_id)
        .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
        .join(Unit, Unit.id == Occurrence.unit_id)
        .where(
            col(Occurrence.unit_id).in_(scope.unit_ids),
            col(Escalation.created_at) > since,
            col(Escalation.created_at) <= now_db,
        )
        .order_by(col(Escalation.created_at), col(Escalation.id))
    )
    return [
        (esc, Line(occ, task, unit, scope.commune_of.get(unit.id)))
        for esc, occ, task, unit in rows.all()
    ]


async def _follow_ups(
    session: AsyncSession, scope: Scope, since: datetime, now_db: datetime
) -> list[tuple[AuditLog, Unit, User | None]]:
    by_subject = {f"unit:{commune.id}": commune for commune in scope.communes}
    if not by_subject:
        return []
    rows = await session.exec(
        select(AuditLog)
        .where(
            AuditLog.action == FOLLOWED_UP,
            col(AuditLog.subject).in_(list(by_subject)),
            col(AuditLog.at) > since,
            col(AuditLog.at) <= now_db,
        )
        .order_by(col(AuditLog.at))
    )
    found = []
    for entry in rows.all():
        actor = await session.get(User, entry.actor_user_id) if entry.actor_user_id else None
        found.append((entry, by_subject[entry.subject], actor))
    return found


async def last_digest_at(session: AsyncSession, user: User) -> datetime | None:
    result = await session.exec(
        select(func.max(AuditLog.at)).where(
            AuditLog.action == DIGEST_SENT, AuditLog.subject == f"user:{user.id}"
        )
    )
    return result.one()


async def _already_sent(session: AsyncSession, key: str) -> bool:
    found = await session.exec(select(Outbox.id).where(Outbox.idempotency_key == key))
    return found.first() is not None


# --- writing it down ------------------------------------------------------------------------


def _place(line: Line) -> str:
    if line.commune is not None and line.commune.id != line.unit.id:
        return f"{line.unit.name} ({line.commune.name})"
    return line.unit.name


def _days_late(policies: Policies, line: Line, today: date) -> int:
    return max((today - policies.local_day(from_db(line.occurrence.due_at))).days, 0)


def _status_label(_: Translator, status: str) -> str:
    labels = {
        OccurrenceStatus.open: _("open"),
        OccurrenceStatus.overdue: _("overdue"),
        OccurrenceStatus.escalated: _("escalated"),
    }
    return labels.get(status, status)


def _sorted_tallies(tallies: list[Tally]) -> list[Tally]:
    return sorted(tallies, key=lambda t: (-t.overdue, t.rate, t.unit.name))


@dataclass
class DistrictDigest:
    """What one district's digest shows today (the same for each of its people)."""

    scope: Scope
    tallies: list[Tally]
    overdue: list[Line]
    open: list[Line]
    chart_path: str = ""
    workbook_path: str = ""


async def build_district_digest(
    session: AsyncSession,
    app: AppContext,
    policies: Policies,
    scope: Scope,
    kind: str,
    now: datetime,
    locale: str,
) -> DistrictDigest:
    now_db = to_db(now)
    tallies = _sorted_tallies(
        await rollup_tallies(session, scope.communes, to_db(now - RECENT_WINDOW), now_db)
    )
    overdue = await _items(session, scope, LATE_STATUSES, now_db)
    still_open = await _items(session, scope, (OccurrenceStatus.open,), now_db)
    digest = DistrictDigest(scope, tallies, overdue, still_open)
    today = policies.local_day(now)
    folder = Path("digests") / f"{today:%Y-%m-%d}"
    _ = translator(locale)
    chart = folder / f"{kind}-{scope.unit.code}-{locale}.png"
    rows = [(tally.unit.name, tally.rate) for tally in tallies]
    title = _("Completion rate per commune — {unit}, {day}").format(
        unit=scope.unit.name, day=format_short_day(today)
    )
    data_dir = Path(app.settings.data_dir)
    await asyncio.to_thread(completion_chart, rows, title, data_dir / chart)
    digest.chart_path = chart.as_posix()
    book = folder / f"{kind}-{scope.unit.code}-{locale}.xlsx"
    headers = [
        _("Commune"),
        _("Unit"),
        _("Task"),
        _("Dimension"),
        _("Period"),
        _("Due"),
        _("Status"),
        _("Days late"),
    ]

    def sheet_rows(lines: list[Line]) -> list[list]:
        result = []
        for line in lines:
            dimension = app.framework.dimensions.get(line.task.dimension)
            result.append(
                [
                    line.commune.name if line.commune else "",
                    line.unit.name,
                    line.task.title,
                    dimension.short if dimension else line.task.dimension,
                    line.occurrence.period,
                    policies.local_day(from_db(line.occurrence.due_at)),
                    _status_label(_, line.occurrence.status),
                    _days_late(policies, line, today),
                ]
            )
        return result

    summary = Sheet(
        _("Communes"),
        [_("Commune"), _("Done"), _("Open"), _("Overdue"), _("Completion %")],
        [[t.unit.name, t.done, t.open, t.overdue, round(t.rate * 100)] for t in tallies],
    )
    await asyncio.to_thread(
        write_workbook,
        data_dir / book,
        [
            Sheet(_("Overdue"), headers, sheet_rows(overdue)),
            Sheet(_("Open"), headers, sheet_rows(still_open)),
            summary,
        ],
    )
    digest.workbook_path = book.as_posix()
    return digest


def district_text(
    policies: Policies,
    digest: DistrictDigest,
    kind: str,
    locale: str,
    today: date,
    new: list[tuple[Escalation, Line]],
    follow_ups: list[tuple[AuditLog, Unit, User | None]],
) -> str:
    _ = translator(locale)
    limit = policies.escalation.digests.max_listed
    title = _("📊 Weekly summary") if kind == WEEKLY else _("📊 Daily digest")
    lines = [f"{title} — {digest.scope.unit.name}", format_day(today, locale), ""]
    if new:
        lines.append(_("🔺 Escalated since the last digest: {count}").format(count=len(new)))
        for escalation, line in new[:limit]:
            step = STEP_LABELS.get(escalation.step)
            lines.append(
                f"• {_place(line)}: {line.task.title} ({_(step) if step else escalation.step})"
            )
        lines.append("")
    lines.append(_("Communes (done / open / overdue):"))
    for tally in digest.tallies:
        mark = "⚠️ " if tally.overdue else "• "
        lines.append(f"{mark}{tally.unit.name}: {tally.done} / {tally.open} / {tally.overdue}")
    lines.append("")
    if digest.overdue:
        lines.append(_("Overdue, oldest first:"))
        for number, line in enumerate(digest.overdue[:limit], start=1):
            late = _days_late(policies, line, today)
            lines.append(
                f"{number}. {_place(line)} — {line.task.title} — "
                + _("{days} day(s) late").format(days=late)
            )
        if len(digest.overdue) > limit:
            lines.append(
                _("… and {count} more in the spreadsheet.").format(
                    count=len(digest.overdue) - limit
                )
            )
    else:
        lines.append(_("Nothing is overdue. Well done!"))
    if follow_ups:
        lines.append("")
        lines.append(_("✔️ Followed up since the last digest:"))
        for entry, commune, actor in follow_ups:
            when = format_short_day(policies.local_day(from_db(entry.at)))
            who = actor.name if actor and actor.name else "—"
            lines.append(f"• {commune.name} ({who}, {when})")
    return "\n".join(lines).strip()


def follow_up_buttons(locale: str, digest: DistrictDigest) -> list[list[Button]]:
    _ = translator(locale)
    late_communes = [tally.unit for tally in digest.tallies if tally.overdue]
    return [
        [Button(_("✔️ Followed up: {commune}").format(commune=c.name)[:60], f"fu:{c.id}")]
        for c in late_communes[:20]
    ]


def _record_sent(session: AsyncSession, user: User, kind: str, now: datetime) -> None:
    """Remember when this person last had a digest: the next one reports what came after."""
    session.add(
        AuditLog(
            at=to_db(now),
            action=DIGEST_SENT,
            subject=f"user:{user.id}",
            detail={"kind": kind, "now": now.isoformat()},
        )
    )


async def _send(
    session: AsyncSession, user: User, key: str, message: Outgoing, now: datetime
) -> bool:
    identity = await preferred_identity(session, user.id)
    if identity is None:
        return False
    row = await enqueue(session, identity.channel, identity.external_id, message, key, user.id)
    if row is not None:
        row.created_at = to_db(now)
    return row is not None


async def send_district_digests(
    session: AsyncSession, app: AppContext, policies: Policies, now: datetime, report: DigestReport
) -> None:
    today = policies.local_day(now)
    kind = WEEKLY if today.weekday() == policies.escalation.digests.weekly_weekday else DAILY
    now_db = to_db(now)
    for scope in await scopes(session, app, policies):
        built: dict[str, DistrictDigest] = {}
        for user in scope.recipients:
            base = f"digest:{user.id}:{kind}:{today:%Y%m%d}"
            if await _already_sent(session, f"{base}:text"):
                continue
            if await preferred_identity(session, user.id) is None:
                continue
            last = await last_digest_at(session, user)
            default_span = timedelta(days=7 if kind == WEEKLY else 1)
            since = max(last or now_db - default_span, now_db - timedelta(days=8))
            new = await _new_escalations(session, scope, since, now_db)
            if kind == DAILY and not new:
                continue
            if user.locale not in built:
                built[user.locale] = await build_district_digest(
                    session, app, policies, scope, kind, now, user.locale
                )
                report.files += [built[user.locale].chart_path, built[user.locale].workbook_path]
            digest = built[user.locale]
            follow_ups = await _follow_ups(session, scope, since, now_db)
            _ = translator(user.locale)
            text = district_text(policies, digest, kind, user.locale, today, new, follow_ups)
            await _send(
                session,
                user,
                f"{base}:text",
                Outgoing(text=text, buttons=follow_up_buttons(user.locale, digest)),
                now,
            )
            await _send(
                session,
                user,
                f"{base}:chart",
                Outgoing(text=_("Completion rate per commune"), photo_path=digest.chart_path),
                now,
            )
            await _send(
                session,
                user,
                f"{base}:xlsx",
                Outgoing(
                    text=_("Every overdue and open item"),
                    document_path=digest.workbook_path,
                    document_name=f"papi-{scope.unit.code}-{today:%Y%m%d}.xlsx",
                ),
                now,
            )
            _record_sent(session, user, kind, now)
            if kind == WEEKLY:
                report.weekly += 1
            else:
                report.daily += 1


# --- the monthly province summary -----------------------------------------------------------


def _previous_month(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    start = (first - timedelta(days=1)).replace(day=1)
    return start, first


async def send_monthly_summary(
    session: AsyncSession, app: AppContext, policies: Policies, now: datetime, report: DigestReport
) -> None:
    settings = policies.escalation.digests
    today = policies.local_day(now)
    if today.day != settings.monthly_day or not settings.monthly_roles:
        return
    users = (
        await session.exec(
            select(User)
            .where(col(User.role).in_(settings.monthly_roles), col(User.active).is_(True))
            .order_by(col(User.id))
        )
    ).all()
    if not users:
        return
    start, end = _previous_month(today)
    low = to_db(datetime.combine(start, datetime.min.time(), tzinfo=policies.tz))
    high = to_db(datetime.combine(end, datetime.min.time(), tzinfo=policies.tz))
    rows = await session.exec(
        select(TaskDefinition.dimension, Occurrence.status, func.count())
        .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
        .where(col(Occurrence.due_at) >= low, col(Occurrence.due_at) < high)
        .group_by(TaskDefinition.dimension, Occurrence.status)
    )
    found = rows.all()
    if not found:
        return  # nothing was due that month: no summary of nothing
    counts: dict[str, list[int]] = {key: [0, 0, 0] for key in app.framework.dimensions}
    for dimension, status, count in found:
        slot = counts.setdefault(dimension, [0, 0, 0])
        if status in CLOSED_STATUSES:
            slot[0] += count
        elif status in LATE_STATUSES:
            slot[2] += count
        else:
            slot[1] += count
    ordered = sorted(
        counts.items(),
        key=lambda kv: (
            app.framework.dimensions[kv[0]].number if kv[0] in app.framework.dimensions else 99
        ),
    )
    for user in users:
        base = f"digest:{user.id}:{MONTHLY}:{today:%Y%m%d}"
        if await _already_sent(session, f"{base}:text"):
            continue
        locale = user.locale
        _ = translator(locale)
        month = f"{start:%m/%Y}"
        lines = [
            _("📊 PAPI monthly summary, {month}: done / open / overdue by dimension").format(
                month=month
            ),
            "",
        ]
        chart_rows = []
        sheet_rows = []
        for key, (done, still_open, late) in ordered:
            dimension = app.framework.dimensions.get(key)
            name = (dimension.short if locale == "vi" else dimension.short_en) if dimension else key
            number = dimension.number if dimension else "-"
            total = done + still_open + late
            rate = done / total if total else 0.0
            lines.append(
                f"{number}. {name}: {done} / {still_open} / {late}"
                + (f" ({rate:.0%})" if total else "")
            )
            chart_rows.append((f"{number}. {name}", rate))
            sheet_rows.append(
                [
                    number,
                    dimension.name if dimension else key,
                    done,
                    still_open,
                    late,
                    round(rate * 100),
                ]
            )
        folder = Path("digests") / f"{today:%Y-%m-%d}"
        chart = folder / f"monthly-{locale}.png"
        book = folder / f"monthly-{locale}.xlsx"
        data_dir = Path(app.settings.data_dir)
        await asyncio.to_thread(
            completion_chart,
            chart_rows,
            _("Completion rate by PAPI dimension, {month}").format(month=month),
            data_dir / chart,
        )
        await asyncio.to_thread(
            write_workbook,
            data_dir / book,
            [
                Sheet(
                    _("Dimensions"),
                    [
                        _("No."),
                        _("Dimension"),
                        _("Done"),
                        _("Open"),
                        _("Overdue"),
                        _("Completion %"),
                    ],
                    sheet_rows,
                )
            ],
        )
        sent = await _send(session, user, f"{base}:text", Outgoing(text="\n".join(lines)), now)
        if not sent:
            continue
        await _send(session, user, f"{base}:chart", Outgoing(photo_path=chart.as_posix()), now)
        await _send(
            session,
            user,
            f"{base}:xlsx",
            Outgoing(document_path=book.as_posix(), document_name=f"papi-{start:%Y-%m}.xlsx"),
            now,
        )
        _record_sent(session, user, MONTHLY, now)
        report.monthly += 1


async def run_digests(db: Database, app: AppContext, now: datetime) -> DigestReport:
    """Send what is due today at or after the digest time; a second run sends nothing new."""
    policies = load_policies(app.settings)
    report = DigestReport()
    local = now.astimezone(policies.tz)
    if local.time() < policies.escalation.digests.at:
        report.reason = "before the digest time"
        return report
    if policies.reminders.is_quiet(now, policies.tz):
        report.reason = "quiet hours"
        return report
    async with db.session() as session:
        await send_district_digests(session, app, policies, now, report)
        await send_monthly_summary(session, app, policies, now, report)
        await session.commit()
    return report


__all__ = [
    "DIGEST_SENT",
    "FOLLOWED_UP",
    "DigestReport",
    "run_digests",
    "scopes",
    "supervised_communes",
]
