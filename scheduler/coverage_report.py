"""The weekly coverage report: who cannot be reached and why, and which roles nobody holds,
per commune — to the district (every commune) and to each commune (its own), apart from the
overdue digest so neither drowns the other."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.i18n import format_number, translator
from bot.core.models import Unit
from bot.core.services.reach import Unreachable
from scheduler.commune_coverage import cannot_reach, communes_of_units
from scheduler.coverage import Gap, role_gaps
from scheduler.reach import reason_in_words

LISTED = 5  # people per commune in one message; the People page has the rest


async def coverage_of(
    session: AsyncSession, app: AppContext, communes: list[Unit], now: datetime
) -> dict[int, tuple[list[Unreachable], list[Gap]]]:
    """Per commune id: the people not reached in the last week, and the roles nobody holds."""
    # The same people as each commune's own copy (scheduler/commune_coverage.py).
    units, commune_of = await communes_of_units(session)
    people = await cannot_reach(session, commune_of, units, now)
    found = {}
    for commune in communes:
        gaps = await role_gaps(session, app.framework, commune.id)
        found[commune.id] = (people.get(commune.id, []), gaps)
    return found


def coverage_text(
    app: AppContext,
    locale: str,
    title_place: str,
    communes: list[Unit],
    coverage: dict[int, tuple[list[Unreachable], list[Gap]]],
) -> str:
    _ = translator(locale)
    lines = [_("📵 Weekly coverage — {unit}").format(unit=title_place)]
    anything = False
    for commune in communes:
        people, gaps = coverage.get(commune.id, ([], []))
        if not people and not gaps:
            continue
        anything = True
        lines.append("")
        lines.append(
            _("{commune}: {people} not reached, {roles} role(s) without anyone").format(
                commune=commune.name,
                people=format_number(len(people), locale),
                roles=format_number(len(gaps), locale),
            )
        )
        for person in people[:LISTED]:
            why = reason_in_words(_, person.reason)
            lines.append(f"• {person.name or '—'} ({person.unit}): {why}")
        if len(people) > LISTED:
            lines.append(
                _("… and {count} more.").format(count=format_number(len(people) - LISTED, locale))
            )
        for gap in gaps[:LISTED]:
            role = app.framework.roles.get(gap.role)
            name = (role.name if locale == "vi" else role.name_en) if role else gap.role
            lines.append(
                "• "
                + _("{unit}: nobody is registered as {role}").format(unit=gap.unit_name, role=name)
            )
    if not anything:
        lines.append(_("Everyone can be reached and every role has someone. Thank you!"))
    return "\n".join(lines)
