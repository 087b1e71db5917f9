"""A commune officer told of a village's late task gets that news and the reminder of its own
tasks as two messages, each with its own buttons, and still one reminder a day for its tasks."""

from __future__ import annotations

from bot.core.i18n import translator
from scheduler.commands import run_sweep
from tests.helpers.scheduler_world import T1, T2, TASKS, at, build_scheduler_world

vi = translator("vi")


def button_actions(row) -> set[str]:
    return {
        button["data"].split(":")[0] for line in row.payload.get("buttons", []) for button in line
    }


async def test_the_escalation_notice_and_the_own_reminder_are_separate_messages(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    await world.person("head_hai", "thon_hai", "village_head")
    officer = await world.person("officer_an", "xa_an", "commune_committee")
    # Thôn Một has nobody registered in this test: its tasks are late at the commune too.
    village_late = {
        (await world.occurrence(t, village)).id
        for t in (T1, T2)
        for village in ("thon_mot", "thon_hai")
    }
    own = {(await world.occurrence(t, "xa_an")).id for t in TASKS}

    await run_sweep(world.app, at(25, 18))
    before = max((row.id for row in await world.outbox()), default=0)
    for moment in (at(26, 8), at(26, 9), at(26, 14), at(26, 20)):
        await run_sweep(world.app, moment)
    to_officer = [r for r in await world.outbox(before) if r.user_id == officer.id]

    header = vi("⚠️ Overdue in the {children} of {unit}:").format(children="thôn", unit="xã An")
    notices = [r for r in to_officer if header in r.payload["text"]]
    reminders = [r for r in to_officer if "done:" in str(r.payload.get("buttons"))]
    assert len(notices) == 1 and len(reminders) == 1  # one of each that day, not merged
    (notice,), (reminder,) = notices, reminders
    assert notice.id != reminder.id
    # The notice: the villages' tasks, to report on their behalf; none of the officer's own.
    assert button_actions(notice) == {"obh"}
    assert {int(b["data"].split(":")[1]) for line in notice.payload["buttons"] for b in line} == (
        village_late
    )
    assert "🔔" not in notice.payload["text"]
    # The reminder: the officer's own tasks with their four answers, no village in it.
    assert "obh" not in button_actions(reminder) and header not in reminder.payload["text"]
    reminded = {
        int(b["data"].split(":")[1])
        for line in reminder.payload["buttons"]
        for b in line
        if b["data"].startswith("done:")
    }
    assert reminded == own
    assert notice.id < reminder.id  # the news first, then what to do oneself
    assert notice.idempotency_key != reminder.idempotency_key
