"""What the report workbook says about each item beyond its status: who is responsible and how
to call them, what was asked (more time, cannot do) and decided, with dates, and where its page
and photos are. Read in a few queries for all items at once, written as the clerk reads it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.framework import Framework
from bot.core.framework.schema import role_matches
from bot.core.i18n import Translator, format_short_day
from bot.core.models import Occurrence, Report, TaskDefinition, User
from bot.core.services.reach import phone_for
from bot.core.timeutil import from_db
from scheduler.workbook import Link

CHUNK = 1000
ASKED = ("submitted", "approved", "declined")  # a draft was never sent: not history


@dataclass
class ItemDetails:
    people: dict[int, list[User]] = field(default_factory=dict)  # occurrence id → responsible
    requests: dict[int, list[Report]] = field(default_factory=dict)  # extension and cannot-do


async def item_details(
    session: AsyncSession, framework: Framework, items: list[tuple[Occurrence, TaskDefinition]]
) -> ItemDetails:
    details = ItemDetails()
    unit_ids = sorted({occurrence.unit_id for occurrence, _task in items})
    staff: dict[int, list[User]] = defaultdict(list)
    for start in range(0, len(unit_ids), CHUNK):
        rows = await session.exec(
            select(User)
            .where(
                col(User.unit_id).in_(unit_ids[start : start + CHUNK]), col(User.active).is_(True)
            )
            .order_by(col(User.id))
        )
        for user in rows.all():
            staff[user.unit_id].append(user)
    for occurrence, task in items:
        here = staff.get(occurrence.unit_id, [])
        people = [user for user in here if role_matches(task.roles, user.role)]
        if not people:  # the role's stand-in (roles.yaml `fallback`), as reminders do
            fallback = framework.fallback_roles(task.roles)
            people = [user for user in here if user.role in fallback]
        details.people[occurrence.id] = people
    ids = [occurrence.id for occurrence, _task in items]
    for start in range(0, len(ids), CHUNK):
        rows = await session.exec(
            select(Report)
            .where(
                col(Report.occurrence_id).in_(ids[start : start + CHUNK]),
                col(Report.kind).in_(["extension", "cannot"]),
                col(Report.status).in_(ASKED),
            )
            .order_by(col(Report.created_at), col(Report.id))
        )
        for report in rows.all():
            details.requests.setdefault(report.occurrence_id, []).append(report)
    return details


def display_phone(user: User) -> str:
    """84905123456 → "0905 123 456", as a phone number is written for a person to dial."""
    phone = phone_for(user)
    if phone is None:
        return ""
    local = "0" + phone[2:]
    return f"{local[:4]} {local[4:7]} {local[7:]}"


def people_text(_: Translator, people: list[User]) -> tuple[str, str]:
    """(names, phones), one person a line; a gap said in words."""
    if not people:
        return _("Nobody registered"), "—"
    names = "\n".join(user.name or "—" for user in people)
    phones = "\n".join(display_phone(user) or "—" for user in people)
    return names, phones


def _day(moment: datetime | None, tz: ZoneInfo) -> str:
    return format_short_day(from_db(moment).astimezone(tz).date()) if moment else "—"


def _decision(_: Translator, report: Report, tz: ZoneInfo) -> str:
    if report.status == "approved":
        return _("approved on {day}").format(day=_day(report.decided_at, tz))
    if report.status == "declined":
        text = _("declined on {day}").format(day=_day(report.decided_at, tz))
        return text + (f" ({report.decision_note})" if report.decision_note else "")
    return _("waiting for a decision")


def extension_history(_: Translator, reports: list[Report], tz: ZoneInfo) -> str:
    """ "Xin đến 30/11/2026 (gửi 20/11/2026): đã duyệt 21/11/2026", one request a line."""
    lines = [
        _("Asked until {until} (sent {sent}): {decision}").format(
            until=format_short_day(report.requested_until) if report.requested_until else "—",
            sent=_day(report.submitted_at or report.created_at, tz),
            decision=_decision(_, report, tz),
        )
        for report in reports
        if report.kind == "extension"
    ]
    return "\n".join(lines) or "—"


def cannot_history(_: Translator, reports: list[Report], tz: ZoneInfo) -> str:
    """ "“Đường ngập” (gửi 20/11/2026): đã duyệt 21/11/2026", one request a line."""
    lines = [
        _("“{reason}” (sent {sent}): {decision}").format(
            reason=report.note or "—",
            sent=_day(report.submitted_at or report.created_at, tz),
            decision=_decision(_, report, tz),
        )
        for report in reports
        if report.kind == "cannot"
    ]
    return "\n".join(lines) or "—"


def occurrence_link(_: Translator, public_url: str, occurrence: Occurrence) -> Link:
    """The dashboard page of an item (its reports, photos and decisions). Without a public
    address, the words say where to find it."""
    path = f"/dashboard/o/{occurrence.id}"
    if public_url:
        url = public_url.rstrip("/") + path
        return Link(url, url)
    return Link(_("On the dashboard, the page {path}").format(path=path))
