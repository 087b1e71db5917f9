"""The two-tier structure (since 1 July 2025): the decision's district-level work and its
"UBND cấp huyện" supervision go somewhere defined (framework_data/structures/two_tier.yaml)."""

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import select

from bot.core.config import DEFAULT_FRAMEWORK_DIR, Settings
from bot.core.context import AppContext
from bot.core.framework import FrameworkError, load_framework
from bot.core.models import Occurrence, Unit
from bot.core.services.framework_sync import sync_task_definitions
from scheduler.planner import plan


@pytest.fixture(scope="module")
def two_tier():
    return load_framework(DEFAULT_FRAMEWORK_DIR, None, "two-tier")


def test_no_task_is_left_with_a_district_role_or_dropped(framework, two_tier):
    assert set(two_tier.tasks) == set(framework.tasks)
    for task in two_tier.tasks.values():
        levels = {two_tier.role_level(role) for role in task.roles}
        assert "district" not in levels, task.key
        assert task.roles, task.key
    # District-executed school work moved down to the commune.
    assert two_tier.tasks["phat-trien-truong-tieu-hoc-dat-chuan"].roles == ["commune_committee"]
    # The commune keeps its own roles; the district police is now the commune police's work.
    assert two_tier.tasks["bao-dam-an-ninh-trat-tu-khu-dan-cu"].roles == [
        "province_agency:cong-an-tinh",
        "commune_police",
    ]
    assert two_tier.supervisors["UBND cấp huyện"].target == "province"
    line_82 = two_tier.supervisors["Thanh tra tỉnh; UBND cấp huyện"]
    assert (line_82.target, line_82.agency) == ("agency", "thanh-tra-tinh")
    # Three-tier is the decision as written.
    assert load_framework(DEFAULT_FRAMEWORK_DIR, None, "three_tier") == framework


def test_an_unknown_structure_names_the_file(tmp_path: Path):
    with pytest.raises(FrameworkError, match="structures/one_tier.yaml"):
        load_framework(DEFAULT_FRAMEWORK_DIR, None, "one-tier")


async def test_a_two_tier_commune_gets_the_work_that_moved_down(db, settings: Settings):
    app = AppContext.build(settings.model_copy(update={"structure": "two_tier"}), db)
    async with db.session() as session:
        province = Unit(code="56", name="Tỉnh Khánh Hòa", level="province")
        session.add(province)
        await session.flush()
        ward = Unit(code="22333", name="Phường Nha Trang", level="commune", parent_id=province.id)
        session.add(ward)
        await session.flush()
        session.add(Unit(code="22333-01", name="Tổ dân phố 1", level="village", parent_id=ward.id))
        await sync_task_definitions(session, app.framework)
        await session.commit()
        await plan(session, app.framework, app.settings, date(2027, 1, 1), date(2027, 12, 31))
        await session.commit()
        keys = set(
            (
                await session.exec(select(Occurrence.task_key).where(Occurrence.unit_id == ward.id))
            ).all()
        )
    assert {"phat-trien-truong-tieu-hoc-dat-chuan", "huong-dan-dang-ky-nhu-cau-su-dung-dat"} <= keys


ROOT = Path(__file__).resolve().parents[1]


def _papibot(folder: Path, *args: str, structure: str = "three_tier"):
    env = {
        "PAPIBOT_DATA_DIR": str(folder / "data"),
        "PAPIBOT_STRUCTURE": structure,
        "PYTHONPATH": str(ROOT),  # this checkout's code, not an installed copy
        "PATH": "/usr/bin:/bin",
        "HOME": str(folder),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=300,
    )


def test_init_two_tier_loads_the_2025_units_and_the_database_refuses_the_2022_tree(tmp_path):
    first = _papibot(tmp_path, "init", "--structure", "two-tier", structure="two_tier")
    assert first.returncode == 0, first.stderr
    assert "PAPIBOT_STRUCTURE=two_tier" in first.stdout
    listed = _papibot(tmp_path, "units", "list", "--json", structure="two_tier")
    units = {unit["code"]: unit for unit in json.loads(listed.stdout)}
    levels = {unit["level"] for unit in units.values()}
    assert "district" not in levels and {"province", "commune", "village", "agency"} <= levels
    assert units["22366"]["name"] == "Phường Nha Trang"
    # The 2022 tree on top would rename and re-parent reused codes: refused, nothing changed.
    mixed = _papibot(
        tmp_path, "units", "import", str(DEFAULT_FRAMEWORK_DIR / "units" / "khanh-hoa-2022.csv")
    )
    assert mixed.returncode == 2
    assert "two-tier" in mixed.stderr and "khanh-hoa-2022.csv" in mixed.stderr
    after = _papibot(tmp_path, "units", "list", "--json", structure="two_tier")
    assert json.loads(after.stdout) == json.loads(listed.stdout)
    # And a three-tier init of that database is refused too.
    again = _papibot(tmp_path, "init", "--structure", "three-tier")
    assert again.returncode == 2 and "two-tier" in again.stderr


async def test_the_two_tier_demo_people_report_and_declare_in_the_simulator(db, settings):
    """`make demo STRUCTURE=two-tier`: the village head reports a task, the ward officer sees
    it and declares a village-head election, all in the chat simulator."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app.demo import COMMUNE_OFFICER, VILLAGE_HEAD, seed_demo
    from bot.app.runtime import build_runtime
    from bot.app.server import build_app
    from bot.core.units import import_units_csv, import_vietnam_provinces
    from tests.helpers.world import World
    from tests.test_web_simulator import Sim, button, demo_user

    app = AppContext.build(settings.model_copy(update={"structure": "two_tier"}), db)
    await import_vietnam_provinces(db, 56)
    await import_units_csv(db, DEFAULT_FRAMEWORK_DIR / "units" / "khanh-hoa-2025-sample.csv")
    async with db.session() as session:
        await sync_task_definitions(session, app.framework)
        await session.commit()
        await plan(session, app.framework, app.settings, date.today())
        await session.commit()
        ward = (await session.exec(select(Unit).where(Unit.code == "22333"))).one()
        villages = list((await session.exec(select(Unit).where(Unit.parent_id == ward.id))).all())
    await seed_demo(app)
    client = TestClient(TestServer(build_app(build_runtime(app)), host="127.0.0.1"))
    await client.start_server()
    try:
        sim = Sim(World(app=app, district=None, commune=ward, villages=villages), client)
        head = await sim.login(await demo_user(db, VILLAGE_HEAD))
        officer = await sim.login(await demo_user(db, COMMUNE_OFFICER))

        mark = await sim.last_id(head)
        await sim.send(head, "/viec")
        _mid, done = button(await sim.messages(head, mark), "done:")
        occurrence_id = int(done.split(":")[1])
        mark = await sim.last_id(head)
        await sim.tap(head, done)
        for prefix in ("next:", "skip:", "send:"):  # no photo, no note, send
            _mid, data = button(await sim.messages(head, mark), prefix)
            mark = await sim.last_id(head)
            await sim.tap(head, data)
        async with db.session() as session:
            assert (await session.get(Occurrence, occurrence_id)).status == "done"

        mark = await sim.last_id(officer)
        await sim.send(officer, "/tinhhinh")
        overview = "\n".join(m["text"] for m in await sim.messages(officer, mark))
        assert "Tổ dân phố 1" in overview

        mark = await sim.last_id(officer)
        await sim.send(officer, "/sukien")
        _mid, kind = button(await sim.messages(officer, mark), "evk:village_head_election")
        await sim.tap(officer, kind)
        mark = await sim.last_id(officer)
        await sim.send(officer, "15/03/2027")
        reply = (await sim.messages(officer, mark))[-1]["text"]
        assert "15/03/2027" in reply
        async with db.session() as session:
            created = (
                await session.exec(
                    select(Occurrence.task_key).where(
                        Occurrence.period.startswith("village_head_election:")
                    )
                )
            ).all()
        assert set(created) == {"to-chuc-bau-truong-thon", "tuyen-truyen-bau-cu"}
    finally:
        await client.close()


def test_with_no_districts_the_province_committee_oversees_the_communes(framework, two_tier):
    """A commune's request for more time goes one level up, to a role that oversees it: with
    no districts that is the province committee, which also gets /baocao."""
    from bot.core.commands import commands_for, overview_command
    from handlers.router import COMMANDS, role_may

    assert two_tier.roles["province_committee"].oversees == ["commune_committee"]
    assert framework.roles["province_committee"].oversees == ["district_committee"]
    assert two_tier.roles["district_committee"].oversees == []  # nobody holds it any more
    # The commune keeps its own (the commune radio is still the commune committee's), and
    # takes the commune roles whose overseer went away: the health station (its district
    # health centre is now a regional one, a provincial agency) and the commune police.
    assert two_tier.roles["commune_committee"].oversees == [
        *framework.roles["commune_committee"].oversees,
        "commune_health_station",
        "commune_police",
    ]
    assert "commune_health_station" in framework.roles["district_health_center"].oversees
    baocao = COMMANDS["baocao"].roles
    assert role_may(two_tier, baocao, "province_committee")
    assert not role_may(framework, baocao, "province_committee")
    assert role_may(framework, baocao, "district_committee")
    assert not role_may(two_tier, baocao, "commune_committee")
    assert "baocao" in commands_for("province_committee", two_tier)
    assert "baocao" not in commands_for("province_committee", framework)
    assert overview_command("province_committee", two_tier) == "/baocao"


async def test_two_tier_digests_go_to_the_province_committee_without_a_substitute(db, settings):
    """PAPIBOT_DISTRICT_SUBSTITUTE empty (the default): the province committee gets the
    digests of its communes, as it gets their escalations."""
    from bot.core.services.people import add_user
    from scheduler.digests import scopes
    from scheduler.policy import load_policies

    two = settings.model_copy(update={"structure": "two_tier"})
    app = AppContext.build(two, db)
    async with db.session() as session:
        province = Unit(code="56", name="Tỉnh Khánh Hòa", level="province")
        session.add(province)
        await session.flush()
        ward = Unit(
            code="22333", name="Phường Bắc Nha Trang", level="commune", parent_id=province.id
        )
        commune = Unit(code="22402", name="Xã Nam Cam Ranh", level="commune", parent_id=province.id)
        session.add_all([ward, commune])
        await session.flush()
        agency = Unit(code="so-noi-vu", name="Sở Nội vụ", level="agency", parent_id=province.id)
        session.add(agency)
        await session.flush()
        chair = await add_user(session, province, "province_committee", "Chủ tịch")
        await add_user(session, agency, "province_agency:so-noi-vu", "Sở")
        await session.commit()
        (scope,) = await scopes(session, app, load_policies(app.settings))
    assert scope.unit.id == province.id
    assert [user.id for user in scope.recipients] == [chair.id]
    assert {unit.id for unit in scope.communes} == {ward.id, commune.id}
    assert province.id not in scope.unit_ids  # its own tasks are not a commune's
    # A named substitute still takes the place instead.
    app = AppContext.build(two.model_copy(update={"district_substitute": "so-noi-vu"}), db)
    async with db.session() as session:
        (scope,) = await scopes(session, app, load_policies(app.settings))
    assert scope.unit.code == "so-noi-vu"


def test_the_two_tier_word_check_catches_a_district_or_a_ward_called_a_commune():
    from tests.helpers.tree_words import wrong_words

    assert wrong_words("Chuyển UBND huyện Diên Khánh") == ["huyện"]
    assert wrong_words("UBND xã Phường Bắc Nha Trang") == ["xã Phường"]
    assert wrong_words("UBND phường Bắc Nha Trang; Tỉnh Khánh Hòa; xã Nam Cam Ranh") == []
