"""District staff: `/baocao`, every commune's done / excused / open / overdue, worst first,
and a tap on a commune for its villages.

A district has a few dozen communes at most, but with no districts (the 2025 structure) the
province committee oversees every commune and ward of the province (65 in Khánh Hòa): the
ranking then comes a page at a time, each commune of the page with its own button, and the
page turns in place where the channel can edit."""

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
from handlers.officer import MAX_BUTTONS, counts_line, no_units_below, ranked_header

PAGE = MAX_BUTTONS  # communes per /baocao page: one button each
MAX_PAGE_DIGITS = 4  # a forged page number longer than this is read as page 1


async def commune_report(convo: Conversation) -> None:
    await _commune_page(convo, 1)


async def commune_report_page(convo: Conversation, arg: str) -> None:
    """A page of the ranking (the ⬅️ / ➡️ buttons). A page past the end shows the last one."""
    page = int(arg) if arg.isdigit() and len(arg) <= MAX_PAGE_DIGITS else 1
    await _commune_page(convo, max(page, 1), in_place=True)


async def _commune_page(convo: Conversation, page: int, in_place: bool = False) -> None:
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
    pages = -(-len(rows) // PAGE)
    page = min(page, pages)
    first = (page - 1) * PAGE
    shown = rows[first : first + PAGE]
    lines = [ranked_header(convo, communes, "commune")]
    if pages > 1:
        lines.append(
            convo._("Page {page}/{pages} ({first}–{last} of {total})").format(
                page=page, pages=pages, first=first + 1, last=first + len(shown), total=len(rows)
            )
        )
    lines += [f"{'⚠️ ' if t.overdue else '• '}{t.unit.name}: {counts_line(convo, t)}" for t in shown]
    buttons = [[Button(t.unit.name[:40], f"com:{t.unit.id}")] for t in shown]
    buttons += _page_turns(convo, page, pages, len(rows))
    await convo.reply("\n".join(lines), buttons, in_place=in_place)


def _page_turns(convo: Conversation, page: int, pages: int, total: int) -> list[list[Button]]:
    """ "⬅️ Quay lại: 1–20" and "➡️ Xem tiếp: 41–60", on one row, where there is such a page."""
    turns = []
    if page > 1:
        start = (page - 2) * PAGE
        label = convo._("⬅️ Back: {first}–{last}").format(first=start + 1, last=start + PAGE)
        turns.append(Button(label, f"comp:{page - 1}"))
    if page < pages:
        start = page * PAGE
        last = min(start + PAGE, total)
        label = convo._("➡️ Next: {first}–{last}").format(first=start + 1, last=last)
        turns.append(Button(label, f"comp:{page + 1}"))
    return [turns] if turns else []


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
