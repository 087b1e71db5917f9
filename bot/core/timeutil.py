"""Time conventions: aware UTC datetimes in code and database, local time only for people."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


def to_db(moment: datetime) -> datetime:
    """An aware datetime in UTC, as the database columns hold it."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where an aware one is required")
    return moment.astimezone(UTC)


def from_db(value: datetime) -> datetime:
    """A database value as aware UTC (tolerates naive values from raw SQL on SQLite)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def local_moment(day: date, clock: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=tz)


def parse_now(text: str | None, tz: ZoneInfo) -> datetime:
    """`--now 2026-11-30T08:00` (local unless an offset is given); None means the real now."""
    if not text:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment
