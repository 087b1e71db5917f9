"""District staff: `/baocao`, every commune's done / open / overdue, worst first."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from bot.models import Unit
from bot.services.occurrences import RECENT_WINDOW, rollup_tallies
from bot.timeutil import to_db
from bot.vietnamese_order import sort_key
from handlers.conversation import Conversation
from handlers.officer import counts, no_units_below, ranked_header


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
    rows = await rollup_tallies(convo.session, communes, to_db(now - RECENT_WINDOW), to_db(now))
    rows.sort(key=lambda t: (-t.overdue, t.rate, sort_key(t.unit.name)))
    lines = [ranked_header(convo, communes, "commune")]
    lines += [
        f"{'⚠️ ' if t.overdue else '• '}{t.unit.name}: {counts(convo, t.done, t.open, t.overdue)}"
        for t in rows
    ]
    await convo.reply("\n".join(lines))
