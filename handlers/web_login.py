"""`/web`: a one-time link to the dashboard, for the person who asked, valid ten minutes."""

from __future__ import annotations

from bot.core.services.people import audit
from bot.core.services.web_login import create_login_link
from handlers.conversation import Conversation


async def request_link(convo: Conversation) -> None:
    _ = convo._
    url = await create_login_link(convo.session, convo.user, convo.app.settings)
    await audit(
        convo.session, "web.link_created", f"user:{convo.user.id}", convo.user, via=convo.subject
    )
    await convo.reply(
        _(
            "Your link to the dashboard: {url}\n"
            "It works once, for the next 10 minutes, and only for you: please do not forward it."
        ).format(url=url)
    )
