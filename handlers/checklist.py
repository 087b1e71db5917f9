"""A reminder's tasks answered together: "✅ All done" under a message that lists several.

The button carries the day of the reminder (`all:YYYYMMDD`); what it covers is read back from
the `reminders` table: the tasks reminded to this person that day and still open. A task
answered on its own first (more time asked, cannot be done) is left out, so "all done" plus
the exceptions answered with their own buttons covers a whole period in a few taps.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlmodel import col, select

from bot.core.i18n import Translator
from bot.core.messages import Button
from bot.core.models import Occurrence, Reminder, Report, TaskDefinition, utcnow
from bot.core.services.occurrences import ACTIVE_STATUSES, mark_done
from bot.core.services.people import audit
from bot.core.timeutil import to_db
from handlers.conversation import Conversation

LISTED = 12  # titles shown in the confirmation; more are counted


def one_at_a_time(_: Translator) -> str:
    return _("📋 One at a time")


def parse_day(raw: str) -> date | None:
    try:
        return datetime.strptime(raw, "%Y%m%d").date()
    except ValueError:
        return None


async def reminded_items(
    convo: Conversation, day: date, open_only: bool = True
) -> list[tuple[Occurrence, TaskDefinition]]:
    """Tasks reminded to this person on `day`, soonest due first (`open_only`: still open)."""
    tz = convo.app.settings.tz
    start = to_db(datetime.combine(day, time(0, 0), tzinfo=tz))
    end = to_db(datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz))
    query = (
        select(Reminder, Occurrence, TaskDefinition)
        .join(Occurrence, Reminder.occurrence_id == Occurrence.id)
        .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
        .where(
            Occurrence.unit_id == convo.user.unit_id,
            # The tap comes from the message itself, so it reached the person even if the
            # sender has not yet recorded the platform's acceptance ("queued" → "sent").
            col(Reminder.outcome).in_(("queued", "sent")),
            col(Reminder.created_at) >= start,
            col(Reminder.created_at) < end,
        )
        .order_by(col(Occurrence.due_at), col(Occurrence.id))
    )
    if open_only:
        query = query.where(col(Occurrence.status).in_(ACTIVE_STATUSES))
    found: dict[int, tuple[Occurrence, TaskDefinition]] = {}
    for reminder, occurrence, task in (await convo.session.exec(query)).all():
        if convo.user.id in (reminder.user_ids or []):
            found.setdefault(occurrence.id, (occurrence, task))
    return list(found.values())


async def pending_requests(convo: Conversation, occurrence_ids: list[int]) -> dict[int, str]:
    """Occurrence → "cannot" or "extension" for the requests still waiting for a decision."""
    if not occurrence_ids:
        return {}
    rows = await convo.session.exec(
        select(Report.occurrence_id, Report.kind).where(
            col(Report.occurrence_id).in_(occurrence_ids),
            col(Report.kind).in_(["cannot", "extension"]),
            Report.status == "submitted",
        )
    )
    return dict(rows.all())


async def reminded_open(convo: Conversation, day: date) -> list[tuple[Occurrence, TaskDefinition]]:
    """Open tasks reminded to this person on `day`, but not those they answered otherwise."""
    found = await reminded_items(convo, day)
    asked = await pending_requests(convo, [occurrence.id for occurrence, _task in found])
    return [item for item in found if item[0].id not in asked]


async def review(convo: Conversation, raw_day: str) -> None:
    """First tap: what "all done" would record, to confirm."""
    _ = convo._
    day = parse_day(raw_day)
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
            # Not all done: the tasks one at a time, each answered on its own (handlers/walk.py).
            [Button(one_at_a_time(_), f"one:{raw_day}")],
        ],
    )


async def confirm(convo: Conversation, raw_day: str) -> None:
    """Second tap: each open task of that reminder is reported done, one report each."""
    _ = convo._
    day = parse_day(raw_day)
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


__all__ = ["confirm", "parse_day", "pending_requests", "reminded_items", "reminded_open", "review"]
