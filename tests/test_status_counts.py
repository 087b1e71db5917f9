"""The one count every view shows: done, excused, overdue and open kept apart
(bot.core.services.status.count_statuses), and `papibot status` closing with the same four."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import col, select

from bot.core.models import Occurrence, Unit
from bot.core.services.status import StatusCounts, count_statuses
from tests.helpers.world import build_world
from tests.test_cli import SAMPLE

ROOT = Path(__file__).resolve().parents[1]


def papibot_here(folder: Path, *args: str) -> str:
    """`papibot …` from this checkout (its code first on the path), in `folder`."""
    env = {
        "PAPIBOT_DATA_DIR": str(folder / "data"),
        "PATH": "/usr/bin:/bin",
        "HOME": str(folder),
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_each_outcome_is_counted_apart_per_unit_and_with_everything_below(
    db, settings, framework
):
    world = await build_world(settings, db, framework)
    village, other = world.villages[0], world.villages[1]
    now = datetime.now(UTC)
    async with db.session() as session:
        rows = (
            await session.exec(
                select(Occurrence)
                .where(Occurrence.unit_id == village.id)
                .order_by(col(Occurrence.id))
            )
        ).all()
        assert len(rows) >= 4
        for occurrence, status in zip(
            rows[:4], ("done", "excused", "overdue", "escalated"), strict=True
        ):
            occurrence.status = status
            occurrence.due_at = now - timedelta(days=3)
            occurrence.window_start = now - timedelta(days=10)
            session.add(occurrence)
        await session.commit()
        since, until = now - timedelta(days=30), now
        own = await count_statuses(session, [village, other], since, until)
        commune = await session.get(Unit, world.commune.id)
        (below,) = await count_statuses(session, [commune], since, until, include_below=True)
        (alone,) = await count_statuses(session, [commune], since, until)
    counts = own[0]
    assert (counts.unit.id, counts.done, counts.excused, counts.overdue) == (village.id, 1, 1, 2)
    assert own[1].unit.id == other.id and (own[1].done, own[1].excused) == (0, 0)
    # The excused task is neither done nor missing: out of what had to be done.
    assert counts.expected == counts.total - 1
    assert counts.rate == 1 / counts.expected
    assert below.excused == 1 and below.done == 1 and below.overdue >= 2
    assert below.total > alone.total  # the villages' occurrences are counted with the commune


def test_nothing_expected_is_a_full_rate_and_unknown_statuses_are_open():
    counts = StatusCounts()
    assert (counts.total, counts.rate) == (0, 1.0)
    counts.add("excused", 2)
    assert (counts.expected, counts.rate) == (0, 1.0)
    counts.add("something-new", 1)
    assert counts.open == 1


def test_papibot_status_ends_with_done_excused_overdue_and_open(tmp_path: Path):
    papibot_here(tmp_path, "init", "--units", str(SAMPLE))
    papibot_here(tmp_path, "plan", "--today", "2026-11-27", "--until", "2026-11-30")
    with sqlite3.connect(tmp_path / "data" / "papibot.db") as connection:
        ids = [row[0] for row in connection.execute("SELECT id FROM occurrences ORDER BY id")]
        for occurrence_id, status in zip(
            ids[:4], ("done", "excused", "excused", "overdue"), strict=True
        ):
            connection.execute(
                "UPDATE occurrences SET status = ? WHERE id = ?", (status, occurrence_id)
            )
    last = papibot_here(tmp_path, "status").strip().splitlines()[-1]
    rest = len(ids) - 4

    # Vietnamese for the operator (PAPIBOT_LOCALE's default), in words; codes stay in --json.
    def vi_number(value: int) -> str:
        return f"{value:,}".replace(",", ".")

    assert last == (
        f"{vi_number(len(ids))} việc: 1 đã xong, 2 được miễn, 1 quá hạn, {vi_number(rest)} chưa xong"
    )
