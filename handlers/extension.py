"""More time, or "cannot do": the reason is asked; extensions go up for a decision."""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlmodel import col, select

from bot.core.i18n import format_day, translator
from bot.core.messages import Button, Outgoing
from bot.core.models import Occurrence, OccurrenceStatus, Report, TaskDefinition, Unit, User, utcnow
from bot.core.services.occurrences import ACTIVE_STATUSES, extend, may_act_on
from bot.core.services.people import audit
from bot.core.timeutil import local_moment, to_db
from handlers.common import load_occurrence, local_due, role_label
from handlers.conversation import Conversation
from scheduler.planner import DUE_CLOCK

EXTENSION_CHOICES = (3, 7, 14)
DAY_MONTH = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})(?:[/.\-](\d{2,4}))?\s*$")


def parse_day(text: str, today: date) -> date | None:
    """`15/12`, `15/12/2026`, `15-12-26` → a date not before today (Vietnamese order)."""
    match = DAY_MONTH.match(text)
    if not match:
        return None
    day, month, year = match.groups()
    try:
        if year:
            full_year = int(year) + (2000 if len(year) == 2 else 0)
            return date(full_year, int(month), int(day))
        candidate = date(today.year, int(month), int(day))
    except ValueError:
        return None
    return candidate if candidate >= today else candidate.replace(year=today.year + 1)


async def approvers_for(convo: Conversation, occurrence: Occurrence, requester: User) -> list[User]:
    """People one level up whose role oversees the requester's role (commune for a village)."""
    unit = await convo.session.get(Unit, occurrence.unit_id)
    if unit is None or unit.parent_id is None:
        return []
    overseeing = [
        name for name, role in convo.app.framework.roles.items() if requester.role in role.oversees
    ]
    rows = await convo.session.exec(
        select(User).where(
            User.unit_id == unit.parent_id,
            col(User.role).in_(overseeing),
            col(User.active).is_(True),
        )
    )
    return list(rows.all())


async def ask_extension(convo: Conversation, raw_id: str) -> None:
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    _ = convo._
    due = local_due(convo, occurrence).date()
    buttons = [
        [
            Button(_("+{days} days").format(days=days), f"extd:{occurrence.id}:{days}")
            for days in EXTENSION_CHOICES
        ]
    ]
    convo.set_state("awaiting_extension_date", occurrence_id=occurrence.id)
    await convo.reply(
        _(
            "{title}: due {due}. Until when do you need? Tap a choice or type a date (e.g. 15/12)."
        ).format(title=task.title, due=format_day(due, convo.locale)),
        buttons,
    )


async def extension_date(convo: Conversation, raw_id: str, requested: date | None) -> None:
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, _task = loaded
    _ = convo._
    if requested is None:
        await convo.reply(_("Please type a date like 15/12, or tap one of the choices."))
        return
    convo.set_state(
        "awaiting_extension_reason", occurrence_id=occurrence.id, until=requested.isoformat()
    )
    await convo.reply(_("Please write briefly why more time is needed."))


async def extension_days(convo: Conversation, raw: str) -> None:
    raw_id, _sep, days = raw.partition(":")
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, _task = loaded
    base = max(local_due(convo, occurrence).date(), date.today())
    try:
        requested = base + timedelta(days=min(int(days), 60))
    except ValueError:
        requested = None
    await extension_date(convo, raw_id, requested)


async def typed_extension_date(convo: Conversation) -> None:
    today = date.today()
    await extension_date(
        convo, str(convo.state_data["occurrence_id"]), parse_day(convo.incoming.text, today)
    )


async def extension_reason(convo: Conversation) -> None:
    _ = convo._
    occurrence = await convo.session.get(Occurrence, int(convo.state_data["occurrence_id"]))
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    until = date.fromisoformat(convo.state_data["until"])
    report = Report(
        occurrence_id=occurrence.id,
        user_id=convo.user.id,
        kind="extension",
        status="submitted",
        note=convo.incoming.text.strip()[:2000],
        requested_until=until,
        submitted_at=utcnow(),
    )
    convo.session.add(report)
    await convo.session.flush()
    convo.clear_state()
    approvers = await approvers_for(convo, occurrence, convo.user)
    unit = await convo.session.get(Unit, occurrence.unit_id)
    reached = 0
    for approver in approvers:
        t = translator(approver.locale)
        message = Outgoing(
            text=t(
                '{role} of {unit} asks for more time on "{title}" until {until}.\nReason: {reason}'
            ).format(
                role=convo.app.framework.role_name(convo.user.role, approver.locale),
                unit=unit.name,
                title=task.title,
                until=format_day(until, approver.locale),
                reason=report.note or "—",
            ),
            buttons=[
                [
                    Button(t("✅ Approve"), f"appr:{report.id}"),
                    Button(t("❌ Decline"), f"decl:{report.id}"),
                ]
            ],
        )
        reached += await convo.notify(approver, message, f"extension:{report.id}")
    await audit(
        convo.session,
        "extension.requested",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
        until=until.isoformat(),
    )
    if reached:
        await convo.reply(
            _("Your request was sent to the commune committee. I will tell you their answer.")
        )
    else:
        await convo.reply(
            _(
                "Your request is recorded, but nobody at the level above is registered yet. Please call the commune office."
            )
        )


async def decide(convo: Conversation, raw_id: str, approve: bool) -> None:
    _ = convo._
    report = await convo.session.get(Report, int(raw_id)) if raw_id.isdigit() else None
    occurrence = await convo.session.get(Occurrence, report.occurrence_id) if report else None
    if report is None or report.kind != "extension" or occurrence is None:
        await convo.reply(_("This request no longer exists."))
        return
    requester = await convo.session.get(User, report.user_id)
    allowed = (
        convo.user.id != report.user_id
        and await may_act_on(convo.session, convo.user, occurrence)
        and any(
            requester.role in role.oversees
            for name, role in convo.app.framework.roles.items()
            if name == convo.user.role
        )
    )
    if not allowed:
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(_("Only the level above may decide on this request."))
        return
    if report.status != "submitted":
        await convo.reply(_("This request was already decided."))
        return
    report.status = "approved" if approve else "declined"
    report.decided_by_user_id = convo.user.id
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    if approve and occurrence.status in ACTIVE_STATUSES:
        extend(
            occurrence,
            to_db(local_moment(report.requested_until, DUE_CLOCK, convo.app.settings.tz)),
        )
        convo.session.add(occurrence)
    convo.session.add(report)
    await audit(
        convo.session,
        f"extension.{report.status}",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
    )
    t = translator(requester.locale)
    until = format_day(report.requested_until, requester.locale)
    text = (
        t('Your request for more time on "{title}" was approved: the new due date is {until}.')
        if approve
        else t(
            'Your request for more time on "{title}" was declined. The due date stays the same; please call the commune office if you need help.'
        )
    ).format(title=task.title, until=until)
    await convo.notify(requester, Outgoing(text=text), f"decision:{report.id}")
    await convo.reply(
        (
            _("Approved: {title}, new due date {until}.") if approve else _("Declined: {title}.")
        ).format(title=task.title, until=format_day(report.requested_until, convo.locale))
    )


async def ask_cannot(convo: Conversation, raw_id: str) -> None:
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    convo.set_state("awaiting_cannot_reason", occurrence_id=occurrence.id)
    await convo.reply(
        convo._("{title}: please write briefly why it cannot be done.").format(title=task.title)
    )


async def cannot_reason(convo: Conversation) -> None:
    _ = convo._
    occurrence = await convo.session.get(Occurrence, int(convo.state_data["occurrence_id"]))
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    reason = convo.incoming.text.strip()[:2000]
    report = Report(
        occurrence_id=occurrence.id,
        user_id=convo.user.id,
        kind="cannot",
        status="submitted",
        note=reason,
        submitted_at=utcnow(),
    )
    convo.session.add(report)
    await convo.session.flush()
    occurrence.status = OccurrenceStatus.excused
    occurrence.note = reason
    occurrence.updated_at = utcnow()
    convo.session.add(occurrence)
    convo.clear_state()
    unit = await convo.session.get(Unit, occurrence.unit_id)
    for approver in await approvers_for(convo, occurrence, convo.user):
        t = translator(approver.locale)
        await convo.notify(
            approver,
            Outgoing(
                text=t('{role} of {unit} cannot do "{title}".\nReason: {reason}').format(
                    role=role_label(convo, convo.user.role),
                    unit=unit.name,
                    title=task.title,
                    reason=reason,
                )
            ),
            f"cannot:{report.id}",
        )
    await audit(
        convo.session,
        "report.cannot",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
    )
    await convo.reply(
        _('Recorded: "{title}" cannot be done. The commune committee has been told.').format(
            title=task.title
        )
    )
