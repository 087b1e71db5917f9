"""Digests: weekly always, daily only after new escalations, once per person and day, the
"Đã đôn đốc" follow-up shown in the next one, and Sở Nội vụ's monthly summary by dimension."""

from __future__ import annotations

from datetime import datetime

import time_machine
from openpyxl import load_workbook
from sqlmodel import select

from bot.core.audit_actions import FOLLOWED_UP
from bot.core.i18n import translator
from bot.core.messages import Incoming, Kind
from bot.core.models import AuditLog, DialogState, Unit, User
from handlers.conversation import Conversation
from handlers.followup import followed_up
from scheduler.commands import run_digest, run_sweep
from tests.helpers.scheduler_world import (
    REPORTS,
    SchedulerWorld,
    at,
    bar_fractions,
    build_scheduler_world,
    register_everyone_but_thon_ba,
)

vi = translator("vi")


async def month_until(world: SchedulerWorld, end: datetime) -> None:
    """The reports of the simulated month, and a sweep at each 08:00 up to `end`."""
    for moment, event in sorted(REPORTS.items()):
        if moment <= end:
            await event(world, moment)
    day = at(17, 8)
    while day <= end:
        await run_sweep(world.app, day)
        day = day.replace(day=day.day + 1) if day.day < 30 else day.replace(month=12, day=1)


def digest_rows(rows, user: User, kind: str | None = None) -> list:
    prefix = f"digest:{user.id}:" + (f"{kind}:" if kind else "")
    return [r for r in rows if r.idempotency_key.startswith(prefix)]


async def tap_followed_up(world: SchedulerWorld, user: User, commune: Unit, now: datetime) -> str:
    """The district user taps "Đã đôn đốc" under a commune; returns the bot's answer."""
    with time_machine.travel(now, tick=False):
        async with world.db.session() as session:
            person = await session.get(User, user.id)
            unit = await session.get(Unit, person.unit_id)
            incoming = Incoming(
                channel="telegram",
                external_id="4001",
                update_id=f"fu-{commune.id}-{now:%H%M}",
                kind=Kind.button,
                data=f"fu:{commune.id}",
            )
            state = DialogState(channel="telegram", external_id="4001", data={})
            convo = Conversation(world.app, session, incoming, state, None, person, unit)
            before = len(await world.outbox())
            await followed_up(convo, str(commune.id))
            await convo.flush()  # the replies, inserted together as the dispatcher does
            await session.commit()
    replies = (await world.outbox())[before:]
    return replies[-1].payload["text"]


async def test_weekly_always_daily_only_after_an_escalation_once_per_person_and_day(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    await register_everyone_but_thon_ba(world)
    district = world.users["district"]
    assert str(await run_digest(world.app, at(23, 7, 29))).endswith("(before the digest time)")
    report = await run_digest(world.app, at(23, 7, 30))  # Monday
    assert report.weekly == 1 and report.daily == 0
    for moment in (at(23, 7, 31), at(23, 12)):
        again = await run_digest(world.app, moment)
        assert again.weekly == again.daily == 0
    assert len(digest_rows(await world.outbox(), district, "weekly")) == 4  # + coverage

    await month_until(world, at(25, 8))
    # Tuesday to Thursday morning: nothing was escalated since Monday's digest but Thôn Ba
    # being unreachable (the 18th was before Monday): no daily digest.
    for day in (24, 25, 26):
        assert (await run_digest(world.app, at(day, 7, 30))).daily == 0
    await month_until(world, at(26, 8))  # the communes are told about Thôn Hai and Thôn Ba
    daily = await run_digest(world.app, at(27, 7, 30))
    assert daily.daily == 1
    (text,) = [
        r
        for r in digest_rows(await world.outbox(), district, "daily")
        if r.idempotency_key.endswith(":text")
    ]
    body = text.payload["text"]
    assert vi("📊 Daily digest") in body and "Thứ Sáu, 27/11/2026" in body
    assert (
        vi("🔺 New items escalated to you since the last digest: {count}").format(count=4) in body
    )
    oldest = vi("{count} overdue, the oldest {days} day(s) late")
    assert f"1. Xã Bình: {oldest.format(count=6, days=2)}" in body
    assert f"2. Xã An: {oldest.format(count=2, days=2)}" in body
    assert (await run_digest(world.app, at(28, 7, 30))).daily == 0


async def test_the_follow_up_button_is_audited_and_shown_in_the_next_digest(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    await register_everyone_but_thon_ba(world)
    district = world.users["district"]
    await month_until(world, at(28, 8))
    await run_digest(world.app, at(27, 7, 30))
    binh = world.units["xa_binh"]

    answer = await tap_followed_up(world, district, binh, at(27, 10))
    assert answer == vi(
        "Noted: you followed up with {commune}. It will show in your next digest."
    ).format(commune="xã Bình")  # in running text, the kind word is lower case
    async with db.session() as session:
        (entry,) = (
            await session.exec(select(AuditLog).where(AuditLog.action == FOLLOWED_UP))
        ).all()
        assert entry.subject == f"unit:{binh.id}" and entry.actor_user_id == district.id
        # The fields the dashboard's "Đã đôn đốc" writes too (bot/core/services/follow_ups.py).
        assert entry.detail == {"commune": binh.name, "via": "chat"}

    # A commune of another district is refused, and that is audited too.
    async with db.session() as session:
        other_district = Unit(
            code="571", name="Huyện Khác", level="district", parent_id=world.units["province"].id
        )
        session.add(other_district)
        await session.flush()
        foreign = Unit(code="22999", name="Xã Khác", level="commune", parent_id=other_district.id)
        session.add(foreign)
        await session.commit()
    refused = await tap_followed_up(world, district, foreign, at(27, 10, 5))
    assert refused == vi("This unit is not one that yours supervises.")
    async with db.session() as session:
        actions = (await session.exec(select(AuditLog.action))).all()
        assert actions.count(FOLLOWED_UP) == 1 and "forbidden" in actions

    await run_digest(world.app, at(29, 7, 30))  # the supervisor step of the 28th: daily
    (text,) = [
        r
        for r in digest_rows(await world.outbox(), district, "daily")
        if r.idempotency_key.endswith(":text") and "20261129" in r.idempotency_key
    ]
    body = text.payload["text"]
    assert vi("✔️ Followed up since the last digest:") in body
    assert "Xã Bình (district, 27/11/2026)" in body
    # … and only in that one.
    await run_digest(world.app, at(30, 7, 30))
    (weekly,) = [
        r
        for r in digest_rows(await world.outbox(), district, "weekly")
        if r.idempotency_key.endswith(":text") and "20261130" in r.idempotency_key
    ]
    assert vi("✔️ Followed up since the last digest:") not in weekly.payload["text"]


async def test_each_commune_to_call_is_its_own_message_tapped_in_turn(db, settings, framework):
    settings.public_url = "https://papi.example.vn"
    world = await build_scheduler_world(settings, db, framework)
    await register_everyone_but_thon_ba(world)
    district = world.users["district"]
    await month_until(world, at(28, 8))
    await run_digest(world.app, at(27, 7, 30))
    rows = digest_rows(await world.outbox(), district, "daily")
    (text,) = [r for r in rows if r.idempotency_key.endswith(":text")]
    unit_id = world.units["district"].id
    body = text.payload["text"]
    assert (
        vi("🔗 Overview: {url}").format(url=f"https://papi.example.vn/dashboard/u/{unit_id}")
        in body
    )
    assert (
        vi("🔗 Overdue list: {url}").format(
            url=f"https://papi.example.vn/dashboard/u/{unit_id}/overdue"
        )
        in body
    )
    assert len(body.splitlines()) <= 15 and len(body) <= 1200
    follow_ups = [r for r in rows if ":fu:" in r.idempotency_key]
    binh, an = world.units["xa_binh"], world.units["xa_an"]
    assert [r.payload["buttons"][0][0]["data"] for r in follow_ups] == [
        f"fu:{binh.id}",
        f"fu:{an.id}",
    ]
    # Each is tapped on its own: two follow-ups recorded, one per commune, in turn.
    for minute, commune in enumerate((binh, an)):
        await tap_followed_up(world, district, commune, at(27, 10, minute))
    async with db.session() as session:
        subjects = (
            await session.exec(
                select(AuditLog.subject).where(AuditLog.action == FOLLOWED_UP).order_by(AuditLog.at)
            )
        ).all()
    assert subjects == [f"unit:{binh.id}", f"unit:{an.id}"]
    await run_digest(world.app, at(29, 7, 30))
    (after,) = [
        r
        for r in digest_rows(await world.outbox(), district, "daily")
        if r.idempotency_key.endswith(":text") and "20261129" in r.idempotency_key
    ]
    assert "Xã Bình (district, 27/11/2026), Xã An (district, 27/11/2026)" in after.payload["text"]


async def test_the_weekly_chart_and_spreadsheet_show_every_open_and_overdue_item(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    await register_everyone_but_thon_ba(world)
    district = world.users["district"]
    await month_until(world, at(23, 8))
    await run_digest(world.app, at(23, 7, 30))
    rows = digest_rows(await world.outbox(), district, "weekly")
    chart = next(r for r in rows if r.idempotency_key.endswith(":chart")).payload
    book = next(r for r in rows if r.idempotency_key.endswith(":xlsx")).payload
    assert book["document_name"].endswith(".xlsx")
    # Monday 23/11: Xã An finished its four tasks, its villages not yet; Xã Bình nothing.
    fractions = bar_fractions(settings.data_dir / chart["photo_path"])
    assert len(fractions) == 2
    assert abs(fractions[0] - 0.0) < 0.02 and abs(fractions[1] - 0.5) < 0.02
    workbook = load_workbook(settings.data_dir / book["document_path"])
    overdue, still_open, excused = (workbook[vi(name)] for name in ("Overdue", "Open", "Excused"))
    assert excused["A2"].value == vi("Nothing was excused.")
    assert overdue["A2"].value == vi("Nothing is overdue.")
    opened = list(still_open.iter_rows(min_row=2, max_row=still_open.max_row - 1, values_only=True))
    # Everything due on the 25th not done yet: Thôn Một, Thôn Hai, Thôn Ba (2 each), Xã Bình (4).
    assert len(opened) == 10
    assert {row[1] for row in opened} == {"Thôn Một", "Thôn Hai", "Thôn Ba", "—"}
    assert list(workbook["Xã"].iter_rows(min_row=2, values_only=True)) == [
        ("Xã Bình", 0, 0, 6, 0, 0),
        ("Xã An", 4, 0, 4, 0, 50),
        (vi("Total"), 4, 0, 10, 0, None),
    ]


async def test_so_noi_vu_gets_last_month_by_papi_dimension(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    await register_everyone_but_thon_ba(world)
    await month_until(world, at(30, 8))
    await run_digest(world.app, at(1, 7, 30, month=12))
    noi_vu = world.users["noi_vu"]
    rows = digest_rows(await world.outbox(), noi_vu, "monthly")
    assert len(rows) == 3
    text = next(r for r in rows if r.idempotency_key.endswith(":text")).payload["text"]
    # Participation: T1, T2 at 3 villages and 2 communes, T3 at 2 communes = 12, of which
    # Thôn Một (2) and Xã An (3) done; Public services: T4 at the district and 2 communes,
    # the district and Xã An done.
    assert "1. Tham gia: 5 / 0 / 0 / 7 (42%)" in text
    assert "6. Dịch vụ công: 2 / 0 / 0 / 1 (67%)" in text
    book = next(r for r in rows if r.idempotency_key.endswith(":xlsx")).payload
    (sheet,) = load_workbook(settings.data_dir / book["document_path"]).worksheets
    table = {row[0]: row[2:] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert (
        table[1] == (5, 0, 0, 7, 42)
        and table[6] == (2, 0, 0, 1, 67)
        and table[2] == (0, 0, 0, 0, 0)
    )
    assert (await run_digest(world.app, at(1, 9, month=12))).monthly == 0
