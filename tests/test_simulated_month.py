"""November 2026 in one district, hour by hour: who is reminded, escalated and digested, when.

The world is `tests/helpers/scheduler_world.py`: a sweep every hour on the hour, the digests at
07:30, planning at midnight. Each test runs under both structures: in the two-tier one (since
July 2025) there is no district, the province committee supervises Xã An and Phường Bình, and
the district's own task is the communes' alone.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PIL import Image

from bot.core.i18n import translator
from bot.core.models import Occurrence
from bot.core.timeutil import from_db
from bot.core.unit_words import place as unit_place
from scheduler.charts import WIDTH_PX
from scheduler.commands import run_sweep
from tests.helpers.scheduler_world import (
    HCM,
    REPORTS,
    T1,
    T2,
    T4,
    TASKS,
    SchedulerWorld,
    at,
    bar_fractions,
    bar_shares,
    build_scheduler_world,
    by_person,
    drive,
    in_quiet_hours,
    moments,
    occurrences_by_place,
    register_everyone_but_thon_ba,
    supervisor_key,
    trend_columns,
)
from tests.helpers.tree_words import wrong_words
from tests.helpers.world import framework_for, structure_independent

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def item_rows(sheet) -> list[tuple]:  # noqa: ANN001
    """A workbook sheet's rows of items: below the header, above the totals row."""
    return list(sheet.iter_rows(min_row=2, max_row=sheet.max_row - 1, values_only=True))


async def test_a_month_of_reminders_escalations_and_digests(db, settings, structure):
    world = await build_scheduler_world(settings, db, framework_for(structure))
    await register_everyone_but_thon_ba(world)
    two_tier = structure == "two_tier"
    binh, an = world.units["xa_binh"], world.units["xa_an"]
    above = supervisor_key(world)  # the district, or the province (two-tier)
    occ = await occurrences_by_place(world)
    deliveries = await drive(world, at(1, 0), at(1, 9, month=12), REPORTS)
    people = by_person(world, deliveries)

    # Nothing at all between 21:00 and 07:00.
    assert deliveries and not [d for d in deliveries if in_quiet_hours(d.moment)]
    if two_tier:  # no "huyện" to a deployment without districts, a ward never a "xã"
        for d in deliveries:
            labels = [b["label"] for line in d.row.payload.get("buttons", []) for b in line]
            said = "\n".join([d.row.payload.get("text", ""), d.row.payload.get("caption", "")])
            assert not wrong_words("\n".join([said, *labels])), d.row.payload

    # The head of Thôn Một reports on the 24th: a week before and the day before, both tasks in
    # one message each, at 08:00.
    head_mot = people["head_mot"]
    assert moments(head_mot) == [at(18, 8), at(24, 8)]
    village_one = {occ[(T1, "thon_mot")].id, occ[(T2, "thon_mot")].id}
    assert [d.reminded_ids for d in head_mot] == [village_one, village_one]
    text = head_mot[0].row.payload["text"]
    assert "Thứ Tư, 25/11/2026" in text and head_mot[0].row.channel == "telegram"

    # The head of Thôn Hai never reports: reminded a week before, the day before, and the day
    # after (the first day overdue, always sent); the due day and the 27th wait, a message
    # having come the day before (reminders.yaml `min_days_between`); the district takes
    # over on the 28th. On Zalo, the chat they use.
    head_hai = people["head_hai"]
    assert moments(head_hai) == [at(18, 8), at(24, 8), at(26, 8)]
    assert {d.row.channel for d in head_hai} == {"zalo_bot"}
    village_two = {occ[(T1, "thon_hai")].id, occ[(T2, "thon_hai")].id}
    assert all(d.reminded_ids == village_two for d in head_hai)

    # Xã An's officer: its own four tasks on the 18th (reported on the 20th), then on the 26th
    # the news that Thôn Hai is late (one message for both tasks, no buttons of its own).
    officer_an = [d for d in people["officer_an"] if d.row.idempotency_key.startswith("remind:")]
    assert moments(officer_an) == [at(18, 8), at(26, 8)]
    assert officer_an[0].reminded_ids == {occ[(t, "xa_an")].id for t in TASKS}
    notice = officer_an[1].row.payload["text"]
    assert "Thôn Hai" in notice and officer_an[1].reminded_ids == set()
    assert "Thôn Một" not in notice

    # Xã Bình's officer never reports and nobody at Thôn Ba can be reached: its own tasks on
    # the spaced ladder, one message each time; apart from them, each with its own buttons, the
    # news that Thôn Ba cannot be reached (the 18th) and that it is late (the 26th).
    officer_binh = [
        d for d in people["officer_binh"] if d.row.idempotency_key.startswith("remind:")
    ]
    binh_own = {occ[(t, "xa_binh")].id for t in TASKS}
    own = [d for d in officer_binh if d.reminded_ids]
    news = [d for d in officer_binh if not d.reminded_ids]
    assert moments(own) == [at(18, 8), at(24, 8), at(26, 8)]
    assert all(d.reminded_ids == binh_own for d in own)
    assert not [d for d in own if "Thôn Ba" in d.row.payload["text"]]
    assert moments(news) == [at(18, 8), at(26, 8)]
    assert all("Thôn Ba" in d.row.payload["text"] for d in news)
    assert all(len(d.row.payload["text"]) <= 1200 for d in officer_binh)

    # The district: its own task once (reported the 19th), the escalations on the 28th, and the
    # digests: weekly every Monday, daily the mornings after something was escalated. The
    # province committee (two-tier) has no task of its own here: only the escalations.
    district = people["district"]
    reminders = [d for d in district if d.row.idempotency_key.startswith("remind:")]
    if two_tier:
        assert moments(reminders) == [at(28, 8)]
        assert (T4, "district") not in occ
    else:
        assert moments(reminders) == [at(18, 8), at(28, 8)]
        assert reminders[0].reminded_ids == {occ[(T4, "district")].id}
    escalated = reminders[-1].row.payload["text"]
    for place in ("Thôn Hai", "Thôn Ba", binh.name):
        assert place in escalated
    assert "Thôn Một" not in escalated and "Xã An:" not in escalated
    digests = [d for d in district if d.row.idempotency_key.startswith("digest:")]
    digest_texts = sorted(
        (d.moment, d.row.idempotency_key.split(":")[2])
        for d in digests
        if d.row.idempotency_key.endswith(":text")
    )
    assert digest_texts == [
        (at(2, 7, 30), "weekly"),
        (at(9, 7, 30), "weekly"),
        (at(16, 7, 30), "weekly"),
        (at(19, 7, 30), "daily"),  # Thôn Ba unreachable (the 18th)
        (at(23, 7, 30), "weekly"),
        (at(27, 7, 30), "daily"),  # Thôn Hai, Thôn Ba late: the communes were told (the 26th)
        (at(29, 7, 30), "daily"),  # escalated to the district (the 28th)
        (at(30, 7, 30), "weekly"),
    ]
    # Each digest: its headline, a small message per commune with overdue items (one button
    # each, so each can be tapped in turn), its chart and its spreadsheet; a weekly one also
    # the trend of the weeks behind it, once a week on record had anything due (the first
    # tasks are due on the 25th: the weekly of the 2nd and the 23rd have no trend yet).
    parts = defaultdict(list)
    for d in digests:
        parts[d.moment].append(d.row.idempotency_key.split(":", 4)[4])
    assert parts[at(2, 7, 30)] == ["text", "chart", "xlsx", "coverage"]
    assert parts[at(19, 7, 30)] == ["text", "chart", "xlsx"]  # coverage is weekly
    assert parts[at(30, 7, 30)] == [
        "text",
        f"fu:{binh.id}",
        f"fu:{an.id}",
        "chart",
        "trend",
        "xlsx",
        "coverage",
    ]
    assert "trend" not in parts[at(23, 7, 30)]
    # The trend of the 30th: one week on record (23–29/11), as it stood on Sunday night: Xã An
    # 6 done, 2 overdue, Xã Bình 6 overdue; its red in proportion, 8 of 14.
    (trend,) = [
        d.row.payload
        for d in digests
        if d.moment == at(30, 7, 30) and d.row.idempotency_key.endswith(":trend")
    ]
    (week,) = trend_columns(settings.data_dir / trend["photo_path"])
    assert week["excused"] == 0
    assert week["overdue"] / (week["done"] + week["overdue"]) == pytest.approx(8 / 14, abs=0.02)
    # Coverage, weekly and apart: Thôn Ba has no village head registered all month.
    (coverage,) = [
        d.row.payload["text"]
        for d in digests
        if d.moment == at(30, 7, 30) and d.row.idempotency_key.endswith(":coverage")
    ]
    vi_ = translator("vi")
    assert (
        vi_("{unit}: nobody is registered as {role}").format(unit="Thôn Ba", role="Trưởng thôn")
        in coverage.splitlines()[-1]
    )
    assert "Xã An" not in coverage
    unreachable = translator("vi")("cannot be reached")
    for d in digests:
        if d.row.idempotency_key.endswith(":text"):
            text = d.row.payload["text"]
            assert len(text.splitlines()) <= 15 and len(text) <= 1200, text
            assert "📵" not in text and unreachable not in text
            # One button: a sign-in link to the dashboard (scheduler/digest_access.py).
            assert [b["data"] for row in d.row.payload["buttons"] for b in row] == ["menu:web"]

    # The weekly summary of Monday 30/11: the district's totals with the change since the
    # last digest, the communes to call worst first with their overdue count and the oldest.
    weekly = next(
        d.row.payload
        for d in digests
        if d.moment == at(30, 7, 30) and d.row.idempotency_key.endswith(":text")
    )
    body = weekly["text"]
    vi = translator("vi")
    assert "Thứ Hai, 30/11/2026" in body
    assert vi("Tasks due since {start} (the last 3 months)").format(start="30/08/2026") in body
    assert (
        vi("✅ Done {done} · 🟦 Excused {excused} · 🔴 Overdue {overdue}").format(
            done="6 (±0)", excused="0 (±0)", overdue="8 (±0)"
        )
        in body
    )
    oldest = vi("{count} overdue, the oldest {days} day(s) late")
    assert f"1. {binh.name}: {oldest.format(count=6, days=5)}" in body
    assert f"2. Xã An: {oldest.format(count=2, days=5)}" in body
    follow_ups = [
        d.row.payload
        for d in digests
        if d.moment == at(30, 7, 30) and ":fu:" in d.row.idempotency_key
    ]
    assert [p["text"] for p in follow_ups] == [
        f"{binh.name}: {oldest.format(count=6, days=5)}",
        f"Xã An: {oldest.format(count=2, days=5)}",
    ]
    assert [[(b["label"], b["data"]) for row in p["buttons"] for b in row] for p in follow_ups] == [
        [(f"📞 Ghi nhận đã đôn đốc {unit_place(binh)}", f"fu:{binh.id}")],
        [("📞 Ghi nhận đã đôn đốc xã An", f"fu:{an.id}")],
    ]

    # Its chart: one bar per commune, worst first, filled to the completion rate (6 of 8 done
    # in Xã An, none in Xã Bình); its spreadsheet: every overdue item, oldest first.
    chart, book = (
        next(
            d.row.payload
            for d in digests
            if d.moment == at(30, 7, 30) and d.row.idempotency_key.endswith(part)
        )
        for part in (":chart", ":xlsx")
    )
    fractions = bar_fractions(settings.data_dir / chart["photo_path"])
    assert fractions == pytest.approx([0.0, 0.75], abs=0.02)
    # Every chart of the month at phone width, overdue in red where there was any (Xã Bình 6
    # of 6, Xã An 2 of 8 on the 30th); kept in tests/artifacts/ to be looked at.
    ARTIFACTS.mkdir(exist_ok=True)
    for d in digests:
        key = d.row.idempotency_key
        if key.startswith("digest:") and (":chart" in key or key.endswith(":trend")):
            path = settings.data_dir / d.row.payload["photo_path"]
            assert Image.open(path).size[0] == WIDTH_PX
            shutil.copy(path, ARTIFACTS / f"month-{d.moment:%m%d}-{path.name}")
    assert [
        round(s["overdue"], 2) for s in bar_shares(settings.data_dir / chart["photo_path"])
    ] == [
        1.0,
        0.25,
    ]
    workbook = load_workbook(settings.data_dir / book["document_path"])
    vi = translator("vi")
    overdue_rows = item_rows(workbook[vi("Overdue")])
    assert len(overdue_rows) == 8
    assert [r[0] for r in workbook[vi("Open")].iter_rows(min_row=2, values_only=True)] == [
        vi("Nothing is open."),
        vi("Total"),
    ]
    assert sorted((r[0], r[1]) for r in overdue_rows) == sorted(
        [("Xã An", "Thôn Hai")] * 2 + [(binh.name, "Thôn Ba")] * 2 + [(binh.name, "—")] * 4
    )
    assert {r[7] for r in overdue_rows} == {5}
    sheet = "Xã, phường" if two_tier else "Xã"  # named for the communes it holds
    assert list(workbook[sheet].iter_rows(min_row=2, values_only=True)) == [
        (binh.name, 0, 0, 0, 6, 0),
        ("Xã An", 6, 0, 0, 2, 75),
        (vi("Total"), 6, 0, 0, 8, None),
    ]

    # Escalations: each step once, at its time, to the right unit, with who was told.
    rows = [
        (
            world.unit_key(await world_occ_unit(world, e.occurrence_id)),
            e.step,
            world.unit_key(e.target_unit_id),
            from_db(e.created_at).astimezone(HCM),
            sorted(world.user_name(i) for i in e.notified_user_ids),
        )
        for e in await world.escalations()
    ]
    expected = (
        [("thon_ba", "unreachable", "xa_binh", at(18, 8), ["officer_binh"])] * 2
        + [
            (v, "commune", c, at(26, 8), [o])
            for v, c, o in (
                ("thon_hai", "xa_an", "officer_an"),
                ("thon_ba", "xa_binh", "officer_binh"),
            )
            for _ in (T1, T2)
        ]
        + [
            (v, "supervisor", above, at(28, 8), ["district"])
            for v in ("thon_hai", "thon_ba")
            for _ in (T1, T2)
        ]
        + [("xa_binh", "supervisor", above, at(28, 8), ["district"])] * 3
        + [("xa_binh", "supervisor", "so_xay_dung", at(28, 8), ["xay_dung"])]
    )
    assert sorted(rows) == sorted(expected)
    xay_dung = people["xay_dung"]
    # Sở Xây dựng: the escalation of Xã Bình's waste collection, and the Monday after, its
    # weekly digest of the misses of the task it supervises (none before anything was late).
    assert moments(xay_dung) == [at(28, 8), at(30, 7, 30)]
    assert world.app.framework.tasks[T4].title in xay_dung[0].row.payload["text"]
    assert ":agency-weekly:" in xay_dung[1].row.idempotency_key

    # Sở Nội vụ gets November by PAPI dimension on 1 December.
    noi_vu = people["noi_vu"]
    assert moments(noi_vu) == [at(1, 7, 30, month=12)] * 3
    summary = noi_vu[0].row.payload["text"]
    assert "11/2026" in summary

    # Thôn Ba's stages were all recorded, none sent: nobody to send them to.
    stages = defaultdict(list)
    for reminder in await world.reminders():
        stages[reminder.occurrence_id].append((reminder.stage.split("@")[0], reminder.outcome))
    assert stages[occ[(T1, "thon_ba")].id] == [
        ("before-7", "unreachable"),
        ("before-1", "unreachable"),
        ("due", "unreachable"),
        ("overdue-1", "unreachable"),
        ("overdue-2", "unreachable"),
    ]


async def world_occ_unit(world: SchedulerWorld, occurrence_id: int) -> int:
    async with world.db.session() as session:
        return (await session.get(Occurrence, occurrence_id)).unit_id


async def test_two_days_down_then_every_escalation_once_and_no_burst(db, settings, structure):
    world = await build_scheduler_world(settings, db, framework_for(structure))
    await register_everyone_but_thon_ba(world)
    # Down from Wednesday 25/11 09:00 (after the due-day reminders) to Friday 27/11 09:00.
    deliveries = await drive(world, at(23, 12), at(28, 12), REPORTS, skip=(at(25, 9), at(27, 9)))
    people = by_person(world, deliveries)
    assert not [d for d in deliveries if in_quiet_hours(d.moment)]

    # Thôn Hai's head: the due-day reminder waits (a message came the day before); the
    # overdue-1 reminder of the 26th is folded, not sent; the 27th's, one hour old at the
    # restart, is sent once in its place (the first day overdue is always told).
    head_hai = [d for d in people["head_hai"] if d.row.idempotency_key.startswith("remind:")]
    assert moments(head_hai) == [at(24, 8), at(27, 9)]
    assert "2" in head_hai[-1].row.payload["text"]  # "2 day(s) overdue"
    occ = await world.occurrence(T1, "thon_hai")
    outcomes = [
        (r.stage.split("@")[0], r.outcome)
        for r in await world.reminders()
        if r.occurrence_id == occ.id
    ]
    assert outcomes == [
        ("before-7", "folded"),  # the clock started on the 23rd, long after it
        ("before-1", "queued"),  # no sender in this world: queued is the truth
        ("due", "spaced"),
        ("overdue-1", "folded"),
        ("overdue-2", "queued"),
    ]

    # The commune step due on the 26th happens at the restart, once; the supervisor step on the
    # 28th as usual.
    steps = defaultdict(list)
    for escalation in await world.escalations():
        steps[escalation.step].append(from_db(escalation.created_at).astimezone(HCM))
    assert steps["commune"] == [at(27, 9)] * 4
    assert set(steps["supervisor"]) == {at(28, 8)} and len(steps["supervisor"]) == 8
    officer_an = [d for d in people["officer_an"] if d.row.idempotency_key.startswith("remind:")]
    assert moments(officer_an) == [at(27, 9)]
    assert "Thôn Hai" in officer_an[-1].row.payload["text"]


@structure_independent
async def test_a_restart_long_after_the_reminder_time_sends_nothing_stale(db, settings, structure):
    world = await build_scheduler_world(settings, db, framework_for(structure))
    await register_everyone_but_thon_ba(world)
    # Down from the 24th at 09:00 to the 26th at 15:00: the reminders of the 25th and the 26th
    # (08:00) are over 6 hours old at the restart; the escalations due meanwhile all happen,
    # once, at 15:00.
    deliveries = await drive(world, at(24, 0), at(26, 20), REPORTS, skip=(at(24, 9), at(26, 15)))
    head_hai = by_person(world, deliveries)["head_hai"]
    assert moments(head_hai) == [at(24, 8)]
    commune_steps = [e for e in await world.escalations() if e.step == "commune"]
    assert len(commune_steps) == 4
    assert {from_db(e.created_at).astimezone(HCM) for e in commune_steps} == {at(26, 15)}
    occurrence = await world.occurrence(T1, "thon_hai")
    assert [
        (r.stage.split("@")[0], r.outcome, from_db(r.created_at).astimezone(HCM))
        for r in await world.reminders()
        if r.occurrence_id == occurrence.id
    ] == [
        ("before-7", "folded", at(24, 7)),  # the first sweep after the clock started
        ("before-1", "queued", at(24, 8)),
        ("due", "folded", at(26, 15)),
        ("overdue-1", "folded", at(26, 15)),
    ]
    # A second run at the same moment changes nothing.
    before = (
        len(await world.reminders()),
        len(await world.escalations()),
        len(await world.outbox()),
    )
    report = await run_sweep(world.app, at(26, 15))
    after = (
        len(await world.reminders()),
        len(await world.escalations()),
        len(await world.outbox()),
    )
    assert before == after and report.messages == 0
