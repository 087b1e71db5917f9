"""District staff: `/baocao`, every commune's done / open / overdue, worst first."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from bot.core.models import Unit
from bot.core.services.occurrences import RECENT_WINDOW, rollup_tallies
from bot.core.timeutil import to_db
from handlers.conversation import Conversation


async def commune_report(convo: Conversation) -> None:
    _ = convo._
    communes = list(
        (
            await convo.session.exec(
                select(Unit).where(Unit.parent_id == convo.user.unit_id, Unit.level == "commune")
            )
        ).all()
    )
    if not communes:
        await convo.reply(_("No communes are recorded under your district yet."))
        return
    now = datetime.now(UTC)
    rows = await rollup_tallies(convo.session, communes, to_db(now - RECENT_WINDOW), to_db(now))
    rows.sort(key=lambda t: (-t.overdue, t.rate, t.unit.name))
    lines = [
        _("Communes of {unit} (last 3 months): done / open / overdue").format(unit=convo.unit.name)
    ]
    lines += [
        f"{'⚠️ ' if t.overdue else ''}{t.unit.name}: {t.done} / {t.open} / {t.overdue}" for t in rows
    ]
    await convo.reply("\n".join(lines))
