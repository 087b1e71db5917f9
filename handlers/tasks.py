"""`/viec`: the open tasks, soonest due first, each with its four answers."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.models import OccurrenceStatus
from bot.services.occurrences import LATE_STATUSES, open_for_user
from bot.timeutil import to_db
from handlers.common import dimension_label, due_text, task_buttons
from handlers.conversation import Conversation

MAX_LISTED = 10


def status_mark(status: str) -> str:
    return "⚠️ " if status in LATE_STATUSES else ""


async def list_tasks(convo: Conversation) -> None:
    _ = convo._
    assert convo.user is not None
    now = to_db(datetime.now(UTC))
    items = await open_for_user(convo.session, convo.app.framework, convo.user, now, MAX_LISTED)
    if not items:
        await convo.reply(_("You have no open tasks right now. Thank you!"))
        return
    await convo.reply(
        _("You have {count} open task(s), soonest due first:").format(count=len(items))
    )
    for occurrence, task in items:
        late = _(" (overdue)") if occurrence.status != OccurrenceStatus.open else ""
        text = (
            f"{status_mark(occurrence.status)}[{dimension_label(convo, task)}] {task.title}\n"
            + _("Due: {due}{late}").format(due=due_text(convo, occurrence), late=late)
            + "\n"
            + _("Evidence: {evidence}").format(evidence=task.evidence or "—")
        )
        await convo.reply(text, task_buttons(convo, occurrence.id))
