"""A provincial agency hears weekly how the tasks it supervises went under it: per district in
the three-tier structure, per commune in the two-tier one; only with someone registered."""

from __future__ import annotations

from bot.core.i18n import translator
from scheduler.commands import run_digest, run_sweep
from tests.helpers.scheduler_world import (
    T4,
    at,
    build_scheduler_world,
    district_reports,
    officer_an_reports,
)
from tests.test_escalation import TWO_TIER_UNITS

vi = translator("vi")
LATE = vi("{count} overdue of {total}")


def agency_rows(rows, user) -> list:  # noqa: ANN001
    return [r for r in rows if r.idempotency_key.startswith(f"digest:{user.id}:agency-weekly:")]


def headline_fits(text: str) -> bool:
    return len(text.splitlines()) <= 15 and len(text) <= 1200


async def test_so_xay_dung_gets_the_misses_per_district_once_a_week(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    assert world.app.framework.supervised_by("so-xay-dung") == {T4}
    assert world.app.framework.supervised_by("so-noi-vu") == set()
    agency = await world.person("xay_dung", "so_xay_dung", "province_agency:so-xay-dung")
    home_affairs = await world.person("noi_vu", "so_noi_vu", "province_agency:so-noi-vu")
    await world.person("officer_an", "xa_an", "commune_committee")
    await world.person("district", "district", "district_committee")
    await district_reports(world, at(19, 10))  # the district's waste collection: done
    await officer_an_reports(world, at(20, 10))  # Xã An's: done; Xã Bình never reports
    # Monday the 23rd: nothing it supervises is late yet, so nothing to tell.
    assert (await run_digest(world.app, at(23, 7, 30))).agency == 0
    await run_sweep(world.app, at(26, 8))
    assert (await run_digest(world.app, at(1, 7, 30, month=12))).agency == 0  # a Tuesday
    report = await run_digest(world.app, at(30, 7, 30))  # Monday
    assert report.agency == 1
    (row,) = agency_rows(await world.outbox(), agency)
    text = row.payload["text"]
    assert headline_fits(text)
    assert text.startswith(f"{vi('📊 Weekly summary')} — Sở Xây dựng")
    assert vi("Tasks you supervise: {count}").format(count=1) in text
    assert (
        vi("✅ Done {done} · 🟦 Excused {excused} · 🔴 Overdue {overdue}").format(
            done=2, excused=0, overdue=1
        )
        in text
    )
    assert vi("🔴 Most overdue, per {units}:").format(units="huyện") in text
    assert "1. Huyện Diên Khánh: " + LATE.format(count=1, total=3) in text
    assert row.payload["buttons"] == [[{"label": vi("🌐 Open the dashboard"), "data": "menu:web"}]]
    # Sở Nội vụ supervises none of these tasks: no weekly digest of nothing.
    assert not agency_rows(await world.outbox(), home_affairs)

    for moment in (at(30, 7, 31), at(30, 16)):
        assert (await run_digest(world.app, moment)).agency == 0
    assert len(agency_rows(await world.outbox(), agency)) == 1


async def test_an_agency_with_nobody_registered_gets_nothing(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    await world.person("district", "district", "district_committee")
    await run_sweep(world.app, at(26, 8))
    assert (await run_digest(world.app, at(30, 7, 30))).agency == 0


async def test_two_tier_the_agency_sees_its_communes_and_the_substitute_no_second_digest(
    db, settings, framework
):
    two_tier = settings.model_copy(
        update={"structure": "two_tier", "district_substitute": "so-noi-vu"}
    )
    world = await build_scheduler_world(two_tier, db, framework, units=TWO_TIER_UNITS)
    agency = await world.person("xay_dung", "so_xay_dung", "province_agency:so-xay-dung")
    substitute = await world.person("noi_vu", "so_noi_vu", "province_agency:so-noi-vu")
    await world.person("officer_an", "xa_an", "commune_committee")
    await world.report_done("officer_an", "xa_an", (T4,), at(20, 10))
    await run_sweep(world.app, at(26, 8))

    report = await run_digest(world.app, at(30, 7, 30))
    assert report.agency == 1 and report.weekly == 1  # the substitute's district digest
    (row,) = agency_rows(await world.outbox(), agency)
    text = row.payload["text"]
    assert headline_fits(text)
    assert vi("🔴 Most overdue, per {units}:").format(units="xã") in text
    assert "1. Xã Bình: " + LATE.format(count=1, total=1) in text
    assert "Xã An" not in text  # nothing overdue there
    assert "huyện" not in text.lower()
    assert not agency_rows(await world.outbox(), substitute)
