"""The dashboard's small parts: Vietnamese alphabetical order, periods, and the counting rule
(done / excused / overdue / open) on a real database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlmodel import select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import Occurrence, OccurrenceStatus, TaskDefinition, Unit
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.services.rollup import count_occurrences
from bot.web.dashboard import periods
from bot.web.dashboard.scope import vietnamese_key


def test_units_sort_in_vietnamese_alphabetical_order() -> None:
    names = ["Xã Đông Hòa", "Xã Dương Sơn", "Xã Ân Phú", "Xã An Bình", "Xã Ba Cụm", "Xã Ăn Khê"]
    assert sorted(names, key=vietnamese_key) == [
        "Xã An Bình",
        "Xã Ăn Khê",
        "Xã Ân Phú",
        "Xã Ba Cụm",
        "Xã Dương Sơn",
        "Xã Đông Hòa",
    ]
    # Tones come after the letters: "Ma" < "Mà" < "Mả" < "Mã" < "Má" < "Mạ" < "Mai".
    tones = ["Mai", "Mạ", "Má", "Mã", "Mả", "Mà", "Ma"]
    assert sorted(tones, key=vietnamese_key) == ["Ma", "Mà", "Mả", "Mã", "Má", "Mạ", "Mai"]


def test_periods_parse_shift_and_refuse_nonsense() -> None:
    today = date(2026, 12, 1)
    assert periods.parse(None, today).key == "2026-Q4"
    assert periods.parse("month", today).key == "2026-12"
    assert periods.parse("2026-12", today).shifted(1).key == "2027-01"
    assert periods.parse("2026-Q1", today).shifted(-1).key == "2025-Q4"
    assert periods.parse("2026", today).shifted(-1).label == "2025"
    assert periods.parse("2026-Q4", today).label == "Q4/2026"
    for bad in ("2026-13", "2026-Q5", "26", "1800", "'; drop", "2026-1"):
        assert periods.parse(bad, today) is None, bad


async def test_counting_keeps_excused_apart_from_done_and_escalated_counts_as_overdue(
    db: Database, framework: Framework, settings: Settings
) -> None:
    async with db.session() as session:
        await sync_task_definitions(session, framework)
        unit = Unit(code="v1", name="Thôn 1", level="village")
        session.add(unit)
        await session.flush()
        task = (await session.exec(select(TaskDefinition))).first()
        due = datetime(2026, 11, 25, 10, tzinfo=UTC)
        statuses = ["done", "excused", "excused", "overdue", "escalated", "open"]
        for index, status in enumerate(statuses):
            session.add(
                Occurrence(
                    task_key=task.key,
                    unit_id=unit.id,
                    period=f"p{index}",
                    window_start=due - timedelta(days=10),
                    due_at=due,
                    status=OccurrenceStatus(status),
                )
            )
        await session.commit()
        found = await count_occurrences(
            session, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
        )
        outside = await count_occurrences(
            session, datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
        )
    counts = found[(unit.id, task.dimension)]
    assert (counts.done, counts.excused, counts.overdue, counts.open) == (1, 2, 2, 1)
    assert counts.settled_share == 3 / 5
    assert outside == {}
