"""The weekly digest's trend chart, as a district officer reads it on a phone: is it getting
better or worse? Each of the last eight weeks counted as it stood at its end (a task done late
was overdue that week), weeks before the record began said so, the red of a week in proportion
to its overdue count. The charts are written to tests/artifacts/ to be looked at."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

from PIL import Image
from sqlmodel import select

from bot.core.i18n import translator
from bot.core.models import Occurrence, OccurrenceStatus, Report, Unit
from bot.core.services.status import StatusCounts
from bot.core.timeutil import to_db
from scheduler.charts import WIDTH_PX
from scheduler.trend import Week, last_full_weeks, weekly_trend
from scheduler.trend_chart import trend_chart
from scheduler.trend_digest import trend_title
from tests.helpers.scheduler_world import HCM, T1, at, build_scheduler_world, trend_columns

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
MONDAY = date(2026, 11, 30)  # the weekly digest's day; its weeks end on Sunday 29/11
DISTRICT = Unit(id=1, code="568", name="Diên Khánh", level="district")


def weeks_of(counts: list[tuple[int, int, int] | None]) -> list[Week]:
    return [
        Week(monday, StatusCounts(done=c[0], excused=c[1], overdue=c[2]) if c else None)
        for monday, c in zip(last_full_weeks(MONDAY), counts, strict=True)
    ]


def draw(name: str, weeks: list[Week], tmp_path: Path) -> Path:
    path = trend_chart(weeks, trend_title(weeks, DISTRICT, "vi"), tmp_path / f"{name}.png")
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / f"trend-{name}.png")
    return path


def test_a_worsening_district_shows_more_red_in_its_later_weeks(tmp_path):
    rising = weeks_of([(40, 1, n) for n in (1, 2, 3, 4, 5, 6, 7, 8)])
    falling = weeks_of([(40, 1, n) for n in (8, 7, 6, 5, 4, 3, 2, 1)])
    up, down = draw("rising", rising, tmp_path), draw("falling", falling, tmp_path)
    assert Image.open(up).size[0] == WIDTH_PX and Image.open(up).format == "PNG"
    up_red = [column["overdue"] for column in trend_columns(up)]
    down_red = [column["overdue"] for column in trend_columns(down)]
    assert len(up_red) == len(down_red) == 8
    # Each week's red in proportion to its overdue count, on one scale for all weeks.
    for red, week in zip(up_red, rising, strict=True):
        assert abs(red / up_red[0] - week.counts.overdue) < 0.1 * week.counts.overdue
    assert up_red[-1] > 6 * up_red[0] and down_red[-1] * 6 < down_red[0]
    assert sum(up_red[4:]) > 2 * sum(up_red[:4]) and sum(down_red[:4]) > 2 * sum(down_red[4:])


def test_a_new_deployment_shows_the_weeks_it_has_and_says_so(tmp_path):
    weeks = weeks_of([None] * 5 + [(10, 0, 4), (0, 0, 0), (12, 2, 0)])
    title = trend_title(weeks, DISTRICT, "vi")
    vi = translator("vi")
    assert title.splitlines()[-1] == vi(
        "Records begin in the week of {day}: {count} of {weeks} weeks so far."
    ).format(day="09/11/2026", count=3, weeks=8)
    path = draw("new-deployment", weeks, tmp_path)
    shown = trend_columns(path)
    # Two columns: the week with nothing due has none (it says so in words), nor the weeks
    # before the record began.
    assert [column["overdue"] > 0 for column in shown] == [True, False]
    assert shown[1]["excused"] > 0 and shown[0]["excused"] == 0
    full = trend_title(weeks_of([(1, 0, 0)] * 8), DISTRICT, "vi")
    assert len(full.splitlines()) == 3 and "Diên Khánh" in full


async def test_each_week_is_counted_as_it_stood_at_its_end(db, settings, framework):
    """Due in the week of 16/11: one done in time, one done the next week, one excused in time,
    one excused only later, one never done. The week of 23/11: one done in time. Nothing was
    due before the 16th: the weeks before have no counts."""
    world = await build_scheduler_world(settings, db, framework)
    village = world.units["thon_mot"]
    head = await world.person("head_mot", "thon_mot", "village_head")

    def moment(day: int, hour: int = 9) -> datetime:
        return to_db(at(day, hour))

    cases = [
        # period, due, status, done_at, excused decision
        ("w1", moment(18, 17), OccurrenceStatus.done, moment(20), None),
        ("w2", moment(18, 17), OccurrenceStatus.done, moment(24), None),
        ("w3", moment(19, 17), OccurrenceStatus.excused, None, moment(21)),
        ("w4", moment(20, 17), OccurrenceStatus.excused, None, moment(26)),
        ("w5", moment(22, 16), OccurrenceStatus.escalated, None, None),
        ("w6", moment(25, 17), OccurrenceStatus.done, moment(25, 10), None),
    ]
    async with world.db.session() as session:
        # Only these: the planned November occurrences are moved out of the counted weeks.
        for row in (await session.exec(select(Occurrence))).all():
            row.due_at = moment(30, 17)
            session.add(row)
        for period, due, status, done_at, decided in cases:
            occurrence = Occurrence(
                task_key=T1,
                unit_id=village.id,
                period=f"test-{period}",
                window_start=due - timedelta(days=7),
                due_at=due,
                status=status,
                done_at=done_at,
            )
            session.add(occurrence)
            await session.flush()
            if decided is not None:
                session.add(
                    Report(
                        occurrence_id=occurrence.id,
                        user_id=head.id,
                        kind="cannot",
                        status="approved",
                        decided_at=decided,
                    )
                )
        await session.commit()
        ids = [world.units[key].id for key in ("xa_an", "thon_mot", "thon_hai")]
        weeks = await weekly_trend(session, ids, MONDAY, HCM)
    assert [week.start for week in weeks][-2:] == [date(2026, 11, 16), date(2026, 11, 23)]
    assert [week.counts for week in weeks[:6]] == [None] * 6
    week_16, week_23 = weeks[6].counts, weeks[7].counts
    assert (week_16.done, week_16.excused, week_16.overdue, week_16.open) == (1, 1, 3, 0)
    assert (week_23.done, week_23.excused, week_23.overdue, week_23.open) == (1, 0, 0, 0)
