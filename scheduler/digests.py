"""Digests for the supervising level, at 07:30 local:

- daily, to every district user, when something in the district was escalated since their last
  digest; weekly (Mondays) always. Both: per commune done / excused / open / overdue (counted by
  bot.core.services.status.count_statuses, like every other view), the overdue items
  oldest first (village, task, days late), follow-ups recorded since the last digest, a button
  "Đã đôn đốc" per commune with overdue items (`fu:<commune id>`, handlers/followup.py), a chart
  of how each commune's tasks ended (PNG) and every overdue, open and excused item, the
  excused with their reason (XLSX);
- monthly (on `monthly_day`), to the holders of `monthly_roles` (Sở Nội vụ): last month by PAPI
  dimension.

In the two-tier structure the unit named by `district_substitute` receives the district digests
for every commune; without one, the province committee does, for the province's communes. Each (person, kind, day) is sent once: the outbox key says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.audit_actions import FOLLOWED_UP
from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.i18n import (
    Translator,
    format_day,
    format_number,
    format_percent,
    format_short_day,
    translator,
)
from bot.core.messages import Button, Outgoing
from bot.core.models import (
    AuditLog,
    Escalation,
    Occurrence,
    OccurrenceStatus,
    Outbox,
    TaskDefinition,
    Unit,
    User,
)
from bot.core.services.occurrences import LATE_STATUSES, RECENT_WINDOW
from bot.core.services.outbox import enqueue, preferred_identity
from bot.core.services.status import StatusCounts, count_statuses
from bot.core.task_text import task_title
from bot.core.timeutil import from_db, to_db
from bot.core.unit_words import collective, committee, place
from bot.core.vietnamese_order import sort_key
from scheduler.agency_digest import send_agency_digests
from scheduler.charts import status_chart, status_charts
from scheduler.commune_coverage import send_commune_coverage
from scheduler.coverage_report import coverage_of, coverage_text
from scheduler.digest_access import carries, dashboard_button, files_note
from scheduler.item_details import (
    ItemDetails,
    cannot_history,
    display_phone,
    extension_history,
    item_details,
    occurrence_link,
    people_text,
)
from scheduler.period_words import period_in_words, recent_period_line
from scheduler.policy import Policies, load_policies
from scheduler.trend_digest import trend_caption, write_trend
from scheduler.workbook import Sheet, TitleSheet, write_workbook

DIGEST_SENT = "digest.sent"
DAILY, WEEKLY, MONTHLY = "daily", "weekly", "monthly"


@dataclass
class DigestReport:
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    agency: int = 0  # weekly digests of the provincial agencies (scheduler/agency_digest.py)
    coverage: int = 0  # the communes' own coverage reports (scheduler/commune_coverage.py)
    files: list[str] = field(default_factory=list)
    reason: str = ""  # why nothing was due, when nothing was

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        text = f"digests: {self.daily} daily, {self.weekly} weekly, {self.monthly} monthly"
        if self.agency or self.coverage:
            text += f", {self.agency} to agencies, {self.coverage} commune coverage reports"
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
    rows = await session.exec(select(Unit).where(col(Unit.parent_id).in_(parent_ids)))
    return sorted(rows.all(), key=lambda unit: sort_key(unit.name))


async def supervised_communes(session: AsyncSession, app: AppContext, unit: Unit) -> list[Unit]:
    """The communes a district follows up; in the two-tier structure, the substitute's (every
    commune) or the province's (its communes: "UBND cấp huyện" is the province committee)."""
    two_tier = app.settings.structure == "two_tier"
    if two_tier and unit.code == app.settings.district_substitute:
        rows = await session.exec(select(Unit).where(Unit.level == "commune"))
        return sorted(rows.all(), key=lambda unit: sort_key(unit.name))
    if unit.level != "district" and not (two_tier and unit.level == "province"):
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
        # The substitute if one is named, else the province committee (as escalations do).
        substitute = (
            await session.exec(select(Unit).where(Unit.code == settings.district_substitute))
        ).first()
        if substitute is not None:
            units = [substitute]
        else:
            units = list(
                (
                    await session.exec(
                        select(Unit).where(Unit.level == "province").order_by(col(Unit.name))
                    )
                ).all()
            )
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
    lines = [Line(occ, task, unit, scope.commune_of.get(unit.id)) for occ, task, unit in rows.all()]
    # Same due time: Vietnamese order of the unit's name (SQL sorts by code point).
    return sorted(lines, key=lambda line: (line.occurrence.due_at, sort_key(line.unit.name)))


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


def _place(line: Line, locale: str = "vi") -> str:
    if line.commune is not None and line.commune.id != line.unit.id:
        return f"{line.unit.name} ({place(line.commune, locale)})"
    return line.unit.name


def _days_late(policies: Policies, line: Line, today: date) -> int:
    return max((today - policies.local_day(from_db(line.occurrence.due_at))).days, 0)


def _status_label(_: Translator, status: str) -> str:
    labels = {
        OccurrenceStatus.open: _("open"),
        OccurrenceStatus.overdue: _("overdue"),
        OccurrenceStatus.escalated: _("escalated"),
        OccurrenceStatus.excused: _("excused"),
    }
    return labels.get(status, status)


def chart_legend(_: Translator) -> tuple[str, str, str, str]:
    return (_("done"), _("excused"), _("overdue"), _("open"))


def _sorted_tallies(
    tallies: list[StatusCounts], oldest: dict[int, int] | None = None
) -> list[StatusCounts]:
    """Worst first: most overdue, then the oldest overdue item, then the lowest rate. The text,
    the chart and the workbook all keep this order."""
    oldest = oldest or {}
    return sorted(
        tallies,
        key=lambda t: (-t.overdue, -oldest.get(t.unit.id, 0), t.rate, sort_key(t.unit.name)),
    )


def _oldest_days(policies: Policies, lines: list[Line], today: date) -> dict[int, int]:
    """Per commune id: how many days late its oldest overdue item is."""
    oldest: dict[int, int] = {}
    for line in lines:
        if line.commune is not None:
            days = _days_late(policies, line, today)
            oldest[line.commune.id] = max(oldest.get(line.commune.id, 0), days)
    return oldest


def communes_word(scope: Scope, locale: str, capital: bool = False) -> str:
    """ "xã, phường" for the communes this scope holds ("Xã, phường" for a heading)."""
    word = collective(scope.communes, "commune", locale)
    return word[:1].upper() + word[1:] if capital else word


@dataclass
class DistrictDigest:
    """What one district's digest shows today (the same for each of its people)."""

    scope: Scope
    tallies: list[StatusCounts]
    overdue: list[Line]
    open: list[Line]
    excused: list[Line] = field(default_factory=list)
    chart_path: str = ""  # the first (or only) chart
    chart_paths: list[str] = field(default_factory=list)
    workbook_path: str = ""
    trend_path: str = ""  # weekly: the last 8 weeks (scheduler/trend_digest.py); "" none yet


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
    since = to_db(now - RECENT_WINDOW)
    today = policies.local_day(now)
    overdue = await _items(session, scope, LATE_STATUSES, now_db)
    tallies = _sorted_tallies(
        await count_statuses(session, scope.communes, since, now_db, include_below=True),
        _oldest_days(policies, overdue, today),
    )
    still_open = await _items(session, scope, (OccurrenceStatus.open,), now_db)
    excused = [
        line
        for line in await _items(session, scope, (OccurrenceStatus.excused,), now_db)
        if from_db(line.occurrence.due_at) >= since
    ]
    digest = DistrictDigest(scope, tallies, overdue, still_open, excused)
    folder = Path("digests") / f"{today:%Y-%m-%d}"
    _ = translator(locale)
    chart = folder / f"{kind}-{scope.unit.code}-{locale}.png"
    rows = [(tally.unit.name, tally) for tally in tallies]
    title = "\n".join(
        (
            _("Tasks per {communes} — {unit}").format(
                communes=communes_word(scope, locale), unit=place(scope.unit, locale)
            ),
            recent_period_line(_, policies, today),
        )
    )
    data_dir = Path(app.settings.data_dir)
    written = await asyncio.to_thread(
        status_charts, rows, title, chart_legend(_), data_dir / chart, locale
    )
    digest.chart_paths = [path.relative_to(data_dir).as_posix() for path in written]
    digest.chart_path = digest.chart_paths[0]
    if kind == WEEKLY:  # the trend moves once a week: a daily copy would repeat itself
        digest.trend_path = await write_trend(
            session,
            policies,
            scope.unit,
            list(scope.commune_of),
            today,
            data_dir,
            folder / f"{kind}-{scope.unit.code}-trend-{locale}.png",
            locale,
        )
    book = folder / f"{kind}-{scope.unit.code}-{locale}.xlsx"
    done = [
        line
        for line in await _items(session, scope, (OccurrenceStatus.done,), now_db)
        if from_db(line.occurrence.due_at) >= since
    ]
    everything = [(line.occurrence, line.task) for line in overdue + still_open + excused + done]
    details = await item_details(session, app.framework, everything)
    follow_ups = await _follow_ups(session, scope, since, now_db)
    await asyncio.to_thread(
        write_workbook,
        data_dir / book,
        workbook_sheets(app, policies, digest, done, locale, today, details, follow_ups),
        workbook_title(policies, digest, locale, now),
    )
    digest.workbook_path = book.as_posix()
    return digest


def _local(policies: Policies, moment: datetime | None) -> datetime | None:
    return from_db(moment).astimezone(policies.tz) if moment is not None else None


def workbook_title(
    policies: Policies, digest: DistrictDigest, locale: str, now: datetime
) -> TitleSheet:
    _ = translator(locale)
    totals = district_totals(digest)
    return TitleSheet(
        _("Report"),
        committee(digest.scope.unit, locale),
        [
            (
                _("Report"),
                _("PAPI tasks (decision 3012/QĐ-UBND) per {communes}").format(
                    communes=communes_word(digest.scope, locale)
                ),
            ),
            (_("Date of issue"), now.astimezone(policies.tz)),
            (_("Period covered"), recent_period_line(_, policies, policies.local_day(now))),
            (_("Done"), totals["done"]),
            (_("Excused"), totals["excused"]),
            (_("Overdue"), totals["overdue"]),
            (_("Open"), totals["open"]),
            (
                _("How it was made"),
                _(
                    "Drawn from the task records: every task due in the period, with its "
                    "status at the date of issue. Excused tasks were accepted by the level "
                    "above, with the reason given."
                ),
            ),
        ],
    )


def _sheet_name(name: str) -> str:
    """A unit's name as a sheet title: Excel refuses []:*?/\\ and more than 31 characters."""
    return "".join(" " if char in "[]:*?/\\" else char for char in name)[:31]


def workbook_sheets(
    app: AppContext,
    policies: Policies,
    digest: DistrictDigest,
    done: list[Line],
    locale: str,
    today: date,
    details: ItemDetails | None = None,
    follow_ups: list[tuple[AuditLog, Unit, User | None]] | None = None,
) -> list[Sheet]:
    """Overdue, open, excused (with reasons), done, the communes' totals, the follow-ups, then
    one sheet per commune: each item once, its commune and (below the commune) its village
    apart; every item with who is responsible and their phone, its requests for more time and
    to be excused with their decisions, and its dashboard page."""
    _ = translator(locale)
    scope = digest.scope
    details = details or ItemDetails()
    headers = [
        communes_word(scope, locale, capital=True),
        _("Village"),
        _("Task"),
        _("Dimension"),
        _("Period"),
        _("Due"),
        _("Status"),
        _("Days late"),
    ]
    about = [
        _("Responsible"),
        _("Phone"),
        _("More time asked"),
        _("Asked to be excused"),
        _("Details and photos"),
    ]

    def row(line: Line) -> list:
        dimension = app.framework.dimensions.get(line.task.dimension)
        below = line.commune is not None and line.commune.id != line.unit.id
        return [
            line.commune.name if line.commune else line.unit.name,
            line.unit.name if below else "—",
            task_title(line.task, locale),
            dimension.short if dimension else line.task.dimension,
            period_in_words(_, line.occurrence.period),
            _local(policies, line.occurrence.due_at),
            _status_label(_, line.occurrence.status),
            _days_late(policies, line, today),
        ]

    def more(line: Line) -> list:
        occurrence = line.occurrence
        requests = details.requests.get(occurrence.id, [])
        return [
            *people_text(_, details.people.get(occurrence.id, [])),
            extension_history(_, requests, policies.tz),
            cannot_history(_, requests, policies.tz),
            occurrence_link(_, app.settings.public_url, occurrence),
        ]

    def reason(line: Line) -> str:
        """Why it could not be done: the note kept on the item, else the accepted request's."""
        if line.occurrence.note:
            return line.occurrence.note
        accepted = [
            r.note
            for r in details.requests.get(line.occurrence.id, [])
            if r.kind == "cannot" and r.status == "approved"
        ]
        return accepted[-1] if accepted else "—"

    def total(lines: list[Line]) -> list:
        return [_("Total"), len(lines)]

    overdue = Sheet(
        _("Overdue"),
        headers + about,
        [row(line) + more(line) for line in digest.overdue],
        _("Nothing is overdue."),
        total(digest.overdue),
    )
    still_open = Sheet(
        _("Open"),
        headers[:7] + about,
        [row(line)[:7] + more(line) for line in digest.open],
        _("Nothing is open."),
        total(digest.open),
    )
    excused = Sheet(
        _("Excused"),
        [*headers[:6], _("Reason"), *about],
        [row(line)[:6] + [reason(line)] + more(line) for line in digest.excused],
        _("Nothing was excused."),
        total(digest.excused),
    )
    done_sheet = Sheet(
        _("Done"),
        [*headers[:6], _("Done at"), *about],
        [row(line)[:6] + [_local(policies, line.occurrence.done_at)] + more(line) for line in done],
        _("Nothing was done in this period."),
        total(done),
    )
    followed = Sheet(
        _("Followed up"),
        [communes_word(scope, locale, capital=True), _("Followed up by"), _("Phone"), _("When")],
        [
            [
                commune.name,
                actor.name if actor and actor.name else "—",
                (display_phone(actor) if actor else "") or "—",
                _local(policies, entry.at),
            ]
            for entry, commune, actor in follow_ups or []
        ],
        _("No follow-up was recorded in this period."),
        total(follow_ups or []),
    )
    totals = district_totals(digest)
    summary = Sheet(
        communes_word(scope, locale, capital=True),
        [
            communes_word(scope, locale, capital=True),
            _("Done"),
            _("Excused"),
            _("Open"),
            _("Overdue"),
            _("Completion %"),
        ],
        [
            [t.unit.name, t.done, t.excused, t.open, t.overdue, round(t.rate * 100)]
            for t in digest.tallies
        ],
        totals=[
            _("Total"),
            totals["done"],
            totals["excused"],
            totals["open"],
            totals["overdue"],
            "",
        ],
    )
    sheets = [overdue, still_open, excused, done_sheet, summary, followed]
    taken = {sheet.title for sheet in sheets}
    everything = digest.overdue + digest.open + digest.excused + done
    for tally in digest.tallies:
        name = _sheet_name(tally.unit.name)
        if name in taken:
            continue
        taken.add(name)
        mine = [line for line in everything if line.commune and line.commune.id == tally.unit.id]
        mine.sort(key=lambda line: (line.occurrence.due_at, sort_key(line.unit.name)))
        sheets.append(
            Sheet(
                name,
                headers + about,
                [row(line) + more(line) for line in mine],
                _("No tasks in this period."),
                total(mine),
            )
        )
    return sheets


HEADLINE_COMMUNES = 5  # the communes a district officer should call today, worst first


def _change(now_count: int, before: int | None, locale: str) -> str:
    """The change since the last digest (" (+2)", " (−1)", " (±0)"), when there was one."""
    if before is None:
        return ""
    if before == now_count:
        return " (±0)"
    sign = "+" if now_count > before else "−"
    return f" ({sign}{format_number(abs(now_count - before), locale)})"


def district_totals(digest: DistrictDigest) -> dict[str, int]:
    totals = StatusCounts()
    for tally in digest.tallies:
        totals.done += tally.done
        totals.excused += tally.excused
        totals.overdue += tally.overdue
        totals.open += tally.open
    return {
        "done": totals.done,
        "excused": totals.excused,
        "overdue": totals.overdue,
        "open": totals.open,
    }


@dataclass
class CommuneCall:
    """A commune that needs a call: its overdue count and its oldest overdue item's lateness."""

    commune: Unit
    overdue: int
    oldest_days: int


def communes_to_call(policies: Policies, digest: DistrictDigest, today: date) -> list[CommuneCall]:
    """The communes with overdue items, in the digest's order (worst first)."""
    oldest = _oldest_days(policies, digest.overdue, today)
    return [
        CommuneCall(tally.unit, tally.overdue, oldest.get(tally.unit.id, 0))
        for tally in digest.tallies
        if tally.overdue and tally.unit is not None
    ]


def dashboard_links(public_url: str, unit: Unit) -> tuple[str, str] | None:
    if not public_url:
        return None
    base = f"{public_url.rstrip('/')}/dashboard/u/{unit.id}"
    return base, f"{base}/overdue"


def district_text(
    policies: Policies,
    digest: DistrictDigest,
    kind: str,
    locale: str,
    today: date,
    new: list[tuple[Escalation, Line]],
    follow_ups: list[tuple[AuditLog, Unit, User | None]],
    previous: dict[str, int] | None = None,
    public_url: str = "",
) -> str:
    """The headline (≤ 15 lines, ≤ 1,200 characters): the period, the district's totals with
    the change since the last digest, the five communes to call, links to the dashboard.
    Everything else is in the workbook and on the dashboard; unreachable people are in the
    coverage report, never here."""
    _ = translator(locale)
    title = _("📊 Weekly summary") if kind == WEEKLY else _("📊 Daily digest")
    lines = [
        f"{title} — {place(digest.scope.unit, locale)}",
        format_day(today, locale),
        recent_period_line(_, policies, today),
    ]
    totals = district_totals(digest)
    before = previous or {}
    lines.append(
        _("✅ Done {done} · 🟦 Excused {excused} · 🔴 Overdue {overdue}").format(
            done=format_number(totals["done"], locale)
            + _change(totals["done"], before.get("done"), locale),
            excused=format_number(totals["excused"], locale)
            + _change(totals["excused"], before.get("excused"), locale),
            overdue=format_number(totals["overdue"], locale)
            + _change(totals["overdue"], before.get("overdue"), locale),
        )
    )
    late_new = [pair for pair in new if pair[0].step != "unreachable"]
    if late_new:
        lines.append(
            _("🔺 New items escalated to you since the last digest: {count}").format(
                count=format_number(len(late_new), locale)
            )
        )
    calls = communes_to_call(policies, digest, today)
    if calls:
        lines.append(_("📞 To call, most overdue first:"))
        for number, call in enumerate(calls[:HEADLINE_COMMUNES], start=1):
            lines.append(
                f"{number}. {call.commune.name}: "
                + _("{count} overdue, the oldest {days} day(s) late").format(
                    count=format_number(call.overdue, locale), days=call.oldest_days
                )
            )
        if len(calls) > HEADLINE_COMMUNES:
            lines.append(
                _("… and {count} more with overdue items.").format(
                    count=format_number(len(calls) - HEADLINE_COMMUNES, locale)
                )
            )
    else:
        lines.append(_("Nothing is overdue. Well done!"))
    if follow_ups:
        names = []
        for entry, commune, actor in follow_ups:
            when = format_short_day(policies.local_day(from_db(entry.at)))
            who = actor.name if actor and actor.name else "—"
            names.append(f"{commune.name} ({who}, {when})")
        shown = ", ".join(names[:3]) + (" …" if len(names) > 3 else "")
        lines.append(_("✔️ Followed up since the last digest:") + " " + shown)
    links = dashboard_links(public_url, digest.scope.unit)
    if links is not None:
        lines.append(_("🔗 Overview: {url}").format(url=links[0]))
        lines.append(_("🔗 Overdue list: {url}").format(url=links[1]))
    return "\n".join(lines).strip()


def follow_up_messages(
    policies: Policies, locale: str, digest: DistrictDigest, today: date
) -> list[tuple[Unit, Outgoing]]:
    """One small message per commune with overdue items, each with its own button, so each
    follow-up is tapped (and greyed out) on its own."""
    _ = translator(locale)
    found = []
    for call in communes_to_call(policies, digest, today):
        text = f"{call.commune.name}: " + _(
            "{count} overdue, the oldest {days} day(s) late"
        ).format(count=format_number(call.overdue, locale), days=call.oldest_days)
        button = Button(
            _("📞 Mark as followed up: {commune}").format(commune=place(call.commune, locale))[:60],
            f"fu:{call.commune.id}",
        )
        found.append((call.commune, Outgoing(text=text, buttons=[[button]])))
    return found


def _record_sent(
    session: AsyncSession, user: User, kind: str, now: datetime, totals: dict | None = None
) -> None:
    """Remember when this person last had a digest and what it counted: the next one reports
    what came after and the change."""
    detail: dict = {"kind": kind, "now": now.isoformat()}
    if totals is not None:
        detail["totals"] = totals
    session.add(
        AuditLog(at=to_db(now), action=DIGEST_SENT, subject=f"user:{user.id}", detail=detail)
    )


async def previous_totals(session: AsyncSession, user: User) -> dict[str, int] | None:
    """The district totals this person's last district digest showed (None: none yet)."""
    rows = await session.exec(
        select(AuditLog)
        .where(AuditLog.action == DIGEST_SENT, AuditLog.subject == f"user:{user.id}")
        .order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc())
    )
    for entry in rows.all():
        if entry.detail and "totals" in entry.detail:
            return entry.detail["totals"]
    return None


async def _send(
    session: AsyncSession,
    user: User,
    key: str,
    message: Outgoing,
    now: datetime,
    settings: Settings | None = None,
) -> bool:
    identity = await preferred_identity(session, user.id)
    if identity is None:
        return False
    if settings is not None and not carries(identity.channel, message, settings):
        return False  # the headline said where to find it (scheduler/digest_access.py)
    # One burst per digest: on a channel of numbered menus, its messages number on.
    burst = ":".join(key.split(":")[:4])
    row = await enqueue(
        session, identity.channel, identity.external_id, message, key, user.id, burst=burst
    )
    if row is not None:
        row.created_at = to_db(now)
    return row is not None


async def _headline(session: AsyncSession, app: AppContext, user: User, text: str) -> Outgoing:
    """A digest's first message: its text, where to find the files this chat cannot carry,
    and the button to the dashboard."""
    _ = translator(user.locale)
    identity = await preferred_identity(session, user.id)
    note = files_note(_, identity.channel, app.settings) if identity is not None else ""
    return Outgoing(text=text + (f"\n{note}" if note else ""), buttons=[[dashboard_button(_)]])


async def send_district_digests(
    session: AsyncSession, app: AppContext, policies: Policies, now: datetime, report: DigestReport
) -> None:
    today = policies.local_day(now)
    kind = WEEKLY if today.weekday() == policies.escalation.digests.weekly_weekday else DAILY
    now_db = to_db(now)
    coverage: dict = {}
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
                if built[user.locale].trend_path:
                    report.files.append(built[user.locale].trend_path)
            digest = built[user.locale]
            follow_ups = await _follow_ups(session, scope, since, now_db)
            _ = translator(user.locale)
            previous = await previous_totals(session, user)
            text = district_text(
                policies,
                digest,
                kind,
                user.locale,
                today,
                new,
                follow_ups,
                previous,
                app.settings.public_url,
            )
            await _send(
                session, user, f"{base}:text", await _headline(session, app, user, text), now
            )
            for commune, message in follow_up_messages(policies, user.locale, digest, today):
                await _send(session, user, f"{base}:fu:{commune.id}", message, now)
            caption = _("Tasks per {communes}").format(communes=communes_word(scope, user.locale))
            for index, chart in enumerate(digest.chart_paths):
                many = len(digest.chart_paths) > 1
                part = f" ({index + 1}/{len(digest.chart_paths)})" if many else ""
                await _send(
                    session,
                    user,
                    f"{base}:chart" + (f"{index + 1}" if index else ""),
                    Outgoing(text=caption + part, photo_path=chart),
                    now,
                    app.settings,
                )
            if digest.trend_path:
                trend = Outgoing(text=trend_caption(user.locale), photo_path=digest.trend_path)
                await _send(session, user, f"{base}:trend", trend, now, app.settings)
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
                app.settings,
            )
            if kind == WEEKLY:
                if scope.unit.id not in coverage:
                    coverage[scope.unit.id] = await coverage_of(session, app, scope.communes, now)
                text = coverage_text(
                    app,
                    user.locale,
                    place(scope.unit, user.locale),
                    scope.communes,
                    coverage[scope.unit.id],
                )
                await _send(session, user, f"{base}:coverage", Outgoing(text=text), now)
            _record_sent(session, user, kind, now, district_totals(digest))
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
    counts: dict[str, StatusCounts] = {key: StatusCounts() for key in app.framework.dimensions}
    for dimension, status, count in found:
        counts.setdefault(dimension, StatusCounts()).add(status, count)
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
            _(
                "📊 PAPI monthly summary, {month}: done / excused / open / overdue by dimension"
            ).format(month=month),
            "",
        ]
        chart_rows = []
        sheet_rows = []
        for key, tally in ordered:
            dimension = app.framework.dimensions.get(key)
            name = (dimension.short if locale == "vi" else dimension.short_en) if dimension else key
            number = dimension.number if dimension else "-"
            rate = tally.rate if tally.expected else 0.0
            lines.append(
                f"{number}. {name}: "
                + " / ".join(
                    format_number(n, locale)
                    for n in (tally.done, tally.excused, tally.open, tally.overdue)
                )
                + (f" ({format_percent(rate, locale)})" if tally.expected else "")
            )
            chart_rows.append((f"{number}. {name}", tally))
            sheet_rows.append(
                [
                    number,
                    dimension.name if dimension else key,
                    tally.done,
                    tally.excused,
                    tally.open,
                    tally.overdue,
                    round(rate * 100),
                ]
            )
        folder = Path("digests") / f"{today:%Y-%m-%d}"
        chart = folder / f"monthly-{locale}.png"
        book = folder / f"monthly-{locale}.xlsx"
        data_dir = Path(app.settings.data_dir)
        await asyncio.to_thread(
            status_chart,
            chart_rows,
            _("Completion rate by PAPI dimension, {month}").format(month=month),
            chart_legend(_),
            data_dir / chart,
            locale,
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
                        _("Excused"),
                        _("Open"),
                        _("Overdue"),
                        _("Completion %"),
                    ],
                    sheet_rows,
                )
            ],
        )
        headline = await _headline(session, app, user, "\n".join(lines))
        sent = await _send(session, user, f"{base}:text", headline, now)
        if not sent:
            continue
        await _send(
            session,
            user,
            f"{base}:chart",
            Outgoing(photo_path=chart.as_posix()),
            now,
            app.settings,
        )
        await _send(
            session,
            user,
            f"{base}:xlsx",
            Outgoing(document_path=book.as_posix(), document_name=f"papi-{start:%Y-%m}.xlsx"),
            now,
            app.settings,
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
        report.coverage += await send_commune_coverage(session, app, policies, now)
        report.agency += await send_agency_digests(session, app, policies, now)
        await session.commit()
    return report


__all__ = [
    "DIGEST_SENT",
    "DigestReport",
    "run_digests",
    "scopes",
    "supervised_communes",
]
