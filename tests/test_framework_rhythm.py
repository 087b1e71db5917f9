"""The framework as the decision means it: who receives what, and on which days."""

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
from sqlmodel import select

from bot.core.config import Settings
from bot.core.models import Escalation, Occurrence, Unit
from bot.core.timeutil import from_db
from scheduler.commands import run_sweep
from scheduler.coverage import role_gaps
from scheduler.planner import plan
from scheduler.workdays import load_calendar
from tests.helpers.scheduler_world import build_scheduler_world
from tests.helpers.world import build_world

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


async def _year(db, settings, framework, first: date, last: date):
    world = await build_world(settings, db, framework, today=first)
    async with db.session() as session:
        await plan(session, framework, settings, first, until=last)
        await session.commit()
        rows = await session.exec(select(Occurrence, Unit).join(Unit))
        return world, list(rows.all())


async def test_no_company_holds_an_occurrence_of_a_task_that_does_not_name_it(
    db, settings, framework
):
    _world, rows = await _year(db, settings, framework, date(2027, 1, 1), date(2027, 12, 31))
    companies = {key for key, agency in framework.agencies.items() if agency.company}
    assert companies == {
        "cong-ty-co-phan-dien-luc-khanh-hoa",
        "cong-ty-co-phan-cap-nuoc-khanh-hoa",
        "doanh-nghiep-vien-thong",
    }
    held = {(unit.code, occ.task_key) for occ, unit in rows if unit.code in companies}
    assert held, "the sample has the companies, and the rows that name them reach them"
    for code, task_key in held:
        assert f"province_agency:{code}" in framework.tasks[task_key].roles, (code, task_key)
    # "Các cơ quan, đơn vị, địa phương" still reaches the state bodies.
    state = {unit.code for occ, unit in rows if occ.task_key == "can-bo-bo-phan-mot-cua-dat-chuan"}
    assert {"so-noi-vu", "cong-an-tinh", "bao-hiem-xa-hoi-tinh"} <= state
    assert not state & companies


async def test_the_satisfaction_survey_is_annual(db, settings, framework):
    _world, rows = await _year(db, settings, framework, date(2027, 1, 1), date(2027, 12, 31))
    survey = [occ for occ, _unit in rows if occ.task_key == "khao-sat-hai-long-tthc-dich-vu-cong"]
    assert survey
    assert {occ.period for occ in survey} == {"2027"}  # seed line 93: "hàng năm"


async def test_online_filing_help_has_a_quarterly_check_at_offices(db, settings, framework):
    """Review E10: the proactive part of line 113 is planned every quarter at the offices."""
    _world, rows = await _year(db, settings, framework, date(2027, 1, 1), date(2027, 12, 31))
    found = [(occ, unit) for occ, unit in rows if occ.task_key == "ho-tro-nop-ho-so-truc-tuyen"]
    communes = {unit.id for _occ, unit in found if unit.level == "commune"}
    assert communes and {unit.level for _occ, unit in found} <= {"agency", "district", "commune"}
    for commune in communes:
        periods = sorted(occ.period for occ, unit in found if unit.id == commune)
        assert periods == ["2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4"]


async def test_no_due_date_falls_on_a_weekend_or_a_public_holiday_of_2026_2027(
    db, settings, framework
):
    _world, rows = await _year(db, settings, framework, date(2026, 1, 1), date(2027, 12, 31))
    public = holidays.Vietnam(years=[2026, 2027])
    dues = {from_db(occ.due_at).astimezone(HCM).date() for occ, _ in rows}
    assert len(dues) > 40
    bad = sorted(day for day in dues if day.weekday() >= 5 or day in public)
    assert bad == []
    # Tết Đinh Mùi: 04/02–10/02/2027; nothing is due then, the 25th of January stays.
    assert not [day for day in dues if date(2027, 2, 4) <= day <= date(2027, 2, 10)]


def test_a_province_moves_its_own_days_off_in_yaml(tmp_path: Path):
    overrides = tmp_path / "khanh-hoa"
    overrides.mkdir()
    (overrides / "calendar.yaml").write_text(
        'days_off:\n  "2027-01-25": Nghỉ bù\nworking_days:\n  "2027-02-20": Làm bù Tết\n',
        encoding="utf-8",
    )
    shipped = load_calendar(Settings(_env_file=None))
    province = load_calendar(Settings(_env_file=None, framework_overrides=overrides))
    assert shipped.on_or_before(date(2027, 1, 25)) == date(2027, 1, 25)
    assert province.on_or_before(date(2027, 1, 25)) == date(2027, 1, 22)  # Monday off → Friday
    assert province.is_working_day(date(2027, 2, 20))  # a Saturday worked
    assert shipped.on_or_before(date(2027, 2, 10)) == date(2027, 2, 3)  # Tết → the day before


POLICE = "bao-dam-an-ninh-trat-tu-khu-dan-cu"


async def test_a_commune_without_police_registered_reminds_its_committee_and_escalates_nothing(
    db, settings, framework
):
    world = await build_scheduler_world(
        settings, db, framework, tasks=("thong-tin-tuyen-truyen-chinh-sach-den-nguoi-dan", POLICE)
    )
    await world.person("officer_an", "xa_an", "commune_committee", "telegram", "3001")
    await world.person("district", "district", "district_committee", "telegram", "4001")
    await run_sweep(world.app, datetime(2026, 11, 18, 8, 0, tzinfo=HCM))
    rows = await world.outbox()
    # Its own reminder, in one message (the villages' news, if any, comes apart from it).
    to_officer = [
        row
        for row in rows
        if row.user_id == world.users["officer_an"].id and "done:" in str(row.payload["buttons"])
    ]
    assert len(to_officer) == 1
    assert framework.tasks[POLICE].title in to_officer[0].payload["text"]
    async with db.session() as session:
        police = (
            await session.exec(
                select(Escalation)
                .join(Occurrence)
                .where(Occurrence.task_key == POLICE, Occurrence.unit_id == world.units["xa_an"].id)
            )
        ).all()
        assert police == []
        gaps = await role_gaps(session, world.app.framework, world.units["district"].id)
    found = {(gap.unit_code, gap.role): gap.covered_by for gap in gaps}
    assert found[("22480", "commune_police")] == "commune_committee"
    assert found[("22483", "commune_police")] is None  # Xã Bình: nobody at all
    assert ("22480", "commune_committee") not in found
