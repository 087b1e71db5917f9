"""The level above reviews a done report: its photos (sent as photos), note, who and when,
the camera's time; accepted, or returned with a reason (the task reopens, the head is told)."""

from __future__ import annotations

from sqlmodel import col, select

from bot.core.i18n import format_day, translator
from bot.core.messages import Button, Outgoing
from bot.core.models import (
    Evidence,
    Occurrence,
    OccurrenceStatus,
    Report,
    TaskDefinition,
    Unit,
    User,
    utcnow,
)
from bot.core.services.evidence_checks import flag_sentences, flags_of_reports
from bot.core.services.occurrences import may_act_on
from bot.core.services.people import audit
from bot.core.task_text import task_title
from bot.core.timeutil import from_db
from handlers.common import person
from handlers.conversation import Conversation
from handlers.requests import ask_decision_reason, is_past, oversees
from scheduler.reminders import task_buttons as answer_buttons

REVIEW_LABELS = {"accepted": "✅", "returned": "↩️"}


def when_text(convo: Conversation, moment) -> str:  # noqa: ANN001  (aware datetime)
    local = from_db(moment).astimezone(convo.app.settings.tz)
    return f"{local:%H:%M} {format_day(local.date(), convo.locale)}"


async def _load(convo: Conversation, raw_id: str) -> tuple[Report, Occurrence, User] | None:
    """A submitted done report this person may see (their own, or a unit below theirs)."""
    report = await convo.session.get(Report, int(raw_id)) if raw_id.isdigit() else None
    occurrence = await convo.session.get(Occurrence, report.occurrence_id) if report else None
    if (
        report is None
        or occurrence is None
        or report.kind != "done"
        or report.status != "submitted"
        or not await may_act_on(convo.session, convo.user, occurrence)
    ):
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(convo._("This report cannot be opened."))
        return None
    reporter = await convo.session.get(User, report.user_id)
    return report, occurrence, reporter


def may_review(convo: Conversation, report: Report, reporter: User) -> bool:
    return convo.user.id != report.user_id and oversees(convo, convo.user.role, reporter.role)


async def open_report(convo: Conversation, raw_id: str) -> None:
    loaded = await _load(convo, raw_id)
    if loaded is None:
        return
    report, occurrence, reporter = loaded
    _ = convo._
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    unit = await convo.session.get(Unit, occurrence.unit_id)
    photos = list(
        (
            await convo.session.exec(
                select(Evidence).where(Evidence.report_id == report.id).order_by(col(Evidence.id))
            )
        ).all()
    )
    lines = [
        f"{unit.name}: {task_title(task, convo.locale)}",
        _("Reported by: {who}").format(who=person(convo, reporter, unit)),
        _("Sent: {when}").format(when=when_text(convo, report.submitted_at)),
        _("Note: {note}").format(note=report.note or "—"),
        _("Photos: {count}").format(count=len(photos)),
    ]
    if report.on_behalf_of_user_id is not None or reporter.unit_id != occurrence.unit_id:
        lines.append(_("Reported on behalf of {unit}.").format(unit=unit.name))
    flags = (await flags_of_reports(convo.session, [report.id]))[report.id]
    if flags:  # what the evidence checks found: for the reviewer to look at, not a verdict
        sentences = await flag_sentences(convo.session, flags, _, convo.app.settings.tz)
        lines += [f"⚠️ {sentence}" for sentence in sentences]
    if report.review_status:
        reviewer = await convo.session.get(User, report.reviewed_by_user_id)
        lines.append(
            _("Reviewed: {mark} by {who}").format(
                mark=REVIEW_LABELS.get(report.review_status, report.review_status),
                who=(reviewer.name if reviewer and reviewer.name else "—"),
            )
        )
    buttons = []
    if not report.review_status and may_review(convo, report, reporter):
        buttons = [
            [
                Button(_("✅ Accept the report"), f"rva:{report.id}"),
                Button(_("↩️ Return it"), f"rvr:{report.id}"),
            ]
        ]
    await convo.reply("\n".join(lines), buttons)
    for number, photo in enumerate(photos, start=1):
        taken = (
            _("taken {when}").format(
                when=f"{photo.taken_at:%H:%M %d/%m/%Y}"  # the camera's clock, zone unknown
            )
            if photo.taken_at
            else _("no camera time")
        )
        await convo.reply(
            _("Photo {number}/{count}, {taken}").format(
                number=number, count=len(photos), taken=taken
            ),
            photo_path=photo.path,
        )


async def _reviewable(convo: Conversation, raw_id: str) -> tuple[Report, Occurrence, User] | None:
    loaded = await _load(convo, raw_id)
    if loaded is None:
        return None
    report, _occurrence, reporter = loaded
    if not may_review(convo, report, reporter):
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(convo._("Only the level above may review this report."))
        return None
    if report.review_status:
        await convo.reply(convo._("This report was already reviewed."), in_place=True)
        return None
    return loaded


async def accept_report(convo: Conversation, raw_id: str) -> None:
    loaded = await _reviewable(convo, raw_id)
    if loaded is None:
        return
    report, occurrence, _reporter = loaded
    report.review_status = "accepted"
    report.reviewed_by_user_id = convo.user.id
    report.reviewed_at = utcnow()
    convo.session.add(report)
    # A flagged photo accepted anyway: the record says who looked at it and took it.
    for flag in (await flags_of_reports(convo.session, [report.id]))[report.id]:
        flag.accepted_by_user_id, flag.accepted_at = convo.user.id, report.reviewed_at
        convo.session.add(flag)
    await audit(
        convo.session,
        "report.accepted",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
    )
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    await convo.reply(
        convo._('Accepted: the report on "{title}".').format(title=task.title), in_place=True
    )


async def return_report(convo: Conversation, raw_id: str) -> None:
    loaded = await _reviewable(convo, raw_id)
    if loaded is None:
        return
    await ask_decision_reason(convo, loaded[0], "rvrt", optional=False)


async def finish_return(convo: Conversation, raw_id: str, reason: str) -> None:
    """Returned: the report stays on record as returned, and the task is open again."""
    loaded = await _reviewable(convo, raw_id)
    if loaded is None:
        return
    report, occurrence, reporter = loaded
    convo.clear_state()
    report.review_status = "returned"
    report.reviewed_by_user_id = convo.user.id
    report.reviewed_at = utcnow()
    report.review_note = reason[:2000]
    occurrence.status = OccurrenceStatus.overdue if is_past(occurrence) else OccurrenceStatus.open
    occurrence.done_at = None
    occurrence.done_by_user_id = None
    occurrence.updated_at = utcnow()
    convo.session.add_all([report, occurrence])
    await audit(
        convo.session,
        "report.returned",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
        reason=report.review_note,
    )
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    told = [reporter]
    if report.on_behalf_of_user_id is not None:
        told = [await convo.session.get(User, report.on_behalf_of_user_id)]
    for someone in told:
        t = translator(someone.locale)
        await convo.notify(
            someone,
            Outgoing(
                text=t(
                    'Your report on "{title}" was returned by the commune committee.\nReason: {reason}\nThe task is open again: please report it once more.'
                ).format(title=task.title, reason=report.review_note),
                buttons=answer_buttons(t, occurrence.id, None),
            ),
            f"review:{report.id}",
        )
    await convo.reply(
        convo._('Returned: "{title}" is open again and the village head was told.').format(
            title=task.title
        )
    )
