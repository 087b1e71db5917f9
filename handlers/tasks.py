"""`/viec`: the open tasks, soonest due first, each with its four answers."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.models import OccurrenceStatus
from bot.core.services.occurrences import LATE_STATUSES, open_for_user
from bot.core.timeutil import to_db
from handlers.common import dimension_label, due_text, task_buttons
from handlers.conversation import Conversation

MAX_LISTED = 4
MAX_COUNTED = 100


def status_mark(status: str) -> str:
    return "⚠️ " if status in LATE_STATUSES else ""


async def list_tasks(convo: Conversation) -> None:
    """A header and at most four task cards: five messages arrive as one burst on every
    channel (Telegram allows about one message per second per chat beyond a short burst)."""
    _ = convo._
    assert convo.user is not None
    now = to_db(datetime.now(UTC))
    items = await open_for_user(convo.session, convo.app.framework, convo.user, now, MAX_COUNTED)
    if not items:
        await convo.reply(_("You have no open tasks right now. Thank you!"))
        return
    header = _("You have {count} open task(s), soonest due first:").format(count=len(items))
    if len(items) > MAX_LISTED:
        header += "\n" + _(
            "Here are the first {shown}; type /viec again when you have answered them."
        ).format(shown=MAX_LISTED)
    await convo.reply(header)
    for occurrence, task in items[:MAX_LISTED]:
        due = due_text(convo, occurrence)
        due_line = (
            _("Due: {due}").format(due=due)
            if occurrence.status == OccurrenceStatus.open
            else _("Due: {due} (overdue)").format(due=due)
        )
        text = (
            f"{status_mark(occurrence.status)}[{dimension_label(convo, task)}] {task.title}\n"
            + due_line
            + "\n"
            + _("Evidence: {evidence}").format(evidence=task.evidence or "—")
        )
        await convo.reply(text, task_buttons(convo, occurrence.id))
