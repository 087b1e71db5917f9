"""District staff: `/baocao`, every commune's done / excused / open / overdue, worst first,
and a tap on a commune for its villages."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from bot.core.messages import Button
from bot.core.models import Unit
from bot.core.services.occurrences import RECENT_WINDOW
from bot.core.services.people import audit
from bot.core.services.status import count_statuses
from bot.core.timeutil import to_db
from bot.core.unit_words import place
from bot.core.vietnamese_order import sort_key
from handlers.conversation import Conversation
from handlers.officer import counts_line, no_units_below, ranked_header


async def commune_report(convo: Conversation) -> None:
    communes = list(
        (
            await convo.session.exec(
                select(Unit).where(Unit.parent_id == convo.user.unit_id, Unit.level == "commune")
            )
        ).all()
    )
    if not communes:
        await convo.reply(no_units_below(convo, "commune"))
        return
    now = datetime.now(UTC)
    rows = await count_statuses(
        convo.session, communes, to_db(now - RECENT_WINDOW), to_db(now), include_below=True
    )
    rows.sort(key=lambda t: (-t.overdue, t.rate, sort_key(t.unit.name)))
    lines = [ranked_header(convo, communes, "commune")]
    lines += [f"{'⚠️ ' if t.overdue else '• '}{t.unit.name}: {counts_line(convo, t)}" for t in rows]
    buttons = [[Button(t.unit.name[:40], f"com:{t.unit.id}")] for t in rows[:20]]
    await convo.reply("\n".join(lines), buttons)


async def commune_detail(convo: Conversation, raw_id: str) -> None:
    """One commune's villages, worst first (the district's drill-down from /baocao)."""
    commune = await convo.session.get(Unit, int(raw_id)) if raw_id.isdigit() else None
    if commune is None or commune.level != "commune" or commune.parent_id != convo.user.unit_id:
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(
            convo._("This unit is not under {unit}.").format(unit=place(convo.unit, convo.locale))
        )
        return
    found = await convo.session.exec(
        select(Unit).where(Unit.parent_id == commune.id, Unit.level == "village")
    )
    villages = sorted(found.all(), key=lambda unit: sort_key(unit.name))
    now = datetime.now(UTC)
    rows = await count_statuses(convo.session, villages, to_db(now - RECENT_WINDOW), to_db(now))
    rows.sort(key=lambda t: (-t.overdue, t.rate, sort_key(t.unit.name)))
    lines = [ranked_header(convo, villages, "village", commune)]
    lines += [f"• {t.unit.name}: {counts_line(convo, t)}" for t in rows]
    await convo.reply("\n".join(lines))
