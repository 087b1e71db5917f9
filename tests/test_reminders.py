"""Reminders: the policy, one message per person, the chat used last, recorded once, folded
when stale, silent at night, never for finished or on-request work."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlmodel import col, select

from bot.core.config import Settings
from bot.core.framework import FrameworkError
from bot.core.i18n import format_day, translator
from bot.core.models import ChannelIdentity, Escalation, Occurrence, OccurrenceStatus
from bot.core.services.occurrences import extend
from bot.core.timeutil import to_db
from bot.core.unit_words import adapt_text
from scheduler.commands import run_sweep
from scheduler.jobs import start_scheduler
from scheduler.policy import load_policies
from tests.helpers.scheduler_world import HCM, T1, T2, TASKS, at, build_scheduler_world

ON_REQUEST = "trich-luc-trich-do-dia-chinh-truc-tuyen"  # on request at every level
vi = translator("vi")


def test_the_shipped_policy_reminds_a_week_before_the_day_before_on_the_day_then_daily(
    settings: Settings,
):
    policies = load_policies(settings)
    due = date(2026, 11, 25)
    stages = policies.stages(due, at(30, 12))
    assert [(s.name, s.moment) for s in stages] == [
        ("before-7", at(18, 8)),
        ("before-1", at(24, 8)),
        ("due", at(25, 8)),
        ("overdue-1", at(26, 8)),
        ("overdue-2", at(27, 8)),  # the 28th belongs to the supervisor
    ]
    assert stages[0].key == "before-7@20261125"
    assert policies.stages(due, at(24, 7, 59))[-1].name == "before-7"
    quiet = policies.reminders
    assert quiet.is_quiet(at(25, 21), HCM) and quiet.is_quiet(at(26, 6, 59), HCM)
    assert not quiet.is_quiet(at(26, 7), HCM) and not quiet.is_quiet(at(25, 20, 59), HCM)


def test_a_province_override_replaces_the_policy_and_a_mistake_names_the_file(
    tmp_path: Path, settings: Settings
):
    mine = tmp_path / "khanh-hoa"
    mine.mkdir()
    (mine / "reminders.yaml").write_text('before_days: [3]\nsend_at: "09:30"\n', encoding="utf-8")
    policies = load_policies(settings.model_copy(update={"framework_overrides": mine}))
    assert [s.name for s in policies.stages(date(2026, 11, 25), at(25, 12))] == [
        "before-3",
        "due",
    ]
    assert policies.stages(date(2026, 11, 25), at(25, 12))[-1].moment == at(25, 9, 30)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "reminders.yaml").write_text('send_at: "22:00"\n', encoding="utf-8")
    with pytest.raises(FrameworkError) as error:
        load_policies(settings.model_copy(update={"framework_overrides": broken}))
    assert "broken/reminders.yaml" in str(error.value) and "quiet hours" in str(error.value)


async def test_tasks_due_together_arrive_in_one_message_each_with_its_buttons(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    head = await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    first = await world.occurrence(T1, "thon_mot")
    second = await world.occurrence(T2, "thon_mot")

    report = await run_sweep(world.app, at(18, 8))
    rows = [r for r in await world.outbox() if r.user_id == head.id]
    assert len(rows) == 1 and report.sent >= 2
    message = rows[0]
    assert message.channel == "telegram" and message.external_id == "1001"
    text = message.payload["text"]
    assert vi("🔔 Reminder: {count} task(s) to report").format(count=2) in text
    tasks = world.app.framework.tasks
    for task in (tasks[T1], tasks[T2]):
        evidence = adapt_text(task.evidence, None)  # "nhà văn hóa thôn/tổ dân phố"
        assert task.title in text and vi("Evidence: {evidence}").format(evidence=evidence) in text
    assert vi("Due: {due}").format(due="Thứ Tư, 25/11/2026") in text
    assert vi("{days} day(s) left").format(days=7) in text
    data = [button["data"] for row in message.payload["buttons"] for button in row]
    in_title_order = sorted((first, second), key=lambda occ: tasks[occ.task_key].title)
    # First the one answer for both (handlers/checklist.py) and the way to answer them one at
    # a time (handlers/walk.py), then each task's own four.
    assert data == [f"all:{at(18, 8):%Y%m%d}", f"one:{at(18, 8):%Y%m%d}"] + [
        f"{action}:{occ.id}"
        for occ in in_title_order
        for action in ("done", "photo", "ext", "cant")
    ]
    assert text.index(tasks[in_title_order[0].task_key].title) < text.index(
        tasks[in_title_order[1].task_key].title
    )
    labels = [button["label"] for row in message.payload["buttons"] for button in row]
    assert labels[0] == vi("✅ All done ({count})").format(count=2)
    assert labels[1] == vi("📋 One at a time")
    assert labels[2].startswith("#1 ") and labels[6].startswith("#2 ")

    # Once: the same sweep again, or a minute later, changes nothing.
    for moment in (at(18, 8), at(18, 8, 1), at(18, 13)):
        again = await run_sweep(world.app, moment)
        assert again.messages == 0 and again.sent == 0
    assert len([r for r in await world.outbox() if r.user_id == head.id]) == 1
    recorded = [r for r in await world.reminders() if r.occurrence_id in (first.id, second.id)]
    assert [(r.stage, r.outcome, r.user_ids) for r in recorded] == [
        ("before-7@20261125", "queued", [head.id]),  # sent once the sender has it out
        ("before-7@20261125", "queued", [head.id]),
    ]


async def test_a_reminder_goes_to_the_chat_the_person_used_last(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    head = await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    async with db.session() as session:
        session.add(
            ChannelIdentity(
                user_id=head.id,
                channel="zalo_bot",
                external_id="zb-77",
                last_interaction_at=to_db(datetime.now(HCM) + timedelta(minutes=5)),
            )
        )
        await session.commit()
    await run_sweep(world.app, at(18, 8))
    (row,) = [r for r in await world.outbox() if r.user_id == head.id]
    assert (row.channel, row.external_id) == ("zalo_bot", "zb-77")


async def test_done_excused_and_on_request_work_is_never_reminded(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework, tasks=(*TASKS, ON_REQUEST))
    head = await world.person("head_mot", "thon_mot", "village_head")
    officer = await world.person("officer_an", "xa_an", "commune_committee")
    async with db.session() as session:
        for task, status in ((T1, OccurrenceStatus.done), (T2, OccurrenceStatus.excused)):
            occurrence = await session.get(
                Occurrence, (await world.occurrence(task, "thon_mot")).id
            )
            occurrence.status = status
            session.add(occurrence)
        # Someone recorded an on-request task at the commune; it must never be chased.
        requested = Occurrence(
            task_key=ON_REQUEST,
            unit_id=world.units["xa_an"].id,
            period="request:1",
            window_start=to_db(at(1, 0)),
            due_at=to_db(at(25, 17)),
        )
        session.add(requested)
        await session.commit()
    for day in (18, 24, 25, 26, 27):
        await run_sweep(world.app, at(day, 8))
    assert not [r for r in await world.outbox() if r.user_id == head.id]
    reminded = {r.occurrence_id for r in await world.reminders()}
    assert requested.id not in reminded
    officer_rows = [r for r in await world.outbox() if r.user_id == officer.id]
    assert officer_rows and all(f"done:{requested.id}" not in str(r.payload) for r in officer_rows)
    async with db.session() as session:
        assert (await session.get(Occurrence, requested.id)).status == OccurrenceStatus.overdue
        esc = await session.exec(select(Escalation).where(Escalation.occurrence_id == requested.id))
        assert esc.first() is None


async def test_nothing_at_night_and_a_stale_reminder_is_folded_into_the_next(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    head = await world.person("head_mot", "thon_mot", "village_head")
    occurrence = await world.occurrence(T1, "thon_mot")
    # The bot first runs at 22:00 on the due date: the task is late, but nobody is woken.
    night = await run_sweep(world.app, at(25, 22))
    assert night.quiet and night.overdue_marked >= 1 and night.messages == 0
    assert not await world.outbox() and not await world.reminders()
    async with db.session() as session:
        assert (await session.get(Occurrence, occurrence.id)).status == OccurrenceStatus.overdue
    # 07:00: the morning's reminders are not due yet; the missed ones are folded, not sent.
    morning = await run_sweep(world.app, at(26, 7))
    assert morning.messages == 0 and morning.folded >= 3
    # 08:00: one reminder, the overdue one.
    await run_sweep(world.app, at(26, 8))
    rows = [r for r in await world.outbox() if r.user_id == head.id]
    assert len(rows) == 1 and vi("{days} day(s) overdue").format(days=1) in rows[0].payload["text"]
    outcomes = [
        (r.stage, r.outcome) for r in await world.reminders() if r.occurrence_id == occurrence.id
    ]
    assert outcomes == [
        ("before-7@20261125", "folded"),
        ("before-1@20261125", "folded"),
        ("due@20261125", "folded"),
        ("overdue-1@20261125", "queued"),  # no sender here: queued, not yet sent
    ]


async def test_more_time_granted_starts_a_new_ladder_for_the_new_due_date(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    head = await world.person("head_mot", "thon_mot", "village_head")
    for day in (18, 24, 25):
        await run_sweep(world.app, at(day, 8))
    async with db.session() as session:
        for task in (T1, T2):
            occurrence = await session.get(
                Occurrence, (await world.occurrence(task, "thon_mot")).id
            )
            extend(occurrence, to_db(datetime.combine(date(2026, 12, 2), time(17), HCM)))
            session.add(occurrence)
        await session.commit()
    await run_sweep(world.app, at(26, 8))  # not overdue any more: nothing
    await run_sweep(world.app, at(1, 8, month=12))
    rows = [r for r in await world.outbox() if r.user_id == head.id]
    # 18th, 24th, then 1 December; the 25th's stage waited (a message came the day before).
    assert len(rows) == 3
    assert format_day(date(2026, 12, 2), "vi") in rows[-1].payload["text"]
    mine = {(await world.occurrence(task, "thon_mot")).id for task in (T1, T2)}
    outcomes = {r.stage: r.outcome for r in await world.reminders() if r.occurrence_id in mine}
    assert outcomes["due@20261125"] == "spaced"
    assert {"before-1@20261202", "due@20261125"} <= set(outcomes)
    stages = set(outcomes)
    assert "overdue-1@20261125" not in stages


async def test_a_blocked_chat_makes_the_village_unreachable_at_once(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    head = await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    officer = await world.person("officer_an", "xa_an", "commune_committee", "telegram", "3001")
    first = await world.occurrence(T1, "thon_mot")
    second = await world.occurrence(T2, "thon_mot")
    async with db.session() as session:
        identity = (
            await session.exec(select(ChannelIdentity).where(ChannelIdentity.user_id == head.id))
        ).one()
        identity.blocked = True
        session.add(identity)
        await session.commit()
    await run_sweep(world.app, at(18, 8))
    assert not [r for r in await world.outbox() if r.user_id == head.id]
    outcomes = {
        r.outcome
        for r in await world.reminders()
        if r.occurrence_id in {o.id for o in (first, second)}
    }
    assert outcomes == {"unreachable"}
    mine = {(await world.occurrence(task, "thon_mot")).id for task in (T1, T2)}
    escalations = [e for e in await world.escalations() if e.occurrence_id in mine]
    assert len(escalations) == 2 and {e.step for e in escalations} == {"unreachable"}
    assert {e.target_unit_id for e in escalations} == {world.units["xa_an"].id}
    assert {e.reason for e in escalations} == {"unreachable"}
    assert all(e.notified_user_ids == [officer.id] for e in escalations)
    header = vi("📵 Cannot be reached (nobody registered, or the chat is blocked):")
    to_officer = [r for r in await world.outbox() if r.user_id == officer.id]
    # The news about the village, and apart from it the reminder of the officer's own tasks.
    (message,) = [r for r in to_officer if header in r.payload["text"]]
    assert "Thôn Một" in message.payload["text"]
    (own,) = [r for r in to_officer if r.id != message.id]
    assert "Thôn Một" not in own.payload["text"]
    async with db.session() as session:
        rows = await session.exec(
            select(Occurrence.status).where(col(Occurrence.unit_id) == world.units["thon_mot"].id)
        )
        assert set(rows.all()) == {OccurrenceStatus.open}  # not late: only unreachable


async def test_the_scheduler_runs_a_few_database_only_jobs_that_never_overlap(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    woken = []
    runtime = SimpleNamespace(ctx=world.app, sender=SimpleNamespace(wake=lambda: woken.append(1)))
    scheduler = start_scheduler(runtime.ctx, wake_sender=runtime.sender.wake)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"plan", "sweep", "digest", "uploads", "evidence"}
        for job in jobs.values():
            assert job.coalesce and job.max_instances == 1
        assert (
            str(jobs["digest"].trigger.fields[5]) == "7"
            and str(jobs["digest"].trigger.fields[6]) == "30"
        )
        assert jobs["sweep"].trigger.interval == timedelta(minutes=1)
        # The plan runs at start (for today's real date) and wakes the sender.
        for _ in range(50):
            if woken:
                break
            await asyncio.sleep(0.05)
        assert woken
    finally:
        scheduler.shutdown(wait=False)
