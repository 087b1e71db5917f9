"""A period code in words for a report: "2026-12" → "Tháng 12/2026", "2026-H2" → "6 tháng cuối
năm 2026", "2026-2027.1" → "Năm học 2026–2027, học kỳ 1". An unknown code is shown as it is."""

from __future__ import annotations

import re
from datetime import date, datetime

from bot.core.i18n import Translator, format_short_day
from bot.core.services.occurrences import RECENT_WINDOW
from scheduler.policy import Policies

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
HALF = re.compile(r"^(\d{4})-H([12])$")
YEAR = re.compile(r"^(\d{4})$")
SCHOOL = re.compile(r"^(\d{4})-(\d{4})(?:\.(\d+))?$")


def period_in_words(_: Translator, code: str) -> str:
    if found := MONTH.match(code):
        return _("Month {month}/{year}").format(month=found[2], year=found[1])
    if found := QUARTER.match(code):
        return _("Quarter {quarter}/{year}").format(quarter=found[2], year=found[1])
    if found := HALF.match(code):
        if found[2] == "1":
            return _("First half of {year}").format(year=found[1])
        return _("Second half of {year}").format(year=found[1])
    if found := YEAR.match(code):
        return _("Year {year}").format(year=found[1])
    if found := SCHOOL.match(code):
        years = f"{found[1]}–{found[2]}"
        if found[3]:
            return _("School year {years}, term {term}").format(years=years, term=found[3])
        return _("School year {years}").format(years=years)
    return code


def recent_period_line(_: Translator, policies: Policies, today: date) -> str:
    """The period a digest counts, as its line says: the tasks due in the last three months."""
    start = policies.local_day(
        datetime.combine(today, datetime.min.time(), tzinfo=policies.tz) - RECENT_WINDOW
    )
    return _("Tasks due since {start} (the last 3 months)").format(start=format_short_day(start))
