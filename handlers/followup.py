"""District staff tap "Đã đôn đốc" under a commune in a digest: recorded (audited) and shown
in their next digest, so colleagues see which communes were already followed up."""

from __future__ import annotations

from bot.core.models import Unit
from bot.core.services.follow_ups import record_follow_up
from bot.core.services.occurrences import ancestor_ids
from bot.core.services.people import audit
from bot.core.unit_words import place
from handlers.conversation import Conversation


async def _supervises(convo: Conversation, commune: Unit) -> bool:
    settings = convo.app.settings
    if convo.user.unit_id in await ancestor_ids(convo.session, commune.id):
        return convo.user.unit_id != commune.id
    return (
        settings.structure == "two_tier"
        and convo.unit is not None
        and convo.unit.code == settings.district_substitute
    )


async def followed_up(convo: Conversation, arg: str) -> None:
    _ = convo._
    commune = await convo.session.get(Unit, int(arg)) if arg.isdigit() else None
    if (
        commune is None
        or commune.level != "commune"
        or convo.user is None
        or not await _supervises(convo, commune)
    ):
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(_("This unit is not one that yours supervises."))
        return
    await record_follow_up(convo.session, convo.user, commune.id, commune.name, via="chat")
    await convo.reply(
        _("Noted: you followed up with {commune}. It will show in your next digest.").format(
            commune=place(commune, convo.locale)
        )
    )
