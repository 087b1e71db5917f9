"""The period a page counts: a month (`2026-11`), a quarter (`2026-Q4`) or a year (`2026`),
by the local calendar; an occurrence belongs to the period its due date falls in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from bot.core.timeutil import to_db

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True)
class Period:
    kind: str  # month | quarter | year
    key: str
    start: date
    end: date  # exclusive

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        low = datetime.combine(self.start, time.min, tzinfo=tz)
        high = datetime.combine(self.end, time.min, tzinfo=tz)
        return to_db(low), to_db(high)

    @property
    def label(self) -> str:
        if self.kind == "month":
            return f"{self.start:%m/%Y}"
        if self.kind == "quarter":
            return f"Q{(self.start.month - 1) // 3 + 1}/{self.start.year}"
        return str(self.start.year)

    def shifted(self, steps: int) -> Period:
        if self.kind == "year":
            return year(self.start.year + steps)
        months = 3 if self.kind == "quarter" else 1
        index = self.start.year * 12 + self.start.month - 1 + steps * months
        if self.kind == "quarter":
            return quarter(index // 12, (index % 12) // 3 + 1)
        return month(index // 12, index % 12 + 1)


def month(y: int, m: int) -> Period:
    end = date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)
    return Period("month", f"{y:04d}-{m:02d}", date(y, m, 1), end)


def quarter(y: int, q: int) -> Period:
    start = date(y, 3 * (q - 1) + 1, 1)
    end = date(y + 1, 1, 1) if q == 4 else date(y, 3 * q + 1, 1)
    return Period("quarter", f"{y:04d}-Q{q}", start, end)


def year(y: int) -> Period:
    return Period("year", f"{y:04d}", date(y, 1, 1), date(y + 1, 1, 1))


def current(kind: str, today: date) -> Period:
    if kind == "month":
        return month(today.year, today.month)
    if kind == "year":
        return year(today.year)
    return quarter(today.year, (today.month - 1) // 3 + 1)


def parse(text: str | None, today: date) -> Period | None:
    """The period a query string names; the current quarter when none; None when malformed."""
    if not text:
        return current("quarter", today)
    if text in ("month", "quarter", "year"):
        return current(text, today)
    if match := _MONTH.match(text):
        y, m = int(match[1]), int(match[2])
        return month(y, m) if 2000 <= y <= 2100 and 1 <= m <= 12 else None
    if match := _QUARTER.match(text):
        y = int(match[1])
        return quarter(y, int(match[2])) if 2000 <= y <= 2100 else None
    if match := _YEAR.match(text):
        y = int(match[1])
        return year(y) if 2000 <= y <= 2100 else None
    return None
