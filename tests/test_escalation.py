"""Escalation: a late village task goes to its commune after one day, to the supervising unit
after three; an agency's task to the agency; the two-tier substitute; nobody reachable."""

from __future__ import annotations

from sqlmodel import select

from bot.core.i18n import translator
from bot.core.models import Occurrence, OccurrenceStatus
from scheduler.commands import run_digest, run_sweep
from tests.helpers.scheduler_world import T1, T2, T3, T4, at, build_scheduler_world

vi = translator("vi")


async def statuses(world, unit: str) -> dict[str, str]:
    async with world.db.session() as session:
        rows = await session.exec(
            select(Occurrence.task_key, Occurrence.status).where(
                Occurrence.unit_id == world.units[unit].id, Occurrence.period == "2026-11"
            )
        )
        return dict(rows.all())


async def test_the_commune_after_one_day_the_district_after_three_each_once(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    await world.person("head_hai", "thon_hai", "village_head")
    officer = await world.person("officer_an", "xa_an", "commune_committee")
    district = await world.person("district", "district", "district_committee")
    late = {(await world.occurrence(t, "thon_hai")).id for t in (T1, T2)}

    await run_sweep(world.app, at(25, 18))  # past due: overdue, nobody told yet
    assert set((await statuses(world, "thon_hai")).values()) == {OccurrenceStatus.overdue}
    await run_sweep(world.app, at(26, 7, 59))
    assert not [e for e in await world.escalations() if e.occurrence_id in late]

    await run_sweep(world.app, at(26, 8))
    steps = [e for e in await world.escalations() if e.occurrence_id in late]
    assert (
        sorted((e.step, e.target_unit_id, e.reason) for e in steps)
        == [
            ("commune", world.units["xa_an"].id, "overdue"),
        ]
        * 2
    )
    assert all(e.notified_user_ids == [officer.id] for e in steps)
    assert set((await statuses(world, "thon_hai")).values()) == {OccurrenceStatus.escalated}
    (told,) = [
        r for r in await world.outbox() if r.user_id == officer.id and "Thôn Hai" in str(r.payload)
    ]
    assert vi("⚠️ Overdue in the villages of your commune:") in told.payload["text"]
    assert (
        vi("due {due}, {days} day(s) late").format(due="Thứ Tư, 25/11/2026", days=1)
        in (told.payload["text"])
    )

    for moment in (at(26, 8), at(26, 9), at(27, 8), at(28, 7)):
        await run_sweep(world.app, moment)
    assert len([e for e in await world.escalations() if e.occurrence_id in late]) == 2

    await run_sweep(world.app, at(28, 8))
    await run_sweep(world.app, at(28, 9))
    supervisor = [
        e for e in await world.escalations() if e.occurrence_id in late and e.step == "supervisor"
    ]
    assert [(e.target_unit_id, e.notified_user_ids) for e in supervisor] == [
        (world.units["district"].id, [district.id])
    ] * 2
    to_district = [r for r in await world.outbox() if r.user_id == district.id]
    assert len([r for r in to_district if "Thôn Hai" in r.payload["text"]]) == 1


async def test_a_task_supervised_by_a_provincial_agency_goes_to_that_agency(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    officer = await world.person("officer_binh", "xa_binh", "commune_committee")
    district = await world.person("district", "district", "district_committee")
    agency = await world.person("xay_dung", "so_xay_dung", "province_agency:so-xay-dung")
    waste = await world.occurrence(T4, "xa_binh")
    board = await world.occurrence(T3, "xa_binh")
    for moment in (at(25, 18), at(26, 8), at(28, 8)):
        await run_sweep(world.app, moment)
    by_occurrence = {
        e.occurrence_id: e for e in await world.escalations() if e.step == "supervisor"
    }
    assert by_occurrence[waste.id].target_unit_id == world.units["so_xay_dung"].id
    assert by_occurrence[waste.id].notified_user_ids == [agency.id]
    assert by_occurrence[board.id].target_unit_id == world.units["district"].id
    assert by_occurrence[board.id].notified_user_ids == [district.id]
    # A commune's own task has no "commune" step: it is the commune.
    assert not [
        e
        for e in await world.escalations()
        if e.step == "commune" and e.occurrence_id in (waste.id, board.id)
    ]
    (to_agency,) = [r for r in await world.outbox() if r.user_id == agency.id]
    assert world.app.framework.tasks[T4].title in to_agency.payload["text"]
    assert "Xã Bình" in to_agency.payload["text"]
    assert officer.id not in by_occurrence[waste.id].notified_user_ids


TWO_TIER_UNITS = [
    ("province", "56", "Tỉnh Khánh Hòa", "province", None),
    ("xa_an", "22480", "Xã An", "commune", "province"),
    ("thon_mot", "22480-01", "Thôn Một", "village", "xa_an"),
    ("xa_binh", "22483", "Xã Bình", "commune", "province"),
    ("so_noi_vu", "so-noi-vu", "Sở Nội vụ", "agency", "province"),
    ("so_xay_dung", "so-xay-dung", "Sở Xây dựng", "agency", "province"),
]


async def test_two_tier_the_substitute_unit_takes_the_districts_place(db, settings, framework):
    two_tier = settings.model_copy(
        update={"structure": "two_tier", "district_substitute": "so-noi-vu"}
    )
    world = await build_scheduler_world(two_tier, db, framework, units=TWO_TIER_UNITS)
    officer = await world.person("officer_an", "xa_an", "commune_committee")
    home_affairs = await world.person("noi_vu", "so_noi_vu", "province_agency:so-noi-vu")
    village = await world.occurrence(T1, "thon_mot")  # nobody registered at Thôn Một
    binh = await world.occurrence(T3, "xa_binh")  # nobody registered at Xã Bình either

    await run_sweep(world.app, at(18, 8))
    unreachable = {e.occurrence_id: e for e in await world.escalations() if e.step == "unreachable"}
    assert unreachable[village.id].target_unit_id == world.units["xa_an"].id
    assert unreachable[village.id].notified_user_ids == [officer.id]
    # The commune level has no district above it: the substitute hears about Xã Bình.
    assert unreachable[binh.id].target_unit_id == world.units["so_noi_vu"].id
    assert unreachable[binh.id].notified_user_ids == [home_affairs.id]

    for moment in (at(26, 8), at(28, 8)):
        await run_sweep(world.app, moment)
    steps = {(e.occurrence_id, e.step): e for e in await world.escalations()}
    assert steps[(village.id, "commune")].target_unit_id == world.units["xa_an"].id
    assert steps[(village.id, "supervisor")].target_unit_id == world.units["so_noi_vu"].id
    assert steps[(binh.id, "supervisor")].target_unit_id == world.units["so_noi_vu"].id
    assert steps[(village.id, "supervisor")].notified_user_ids == [home_affairs.id]
    # Its people get the district's weekly digest, for every commune of the province.
    report = await run_digest(world.app, at(30, 7, 30))
    assert report.weekly == 1
    (text,) = [
        r
        for r in await world.outbox()
        if r.user_id == home_affairs.id and r.idempotency_key.endswith("weekly:20261130:text")
    ]
    assert "Xã An:" in text.payload["text"] and "Xã Bình:" in text.payload["text"]


async def test_a_commune_nobody_can_reach_goes_to_the_district_the_first_time(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    district = await world.person("district", "district", "district_committee")
    await run_sweep(world.app, at(17, 8))  # nothing due yet, nothing escalated
    assert not await world.escalations()
    await run_sweep(world.app, at(18, 8))
    binh = {(await world.occurrence(t, "xa_binh")).id for t in (T1, T2, T3, T4)}
    found = [e for e in await world.escalations() if e.occurrence_id in binh]
    assert (
        sorted((e.step, e.reason, e.target_unit_id) for e in found)
        == [("unreachable", "unreachable", world.units["district"].id)] * 4
    )
    await run_sweep(world.app, at(24, 8))
    assert len([e for e in await world.escalations() if e.occurrence_id in binh]) == 4
    messages = [r for r in await world.outbox() if r.user_id == district.id]
    unreachable_header = vi("📵 Cannot be reached (nobody registered, or the chat is blocked):")
    told = [r for r in messages if unreachable_header in r.payload["text"]]
    assert len(told) == 1 and "Xã Bình" in told[0].payload["text"]
