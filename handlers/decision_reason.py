"""The reason typed after ❌ Decline, ❌ Reject or ↩️ Return: handed to what was declined."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers import cannot, extension, review
from handlers.conversation import Conversation

Finish = Callable[[Conversation, str, str], Awaitable[None]]

FINISHERS: dict[str, Finish] = {
    "decn": extension.finish_decline,
    "cnrj": cannot.finish_reject,
    "rvrt": review.finish_return,
}


async def typed_reason(convo: Conversation) -> None:
    text = convo.incoming.text.strip()
    if not text:
        await convo.reply(convo._("Please write briefly why (the requester will read it)."))
        return
    finish = FINISHERS.get(str(convo.state_data.get("action")))
    if finish is None:
        convo.clear_state()
        await convo.reply(convo._("This request no longer exists."))
        return
    await finish(convo, str(convo.state_data.get("report_id")), text)
