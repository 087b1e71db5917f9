"""Once a day, in the afternoon, each commune officer gets one message: the done reports the
villages sent since the last one, each with a button that opens it (photos, note, who, when,
the camera's time) to accept it or return it (handlers/review.py).

Nothing is sent when nothing new came in, nor in the quiet hours; each (person, day) once (the
outbox key says so). "Since the last one" is the audit entry of the last message sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.i18n import format_day, translator
from bot.core.messages import Button, Outgoing
from bot.core.models import AuditLog, Evidence, Occurrence, Report, TaskDefinition, Unit, User
from bot.core.services.evidence_checks import flags_of_reports
from bot.core.services.outbox import enqueue, preferred_identity
from bot.core.timeutil import from_db, to_db
from scheduler.policy import load_policies

SEND_AT = time(16, 30)  # the day's reports are in, the office is still open
SENT = "evidence_digest.sent"
MAX_BUTTONS = 10
FIRST_SPAN = timedelta(days=1)  # the first message covers the last day


@dataclass
class EvidenceDigestReport:
    sent: int = 0
    reports: int = 0
    reason: str = ""

    def __str__(self) -> str:
        text = f"evidence digests: {self.sent} sent, {self.reports} report(s) listed"
        return text + (f" ({self.reason})" if self.reason else "")


@dataclass
class NewReport:
    report: Report
    task: TaskDefinition
    unit: Unit
    photos: int


async def _last_sent(session: AsyncSession, user: User) -> datetime | None:
    found = await session.exec(
        select(func.max(AuditLog.at)).where(
            AuditLog.action == SENT, AuditLog.subject == f"user:{user.id}"
        )
    )
    value = found.one()
    return from_db(value) if value is not None else None


async def new_reports(
    session: AsyncSession,
    officer: User,
    reporter_roles: list[str],
    since: datetime,
    until: datetime,
) -> list[NewReport]:
    """Done reports not yet reviewed, sent by the units just below the officer's."""
    photos = (
        select(Evidence.report_id, func.count().label("photos"))
        .group_by(Evidence.report_id)
        .subquery()
    )
    rows = await session.exec(
        select(Report, TaskDefinition, Unit, photos.c.photos)
        .join(Occurrence, Occurrence.id == Report.occurrence_id)
        .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
        .join(Unit, Unit.id == Occurrence.unit_id)
        .join(User, User.id == Report.user_id)
        .outerjoin(photos, photos.c.report_id == Report.id)
        .where(
            Unit.parent_id == officer.unit_id,
            Report.kind == "done",
            Report.status == "submitted",
            Report.review_status == "",
            col(User.role).in_(reporter_roles),
            col(Report.submitted_at) > to_db(since),
            col(Report.submitted_at) <= to_db(until),
        )
        .order_by(col(Unit.name), col(Report.submitted_at))
    )
    return [NewReport(r, task, unit, count or 0) for r, task, unit, count in rows.all()]


def compose(
    app: AppContext,
    officer: User,
    found: list[NewReport],
    since: datetime,
    flagged: set[int] = frozenset(),  # type: ignore[assignment]
) -> Outgoing:
    _ = translator(officer.locale)
    tz = app.settings.tz
    start = since.astimezone(tz)
    lines = [
        _("📷 New reports from the villages since {when}: {count}").format(
            when=f"{start:%H:%M} {format_day(start.date(), officer.locale)}", count=len(found)
        )
    ]
    buttons = []
    for number, item in enumerate(found, start=1):
        sent = from_db(item.report.submitted_at).astimezone(tz)
        mark = "⚠️ " if item.report.id in flagged else ""  # a photo the checks flagged
        lines.append(
            f"{number}. {mark}{item.unit.name}: {item.task.title} — "
            + _("{photos} photo(s), sent {when}").format(
                photos=item.photos, when=f"{sent:%H:%M %d/%m}"
            )
        )
        if number <= MAX_BUTTONS:
            label = f"🔍 {number}. {item.unit.name}"[:40].rstrip()
            buttons.append([Button(label, f"rv:{item.report.id}")])
    if len(found) > MAX_BUTTONS:
        lines.append(_("The others can be opened from each village in /tinhhinh."))
    if flagged:
        lines.append(
            _(
                "⚠️ marks a report with a photo that may be reused, old or taken elsewhere: open it to look."
            )
        )
    lines.append(_("Open a report to see its photos, then accept it or return it."))
    return Outgoing(text="\n".join(lines), buttons=buttons)


async def send_evidence_digests(
    session: AsyncSession, app: AppContext, now: datetime, report: EvidenceDigestReport
) -> None:
    tz = app.settings.tz
    today = now.astimezone(tz).date()
    overseers = {name: role.oversees for name, role in app.framework.roles.items() if role.oversees}
    officers = (
        await session.exec(
            select(User)
            .where(col(User.role).in_(list(overseers)), col(User.active).is_(True))
            .order_by(col(User.id))
        )
    ).all()
    for officer in officers:
        key = f"evidence:{officer.id}:{today:%Y%m%d}"
        identity = await preferred_identity(session, officer.id)
        if identity is None:
            continue
        since = await _last_sent(session, officer) or now - FIRST_SPAN
        found = await new_reports(session, officer, list(overseers[officer.role]), since, now)
        if not found:
            continue
        flags = await flags_of_reports(session, [item.report.id for item in found])
        flagged = {report_id for report_id, listed in flags.items() if listed}
        message = compose(app, officer, found, since, flagged)
        row = await enqueue(
            session, identity.channel, identity.external_id, message, key, officer.id
        )
        if row is None:
            continue  # already sent today
        session.add(
            AuditLog(
                at=to_db(now),
                action=SENT,
                subject=f"user:{officer.id}",
                detail={"reports": [item.report.id for item in found]},
            )
        )
        report.sent += 1
        report.reports += len(found)


async def run_evidence_digests(
    db: Database, app: AppContext, now: datetime
) -> EvidenceDigestReport:
    """Send today's message to each officer with new reports, once the time has come."""
    policies = load_policies(app.settings)
    report = EvidenceDigestReport()
    if now.astimezone(policies.tz).time() < SEND_AT:
        report.reason = "before the time of the evidence digest"
        return report
    if policies.reminders.is_quiet(now, policies.tz):
        report.reason = "quiet hours"
        return report
    async with db.session() as session:
        await send_evidence_digests(session, app, now, report)
        await session.commit()
    return report
