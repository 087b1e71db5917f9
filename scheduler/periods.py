"""Turn a periodic schedule rule into concrete periods: key, window start and due date."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from bot.core.framework.schema import ScheduleRule, parse_month_day

SCHOOL_YEAR_START_MONTH = 9  # Vietnamese school years run from September to May


@dataclass(frozen=True)
class Period:
    key: str  # "2026-11", "2026-Q4", "2026-H2", "2026", "2026-2027", "2026-2027.2"
    opens: date
    due: date


def _month_start(year: int, month: int) -> date:
    return date(year, month, 1)


def _periods_of_year(rule: ScheduleRule, year: int) -> Iterator[Period]:
    if rule.period == "monthly":
        for month in range(1, 13):
            yield Period(
                f"{year}-{month:02d}", _month_start(year, month), date(year, month, rule.due_day)
            )
    elif rule.period == "quarterly":
        for quarter in range(1, 5):
            first = 3 * quarter - 2
            yield Period(
                f"{year}-Q{quarter}",
                _month_start(year, first),
                date(year, first + 2, rule.due_day),
            )
    elif rule.period == "semiannual":
        first, second = (parse_month_day(text, year) for text in rule.due_dates)
        yield Period(f"{year}-H1", date(year, 1, 1), first)
        yield Period(f"{year}-H2", date(year, 7, 1), second)
    elif rule.period == "annual":
        yield Period(f"{year}", date(year, 1, 1), parse_month_day(rule.due_dates[0], year))
    elif rule.period == "school_year":
        yield from _school_year(rule, year)


def _school_year(rule: ScheduleRule, start_year: int) -> Iterator[Period]:
    """Due dates in September–December belong to the start year, the rest to the next one."""
    dues = sorted(
        parse_month_day(
            text, start_year if int(text[:2]) >= SCHOOL_YEAR_START_MONTH else start_year + 1
        )
        for text in rule.due_dates
    )
    base = f"{start_year}-{start_year + 1}"
    opens = date(start_year, SCHOOL_YEAR_START_MONTH, 1)
    for index, due in enumerate(dues, start=1):
        key = base if len(dues) == 1 else f"{base}.{index}"
        yield Period(key, opens, due)
        opens = due + timedelta(days=1)


def periods_between(rule: ScheduleRule, first_due: date, last_open: date) -> list[Period]:
    """Periods still due on or after `first_due` that have opened by `last_open`."""
    if rule.kind != "periodic":
        return []
    found = []
    for year in range(first_due.year - 1, last_open.year + 1):
        for period in _periods_of_year(rule, year):
            if period.due >= first_due and period.opens <= last_open:
                found.append(period)
    return found
