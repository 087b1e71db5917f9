"""The trend chart of a weekly district digest: its weeks counted (scheduler/trend.py), its
title in the reader's words, the PNG written beside the digest's other files."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.i18n import format_number, translator
from bot.core.models import Unit
from bot.core.unit_words import place
from scheduler.policy import Policies
from scheduler.trend import WEEKS, Week, weekly_trend, weeks_with_data
from scheduler.trend_chart import trend_chart


def trend_title(weeks: list[Week], unit: Unit, locale: str) -> str:
    """What, for whom; the weeks it covers; and, while the record is younger than the chart,
    since when there is anything to show."""
    _ = translator(locale)
    lines = [
        _("Trend over the last {weeks} weeks — {unit}").format(
            weeks=format_number(len(weeks), locale), unit=place(unit, locale)
        ),
        _("{start}–{end}: the tasks due each week, as they stood at its end").format(
            start=f"{weeks[0].start:%d/%m}", end=f"{weeks[-1].end:%d/%m/%Y}"
        ),
        _("Above each column: overdue tasks (red) and the completion rate"),
    ]
    shown = weeks_with_data(weeks)
    if shown < len(weeks):
        first = next(week for week in weeks if week.counts is not None)
        lines.append(
            _("Records begin in the week of {day}: {count} of {weeks} weeks so far.").format(
                day=f"{first.start:%d/%m/%Y}",
                count=format_number(shown, locale),
                weeks=format_number(len(weeks), locale),
            )
        )
    return "\n".join(lines)


def trend_caption(locale: str, weeks: int = WEEKS) -> str:
    _ = translator(locale)
    return _("Week by week: overdue tasks and the completion rate ({weeks} weeks)").format(
        weeks=format_number(weeks, locale)
    )


async def write_trend(
    session: AsyncSession,
    policies: Policies,
    unit: Unit,
    unit_ids: list[int],
    today: date,
    data_dir: Path,
    path: Path,
    locale: str,
) -> str:
    """The chart's path under `data_dir`, or "" when no week has anything on record yet (a
    chart of empty weeks tells nobody anything)."""
    weeks = await weekly_trend(session, unit_ids, today, policies.tz)
    if not weeks_with_data(weeks):
        return ""
    await asyncio.to_thread(
        trend_chart, weeks, trend_title(weeks, unit, locale), data_dir / path, locale
    )
    return path.as_posix()
