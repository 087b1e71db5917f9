""" "Không thực hiện được": the reason is asked and goes to the level above as a request.

Accepted, the occurrence is excused with the reason on record; rejected (with a reason), it
stays open and the requester is told why. An officer reporting for a village below decides it
at once: they are the level that would accept it.
"""

from __future__ import annotations

from sqlmodel import col, select

from bot.core.i18n import format_day, translator
from bot.core.messages import Button, Outgoing
from bot.core.models import Occurrence, OccurrenceStatus, Report, TaskDefinition, Unit, User, utcnow
from bot.core.services.occurrences import ACTIVE_STATUSES
from bot.core.services.people import audit
from bot.core.task_text import task_title
from bot.core.unit_words import committee
from handlers.common import load_occurrence, local_due, person
from handlers.conversation import Conversation
from handlers.requests import (
    approvers_for,
    ask_decision_reason,
    is_past,
    load_request,
    record_decline,
    who_asked,
)
from scheduler.reminders import task_buttons as answer_buttons


async def village_heads(convo: Conversation, occurrence: Occurrence) -> list[User]:
    """Who an officer reports for: the active people of the occurrence's unit."""
    rows = await convo.session.exec(
        select(User)
        .where(User.unit_id == occurrence.unit_id, col(User.active).is_(True))
        .order_by(col(User.id))
    )
    return list(rows.all())


def on_behalf(convo: Conversation, occurrence: Occurrence) -> bool:
    return convo.user is not None and convo.user.unit_id != occurrence.unit_id


async def ask_cannot(convo: Conversation, raw_id: str) -> None:
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    if occurrence.status not in ACTIVE_STATUSES:
        await convo.reply(
            convo._("This task is already closed. Type /viec to see your open tasks."),
            in_place=True,
        )
        return
    convo.set_state("awaiting_cannot_reason", occurrence_id=occurrence.id)
    await convo.reply(
        convo._("{title}: please write briefly why it cannot be done.").format(title=task.title),
        in_place=True,
    )


async def cannot_reason(convo: Conversation) -> None:
    _ = convo._
    occurrence = await convo.session.get(Occurrence, int(convo.state_data["occurrence_id"]))
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    reason = convo.incoming.text.strip()[:2000]
    convo.clear_state()
    if occurrence.status not in ACTIVE_STATUSES:
        await convo.reply(_("This task was already closed. Nothing was changed."))
        return
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
    unit = await convo.session.get(Unit, occurrence.unit_id)
    if on_behalf(convo, occurrence):
        heads = await village_heads(convo, occurrence)
        report.on_behalf_of_user_id = heads[0].id if heads else None
        await _accept(convo, report, occurrence, heads, task)
        await convo.reply(
            _('Recorded for {unit}: "{title}" cannot be done. Reason: {reason}').format(
                unit=unit.name, title=task.title, reason=reason
            ),
            [[Button(f"📋 {unit.name}"[:40].rstrip(), f"vil:{unit.id}")]],
        )
        return
    reached = 0
    for approver in await approvers_for(convo, occurrence, convo.user):
        t = translator(approver.locale)
        reached += await convo.notify(
            approver,
            Outgoing(
                text=t('{who} cannot do "{title}".\nReason: {reason}').format(
                    who=person(convo, convo.user, unit, approver.locale),
                    title=task_title(task, approver.locale),
                    reason=reason,
                )
                + "\n"
                + t("Accept it as not doable, or reject it (the task then stays open)?"),
                buttons=[
                    [
                        Button(t("✅ Accept"), f"cnok:{report.id}"),
                        Button(t("❌ Reject"), f"cnno:{report.id}"),
                    ]
                ],
            ),
            f"cannot:{report.id}",
        )
    await audit(
        convo.session,
        "cannot.requested",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
    )
    if reached:
        await convo.reply(
            _(
                'Sent to the commune committee: "{title}" cannot be done. The task stays open until they decide; I will tell you their answer.'
            ).format(title=task.title)
        )
    else:
        await convo.reply(
            _(
                "Your request is recorded, but nobody at the level above is registered yet. Please call the commune office."
            )
        )


async def _accept(
    convo: Conversation,
    report: Report,
    occurrence: Occurrence,
    told: list[User],
    task: TaskDefinition,
) -> None:
    report.status = "approved"
    report.decided_by_user_id = convo.user.id
    report.decided_at = utcnow()
    occurrence.status = OccurrenceStatus.excused
    occurrence.note = report.note
    occurrence.updated_at = utcnow()
    convo.session.add_all([report, occurrence])
    await audit(
        convo.session,
        "cannot.accepted",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
        on_behalf_of=report.on_behalf_of_user_id,
    )
    for someone in told:
        if someone.id == convo.user.id:
            continue
        t = translator(someone.locale)
        await convo.notify(
            someone,
            Outgoing(
                text=t('"{title}" is recorded as not doable. Reason: {reason}').format(
                    title=task.title, reason=report.note or "—"
                )
            ),
            f"decision:{report.id}",
        )


async def accept(convo: Conversation, raw_id: str) -> None:
    loaded = await load_request(convo, raw_id, "cannot")
    if loaded is None:
        return
    report, occurrence, requester = loaded
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    if occurrence.status not in ACTIVE_STATUSES:
        await convo.reply(
            convo._("This task was already closed. Nothing was changed."), in_place=True
        )
        return
    await _accept(convo, report, occurrence, [requester], task)
    decided = convo._('Accepted: "{title}" is recorded as not doable, with the reason.').format(
        title=task.title
    )
    asked = await who_asked(convo, report, occurrence, requester)
    await convo.reply(f"{decided}\n{asked}", in_place=True)


async def reject(convo: Conversation, raw_id: str) -> None:
    loaded = await load_request(convo, raw_id, "cannot")
    if loaded is None:
        return
    await ask_decision_reason(convo, loaded[0], "cnrj", optional=False)


async def finish_reject(convo: Conversation, raw_id: str, reason: str) -> None:
    loaded = await load_request(convo, raw_id, "cannot")
    if loaded is None:
        return
    report, occurrence, requester = loaded
    _ = convo._
    await record_decline(convo, report, occurrence, "cannot.rejected", reason)
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    t = translator(requester.locale)
    due = format_day(local_due(convo, occurrence).date(), requester.locale)
    lines = [
        t('{committee} did not accept that "{title}" cannot be done.').format(
            committee=committee(convo.unit, requester.locale),
            title=task_title(task, requester.locale),
        ),
        t("Reason: {reason}").format(reason=report.decision_note),
        t("The task stays open, due {due}.").format(due=due),
    ]
    if is_past(occurrence):
        lines.append(
            t("That date has passed: the task is now overdue. Please do it and report it soon.")
        )
    await convo.notify(
        requester,
        Outgoing(text="\n".join(lines), buttons=answer_buttons(t, occurrence.id, None)),
        f"decision:{report.id}",
    )
    decided = _('Rejected: "{title}" stays open.').format(title=task.title)
    asked = await who_asked(convo, report, occurrence, requester)
    await convo.reply(f"{decided}\n{asked}")
