"""The sweep at scale: batch after batch in one sweep within its time budget, the rest at the
next sweep and nothing twice; overdue marking in batches; a claim bounded to the catch-up
window; identities and outbox rows loaded and written many at a time, with the same result."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from bot.core.messages import Button, Outgoing
from bot.core.models import (
    ChannelIdentity,
    DialogState,
    Occurrence,
    OccurrenceStatus,
    Outbox,
    Unit,
    User,
)
from bot.core.services.outbox import Queued, enqueue, enqueue_many, preferred_identity
from bot.core.services.people import add_user, link_identity, preferred_identities
from bot.core.sqlutil import dialect_name
from bot.core.timeutil import to_db
from scheduler import commands
from scheduler.commands import run_plan
from scheduler.policy import load_policies
from scheduler.reminders import _claim_statement, _work, claim, mark_overdue, sweep
from tests.helpers.scheduler_world import (
    T1,
    T2,
    TASKS,
    UNITS,
    at,
    build_scheduler_world,
    register_everyone_but_thon_ba,
)

EXTRA_VILLAGES = 8


async def crowded_world(settings, db, framework, units=UNITS):
    """The scheduler world with eight more villages in Xã An, each with its registered head."""
    world = await build_scheduler_world(settings, db, framework, units=units)
    async with db.session() as session:
        for number in range(EXTRA_VILLAGES):
            unit = Unit(
                code=f"22480-x{number}",
                name=f"Thôn X{number}",
                level="village",
                parent_id=world.units["xa_an"].id,
            )
            session.add(unit)
            await session.flush()
            world.units[unit.code] = unit
        await session.commit()
    await run_plan(world.app, at(1, 0, 5))
    await register_everyone_but_thon_ba(world)
    for number in range(EXTRA_VILLAGES):
        await world.person(f"head_x{number}", f"22480-x{number}", "village_head")
    return world


async def november(world) -> list[Occurrence]:
    async with world.db.session() as session:
        rows = await session.exec(select(Occurrence).where(Occurrence.period == "2026-11"))
        return list(rows.all())


def reminded(outbox) -> Counter:
    """(person, occurrence, day of the message) for every task in the queued reminders."""
    return Counter(
        (row.user_id, int(button["data"].split(":")[1]), row.idempotency_key.split(":")[2])
        for row in outbox
        if row.idempotency_key.startswith("remind:")
        for line in row.payload["buttons"]
        for button in line
        if button["data"].startswith("done:")
    )


async def test_one_sweep_claims_batch_after_batch_until_nothing_is_due(db, settings, framework):
    world = await crowded_world(settings, db, framework)
    due = await november(world)
    assert len(due) > 3 * 5

    report = await sweep(world.db, world.app, at(18, 8), limit=5)

    assert report.claimed == len(due)
    recorded = [r for r in await world.reminders() if r.stage == "before-7@20261125"]
    assert sorted(r.occurrence_id for r in recorded) == sorted(o.id for o in due)
    assert report.sent + report.unreachable == len(due)  # Thôn Ba's head is not registered
    outbox = await world.outbox()
    assert report.messages == len(outbox)
    told = reminded(outbox)
    assert set(told.values()) == {1}  # nobody told of a task twice
    queued = {r.occurrence_id for r in recorded if r.outcome == "queued"}  # no sender here
    assert {occurrence_id for _, occurrence_id, _ in told} == queued
    heads = {user.id for key, user in world.users.items() if key.startswith("head_")}
    assert {user_id for user_id, _, _ in told} >= heads
    again = await sweep(world.db, world.app, at(18, 8), limit=5)
    assert (again.claimed, again.messages) == (0, 0)


async def test_a_sweep_out_of_budget_leaves_the_rest_to_the_next_without_repeats(
    db, settings, framework
):
    world = await crowded_world(settings, db, framework)
    due = await november(world)
    claimed = []
    for _ in range(len(due)):  # at least one occurrence a sweep
        report = await sweep(world.db, world.app, at(26, 8), limit=4, budget_seconds=0)
        assert report.claimed <= 4
        claimed.append(report.claimed)
        if not report.claimed:
            break
    assert claimed[0] == 4 and claimed[-1] == 0 and len(claimed) > 3
    reminders = await world.reminders()
    assert len(reminders) == len({(r.occurrence_id, r.stage) for r in reminders})
    assert {r.occurrence_id for r in reminders if r.stage == "overdue-1@20261125"} == {
        o.id for o in due
    }
    told = reminded(await world.outbox())
    assert told and set(told.values()) == {1}
    escalations = await world.escalations()
    assert len(escalations) == len({(e.occurrence_id, e.step) for e in escalations})
    villages = {u.id for u in world.units.values() if u.level == "village"}
    commune_step = {e.occurrence_id for e in escalations if e.step == "commune"}
    assert commune_step == {o.id for o in due if o.unit_id in villages}


async def test_an_occurrence_that_stays_due_does_not_hold_the_sweep_back(db, settings, framework):
    # A village right under the province (a data mistake): its "commune" step has no target,
    # so its late occurrences stay claimable after every sweep. It has the lowest unit id of
    # the villages, so it comes first in every claim.
    units = [UNITS[0], ("orphan", "99999-01", "Thôn Lẻ", "village", "province"), *UNITS[1:]]
    world = await crowded_world(settings, db, framework, units=units)
    orphan = world.units["orphan"].id
    stuck = [o.id for o in await november(world) if o.unit_id == orphan]
    assert stuck

    report = await sweep(world.db, world.app, at(26, 8), limit=len(stuck), budget_seconds=10)

    due = await november(world)
    assert report.claimed == len(due)
    assert {r.occurrence_id for r in await world.reminders()} == {o.id for o in due}
    assert not [
        e for e in await world.escalations() if e.occurrence_id in stuck and e.step == "commune"
    ]


# 15 occurrences are late: batches of 4 end with a partial one, of 5 with a full one (then an
# empty one), of 1000 with a single partial one.
@pytest.mark.parametrize("batch_size", [4, 5, 1000])
async def test_mark_overdue_marks_every_late_occurrence_in_batches(
    db, settings, framework, batch_size
):
    world = await build_scheduler_world(settings, db, framework)
    late = {o.id for o in await november(world)}
    assert len(late) == 15
    now_db = to_db(at(25, 18))
    async with db.session() as session:
        assert await mark_overdue(session, now_db, batch_size=batch_size) == len(late)
        await session.commit()
    async with db.session() as session:
        rows = (await session.exec(select(Occurrence.id, Occurrence.status))).all()
        assert len(rows) > len(late)  # December is planned too, and stays open
        for occurrence_id, status in rows:
            expected = OccurrenceStatus.overdue if occurrence_id in late else OccurrenceStatus.open
            assert status == expected
        assert await mark_overdue(session, now_db, batch_size=batch_size) == 0


async def add_history(world, years: int = 2) -> set[int]:
    """Two years of monthly occurrences escalated long ago (escalated stays active for ever),
    the latest due in August, before any sweep's 30 catch-up days."""
    made = []
    async with world.db.session() as session:
        for back in range(3, 12 * years + 3):  # months before November 2026
            year, month_index = divmod(2026 * 12 + 10 - back, 12)
            month = datetime(year, month_index + 1, 25, 10, tzinfo=UTC)
            for task in (T1, T2):
                for unit in ("thon_mot", "thon_hai", "thon_ba"):
                    occurrence = Occurrence(
                        task_key=task,
                        unit_id=world.units[unit].id,
                        period=f"{month:%Y-%m}",
                        window_start=to_db(month - timedelta(days=24)),
                        due_at=to_db(month),
                        status=OccurrenceStatus.escalated,
                    )
                    session.add(occurrence)
                    made.append(occurrence)
        await session.commit()
    return {o.id for o in made}


MOMENTS = [at(18, 8), at(24, 8), at(25, 8), at(26, 8), at(28, 8), at(2, 8, month=12)]


async def test_the_claim_reads_the_catch_up_window_only_and_finds_the_same(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    await register_everyone_but_thon_ba(world)
    history = await add_history(world)
    policies = load_policies(settings)
    for moment in MOMENTS:
        shape, params = _work(policies, moment)
        clause_bounds = [v for k, v in params.items() if k.endswith(("_low", "_high"))]
        assert min(clause_bounds) == params["envelope_low"]
        assert max(clause_bounds) == params["envelope_high"]
        async with db.session() as session:
            statement = _claim_statement(shape, dialect_name(session) == "postgresql")
            bound = {
                **params,
                "task_keys": list(TASKS),
                "claim_limit": 10_000,
                "after_unit_id": 0,
                "after_id": 0,
            }
            found = [o.id for o in (await session.exec(statement, params=bound)).all()]
            widened = {
                **bound,
                "envelope_low": to_db(datetime(2000, 1, 1, tzinfo=UTC)),
                "envelope_high": to_db(datetime(2100, 1, 1, tzinfo=UTC)),
            }
            assert found == [o.id for o in (await session.exec(statement, params=widened)).all()]
            assert not history & set(found)
        await sweep(world.db, world.app, moment)
    async with db.session() as session:
        statuses = await session.exec(
            select(Occurrence.status).where(col(Occurrence.id).in_(history))
        )
        assert set(statuses.all()) == {OccurrenceStatus.escalated}
    assert not {r.occurrence_id for r in await world.reminders()} & history
    assert not {e.occurrence_id for e in await world.escalations()} & history


async def test_the_claim_moves_forward_from_the_last_batch(db, settings, framework):
    await crowded_world(settings, db, framework)
    policies = load_policies(settings)
    keys = list(TASKS)
    async with db.session() as session:
        everything = [
            (o.unit_id, o.id) for o in await claim(session, policies, at(18, 8), keys, 10_000)
        ]
    assert len(everything) > 3 * 7 and everything == sorted(everything)
    pages: list[tuple[int, int]] = []
    for _ in range(len(everything)):  # a claim that does not move on would never end
        async with db.session() as session:
            after = pages[-1] if pages else (0, 0)
            page = await claim(session, policies, at(18, 8), keys, limit=7, after=after)
            pages += [(o.unit_id, o.id) for o in page]
        if len(page) < 7:
            break
    assert pages == everything


# --- identities and the outbox, many at a time ------------------------------------------------


async def test_preferred_identities_choose_as_preferred_identity_does(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    now = datetime.now(UTC)
    cases = {
        "telegram only": [("telegram", None, False)],
        "the chat used last": [
            ("telegram", now - timedelta(days=2), False),
            ("zalo_bot", now - timedelta(hours=1), False),
        ],
        "never a blocked one": [
            ("telegram", now - timedelta(days=3), False),
            ("zalo_bot", now - timedelta(hours=1), True),
        ],
        "zalo oa out of its window": [
            ("zalo_oa", now - timedelta(days=9), False),
            ("telegram", now - timedelta(days=20), False),
        ],
        "zalo oa within it": [("zalo_oa", now - timedelta(days=2), False)],
        "only blocked": [("telegram", now, True)],
        "no chat": [],
    }
    users = []
    async with db.session() as session:
        for number, (name, chats) in enumerate(cases.items()):
            user = await add_user(session, world.units["thon_mot"], "village_head", name)
            users.append(user.id)
            for index, (channel, last, blocked) in enumerate(chats):
                session.add(
                    ChannelIdentity(
                        user_id=user.id,
                        channel=channel,
                        external_id=f"{number}-{index}",
                        blocked=blocked,
                        last_interaction_at=to_db(last) if last else None,
                    )
                )
        await session.commit()
    async with db.session() as session:
        many = await preferred_identities(session, users)
        one_by_one = [await preferred_identity(session, user_id) for user_id in users]
    assert [i.id if i else None for i in one_by_one] == [
        many[u].id if many[u] else None for u in users
    ]
    assert sum(i is None for i in one_by_one) == 2


def menu_message(count: int) -> Outgoing:
    return Outgoing(
        text="🔔",
        buttons=[[Button(f"#{n}", f"done:{n}"), Button("📷", f"photo:{n}")] for n in range(count)],
    )


async def test_enqueue_many_queues_what_enqueue_would_once_each(db):
    created = to_db(datetime(2026, 11, 18, 1, tzinfo=UTC))
    async with db.session() as session:
        await enqueue(session, "telegram", "old", menu_message(1), "seen-before")
        single = await enqueue(session, "zalo_bot", "one", menu_message(2), "single", user_id=None)
        single.created_at = created
        await session.commit()
    messages = [
        Queued("zalo_bot", "many", menu_message(2), "batch-menu", created_at=created),
        Queued("telegram", "tg", menu_message(3), "batch-buttons", created_at=created),
        Queued("telegram", "old", menu_message(1), "seen-before"),
        Queued("telegram", "tg", menu_message(5), "batch-buttons"),  # the same key again
    ]
    async with db.session() as session:
        added = await enqueue_many(session, messages)
        await session.commit()
    assert added == {"batch-menu", "batch-buttons"}
    async with db.session() as session:
        assert await enqueue_many(session, messages) == set()
        rows = {row.idempotency_key: row for row in (await session.exec(select(Outbox))).all()}
        states = {
            state.external_id: state.data for state in (await session.exec(select(DialogState)))
        }
    assert set(rows) == {"seen-before", "single", "batch-menu", "batch-buttons"}
    one, many = rows["single"], rows["batch-menu"]
    assert many.payload == one.payload and many.created_at == one.created_at == created
    assert (many.status, many.attempts, many.channel) == (one.status, one.attempts, "zalo_bot")
    assert states["many"] == states["one"] and states["many"]["menu"]
    assert rows["batch-buttons"].payload == menu_message(3).to_payload()
    assert "tg" not in states  # Telegram shows the buttons: no numbered menu


# --- the database and the plan ----------------------------------------------------------------


async def test_postgresql_connections_run_without_jit_and_keep_their_settings(db):
    async with db.session() as session:
        if dialect_name(session) != "postgresql":
            pytest.skip("PostgreSQL only")
        jit = (await session.exec(text("SHOW jit"))).scalar_one()
        path = (await session.exec(text("SHOW search_path"))).scalar_one()
    assert jit == "off" and path.startswith("t_")  # the test's own schema is still set


async def test_the_plan_commits_as_it_goes_on_sqlite_only(db, settings, framework, monkeypatch):
    world = await build_scheduler_world(settings, db, framework)
    seen = []
    plan = commands.plan

    async def recording_plan(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(kwargs.get("commit_each"))
        return await plan(*args, **kwargs)

    monkeypatch.setattr(commands, "plan", recording_plan)
    await run_plan(world.app, at(1, 0, 5, month=12))
    assert seen == [db.is_sqlite]


async def test_identities_loaded_for_a_sweep_follow_the_chat_used_last(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    head = await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    async with db.session() as session:
        await link_identity(session, await session.get(User, head.id), "zalo_bot", "zb-1")
        await session.commit()
    await sweep(world.db, world.app, at(18, 8))
    (row,) = [r for r in await world.outbox() if r.user_id == head.id]
    assert (row.channel, row.external_id) == ("zalo_bot", "zb-1")
    async with db.session() as session:
        state = (
            await session.exec(select(DialogState).where(DialogState.external_id == "zb-1"))
        ).one()
    buttons = [button["data"] for line in row.payload["buttons"] for button in line]
    # "All done" and "one at a time" for both, then two tasks with four answers each.
    assert state.data["menu"] == buttons and len(buttons) == 10
