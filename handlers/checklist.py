"""A reminder's tasks answered together: "✅ All done" under a message that lists several.

The button carries the day of the reminder (`all:YYYYMMDD`); what it covers is read back from
the `reminders` table: the tasks reminded to this person that day and still open. A task
answered on its own first (more time asked, cannot be done) is left out, so "all done" plus
the exceptions answered with their own buttons covers a whole period in a few taps.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlmodel import col, select

from bot.core.messages import Button
from bot.core.models import Occurrence, Reminder, Report, TaskDefinition, utcnow
from bot.core.services.occurrences import ACTIVE_STATUSES, mark_done
from bot.core.services.people import audit
from bot.core.timeutil import to_db
from handlers.conversation import Conversation

LISTED = 12  # titles shown in the confirmation; more are counted


def _day(raw: str) -> date | None:
    try:
        return datetime.strptime(raw, "%Y%m%d").date()
    except ValueError:
        return None


async def reminded_open(convo: Conversation, day: date) -> list[tuple[Occurrence, TaskDefinition]]:
    """Open tasks reminded to this person on `day`, but not those they answered otherwise."""
    tz = convo.app.settings.tz
    start = to_db(datetime.combine(day, time(0, 0), tzinfo=tz))
    end = to_db(datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz))
    rows = await convo.session.exec(
        select(Reminder, Occurrence, TaskDefinition)
        .join(Occurrence, Reminder.occurrence_id == Occurrence.id)
        .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
        .where(
            Occurrence.unit_id == convo.user.unit_id,
            col(Occurrence.status).in_(ACTIVE_STATUSES),
            # The tap comes from the message itself, so it reached the person even if the
            # sender has not yet recorded the platform's acceptance ("queued" → "sent").
            col(Reminder.outcome).in_(("queued", "sent")),
            col(Reminder.created_at) >= start,
            col(Reminder.created_at) < end,
        )
        .order_by(col(Occurrence.due_at), col(Occurrence.id))
    )
    found: dict[int, tuple[Occurrence, TaskDefinition]] = {}
    for reminder, occurrence, task in rows.all():
        if convo.user.id in (reminder.user_ids or []):
            found.setdefault(occurrence.id, (occurrence, task))
    if not found:
        return []
    answered = set(
        (
            await convo.session.exec(
                select(Report.occurrence_id).where(
                    col(Report.occurrence_id).in_(list(found)),
                    col(Report.kind).in_(["cannot", "extension"]),
                    Report.status == "submitted",
                )
            )
        ).all()
    )
    return [item for key, item in found.items() if key not in answered]


async def review(convo: Conversation, raw_day: str) -> None:
    """First tap: what "all done" would record, to confirm."""
    _ = convo._
    day = _day(raw_day)
    items = await reminded_open(convo, day) if day else []
    if not items:
        await convo.reply(
            _("Nothing from that reminder is still open. Type /viec to see your tasks.")
        )
        return
    lines = [_("Mark these {count} task(s) as done?").format(count=len(items))]
    lines += [f"{number}. {task.title}" for number, (_occ, task) in enumerate(items[:LISTED], 1)]
    if len(items) > LISTED:
        lines.append(_("… and {count} more.").format(count=len(items) - LISTED))
    await convo.reply(
        "\n".join(lines),
        [
            [Button(_("✅ Yes, all done"), f"allok:{raw_day}")],
            [Button(_("One by one"), "menu:viec")],
        ],
    )


async def confirm(convo: Conversation, raw_day: str) -> None:
    """Second tap: each open task of that reminder is reported done, one report each."""
    _ = convo._
    day = _day(raw_day)
    items = await reminded_open(convo, day) if day else []
    if not items:
        await convo.reply(_("This task was already closed. Nothing was changed."))
        return
    now = utcnow()
    for occurrence, _task in items:
        report = Report(
            occurrence_id=occurrence.id,
            user_id=convo.user.id,
            kind="done",
            status="submitted",
            submitted_at=now,
        )
        mark_done(occurrence, convo.user)
        convo.session.add_all([report, occurrence])
        await audit(
            convo.session, "report.checklist_done", f"occurrence:{occurrence.id}", convo.user
        )
    await convo.reply(
        _("Recorded as done: {count} task(s). Thank you!").format(count=len(items))
        + "\n"
        + _("You can still send a photo of the evidence at any time."),
    )


__all__ = ["confirm", "reminded_open", "review"]
