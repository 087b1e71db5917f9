"""More time: the new date is asked (only later than the current due date, within the
policy's maximum), then the reason; the level above approves or declines (with a reason)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from bot.core.i18n import format_day, translator
from bot.core.messages import Button, Outgoing
from bot.core.models import Occurrence, Report, TaskDefinition, Unit, utcnow
from bot.core.services.occurrences import ACTIVE_STATUSES, extend
from bot.core.services.people import audit
from bot.core.task_text import task_title
from bot.core.timeutil import DUE_CLOCK, local_moment, to_db
from bot.core.unit_words import committee
from handlers.common import load_occurrence, local_due, person, tap_any
from handlers.conversation import Conversation
from handlers.report import too_long
from handlers.requests import (
    approvers_for,
    ask_decision_reason,
    is_past,
    load_request,
    record_decline,
    who_asked,
)
from scheduler.policy import load_policies

EXTENSION_CHOICES = (3, 7, 14)
EXAMPLE_DAYS = 5
DAY_MONTH = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})(?:[/.\-](\d{2,4}))?\s*$")


def parse_day(text: str, today: date) -> date | None:
    """`15/12`, `15/12/2026`, `15-12-26` → a date (Vietnamese order); without a year, the
    next such day from today on."""
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


def _today(convo: Conversation) -> date:
    return datetime.now(convo.app.settings.tz).date()


def _max_days(convo: Conversation) -> int:
    return load_policies(convo.app.settings).reminders.max_extension_days


def _base(convo: Conversation, occurrence: Occurrence) -> date:
    """What "+N days" counts from: the current due date, or today once it has passed."""
    return max(local_due(convo, occurrence).date(), _today(convo))


def _example(convo: Conversation, occurrence: Occurrence) -> str:
    return f"{_base(convo, occurrence) + timedelta(days=EXAMPLE_DAYS):%d/%m}"


async def ask_extension(convo: Conversation, raw_id: str, choice: str = "extd") -> None:
    """`choice`: the action of the +N days buttons (the walk has its own, to go on after)."""
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    _ = convo._
    if occurrence.status not in ACTIVE_STATUSES:
        await convo.reply(
            _("This task is already closed. Type /viec to see your open tasks."), in_place=True
        )
        return
    due = local_due(convo, occurrence).date()
    buttons = [
        [
            Button(_("+{days} days").format(days=days), f"{choice}:{occurrence.id}:{days}")
            for days in EXTENSION_CHOICES
        ]
    ]
    convo.set_state("awaiting_extension_date", occurrence_id=occurrence.id)
    await convo.reply(
        _(
            "{title}: due {due}. Until when do you need? {action} or type a date (e.g. {example})."
        ).format(
            title=task_title(task, convo.locale),
            due=format_day(due, convo.locale),
            action=tap_any(_, start=True),
            example=_example(convo, occurrence),
        ),
        buttons,
        in_place=True,
    )


def _refusal(convo: Conversation, occurrence: Occurrence, requested: date | None) -> str | None:
    """Why `requested` cannot be asked for, in words that name the current due date."""
    _ = convo._
    due = local_due(convo, occurrence).date()
    today = _today(convo)
    if requested is None:
        return _("Please type a date like {example}, or {action}.").format(
            example=_example(convo, occurrence), action=tap_any(_)
        )
    if requested <= due:
        return _(
            "The new date must be after the current due date ({due}). Please type a later date, like {example}."
        ).format(due=format_day(due, convo.locale), example=_example(convo, occurrence))
    if requested <= today:
        return _(
            "The current due date ({due}) has passed: the new date must be after today ({today}), like {example}."
        ).format(
            due=format_day(due, convo.locale),
            today=format_day(today, convo.locale),
            example=_example(convo, occurrence),
        )
    latest = _base(convo, occurrence) + timedelta(days=_max_days(convo))
    if requested > latest:
        return _(
            "At most {days} more days can be asked for: the latest date is {latest} (current due date {due})."
        ).format(
            days=_max_days(convo),
            latest=format_day(latest, convo.locale),
            due=format_day(due, convo.locale),
        )
    return None


async def extension_date(convo: Conversation, raw_id: str, requested: date | None) -> None:
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, _task = loaded
    _ = convo._
    refusal = _refusal(convo, occurrence, requested)
    if refusal is not None:
        # Still waiting for a date: the person types another one or taps a choice.
        convo.set_state("awaiting_extension_date", occurrence_id=occurrence.id)
        await convo.reply(refusal)  # a new message: the card's choices stay on screen
        return
    convo.set_state(
        "awaiting_extension_reason", occurrence_id=occurrence.id, until=requested.isoformat()
    )
    await convo.reply(_("Please write briefly why more time is needed."), in_place=True)


async def extension_days(convo: Conversation, raw: str) -> None:
    raw_id, _sep, days = raw.partition(":")
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, _task = loaded
    count = int(days) if days.isdigit() and len(days) <= 12 else 0  # "-3", "abc", "" → refused
    # A forged huge count is one day past the limit (refused below), never a date overflow.
    count = min(count, _max_days(convo) + 1)
    requested = _base(convo, occurrence) + timedelta(days=count) if count > 0 else None
    await extension_date(convo, raw_id, requested)


async def typed_extension_date(convo: Conversation) -> None:
    await extension_date(
        convo,
        str(convo.state_data["occurrence_id"]),
        parse_day(convo.incoming.text, _today(convo)),
    )


async def extension_reason(convo: Conversation) -> None:
    _ = convo._
    if await too_long(convo, convo.incoming.text.strip()):
        return  # still waiting for a reason that fits
    occurrence = await convo.session.get(Occurrence, int(convo.state_data["occurrence_id"]))
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    until = date.fromisoformat(convo.state_data["until"])
    due = local_due(convo, occurrence).date()
    report = Report(
        occurrence_id=occurrence.id,
        user_id=convo.user.id,
        kind="extension",
        status="submitted",
        note=convo.incoming.text.strip(),
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
                '{who} asks for more time on "{title}": due {due} → asked until {until} (+{days} days).\nReason: {reason}'
            ).format(
                who=person(convo, convo.user, unit, approver.locale),
                title=task_title(task, approver.locale),
                due=format_day(due, approver.locale),
                until=format_day(until, approver.locale),
                days=(until - due).days,
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
        due=due.isoformat(),
        until=until.isoformat(),
    )
    above = await convo.session.get(Unit, unit.parent_id) if unit.parent_id else None
    office = committee(above, convo.locale) if above is not None else ""
    if reached:
        await convo.reply(
            _("Your request was sent to {committee}. I will tell you their answer.").format(
                committee=office
            )
        )
    else:
        await convo.reply(
            _(
                "Your request is recorded, but nobody at {committee} is registered yet. Please call their office."
            ).format(committee=office)
        )


async def decide(convo: Conversation, raw_id: str, approve: bool) -> None:
    """✅ applies the new date at once; ❌ first asks why (or "no reason")."""
    loaded = await load_request(convo, raw_id, "extension")
    if loaded is None:
        return
    report, occurrence, requester = loaded
    if not approve:
        await ask_decision_reason(convo, report, "decn", optional=True)
        return
    _ = convo._
    report.status = "approved"
    report.decided_by_user_id = convo.user.id
    report.decided_at = utcnow()
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    if occurrence.status in ACTIVE_STATUSES:
        extend(
            occurrence,
            to_db(local_moment(report.requested_until, DUE_CLOCK, convo.app.settings.tz)),
        )
        convo.session.add(occurrence)
    convo.session.add(report)
    await audit(
        convo.session,
        "extension.approved",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
    )
    t = translator(requester.locale)
    text = t(
        'Your request for more time on "{title}" was approved: the new due date is {until}.'
    ).format(
        title=task_title(task, requester.locale),
        until=format_day(report.requested_until, requester.locale),
    )
    await convo.notify(requester, Outgoing(text=text), f"decision:{report.id}")
    decided = _("Approved: {title}, new due date {until}.").format(
        title=task_title(task, convo.locale),
        until=format_day(report.requested_until, convo.locale),
    )
    asked = await who_asked(convo, report, occurrence, requester)
    await convo.reply(f"{decided}\n{asked}", in_place=True)


async def decline_without_reason(convo: Conversation, raw_id: str) -> None:
    await finish_decline(convo, raw_id, "")


async def finish_decline(convo: Conversation, raw_id: str, reason: str) -> None:
    """Declined: the requester hears the reason and the due date that stands, and whether
    it has already passed."""
    loaded = await load_request(convo, raw_id, "extension")
    if loaded is None:
        return
    report, occurrence, requester = loaded
    _ = convo._
    await record_decline(convo, report, occurrence, "extension.declined", reason)
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    t = translator(requester.locale)
    due = format_day(local_due(convo, occurrence).date(), requester.locale)
    lines = [
        t('Your request for more time on "{title}" was declined.').format(
            title=task_title(task, requester.locale)
        )
    ]
    if report.decision_note:
        lines.append(t("Reason: {reason}").format(reason=report.decision_note))
    lines.append(t("The due date stays {due}.").format(due=due))
    if is_past(occurrence):
        lines.append(
            t("That date has passed: the task is now overdue. Please do it and report it soon.")
        )
    await convo.notify(requester, Outgoing(text="\n".join(lines)), f"decision:{report.id}")
    decided = _("Declined: {title}. The due date stays {due}.").format(
        title=task_title(task, convo.locale),
        due=format_day(local_due(convo, occurrence).date(), convo.locale),
    )
    asked = await who_asked(convo, report, occurrence, requester)
    await convo.reply(f"{decided}\n{asked}", in_place=True)
