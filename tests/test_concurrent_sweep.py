"""Three workers sweeping the same PostgreSQL database at the same moments: every reminder stage
and escalation step is handled once, and every person gets one message per moment.

Runs only when PAPIBOT_TEST_DATABASE_URL points at PostgreSQL (SQLite runs a single worker).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlmodel import SQLModel, col, select

from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.models import Unit
from bot.core.services.people import add_user, link_identity
from scheduler.commands import run_plan
from scheduler.reminders import sweep
from tests.conftest import POSTGRES_URL, drop_postgres_schema, make_postgres_database
from tests.helpers.scheduler_world import (
    T1,
    T2,
    at,
    build_scheduler_world,
    register_everyone_but_thon_ba,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not POSTGRES_URL, reason="set PAPIBOT_TEST_DATABASE_URL to a PostgreSQL URL"
    ),
]

EXTRA_VILLAGES = 50
WORKERS = 3


async def crowded_world(settings: Settings, framework, primary: Database):
    """The simulated month's district, with 50 more villages in Xã An, each with its head."""
    async with primary.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    world = await build_scheduler_world(settings, primary, framework)
    async with primary.session() as session:
        for number in range(EXTRA_VILLAGES):
            session.add(
                Unit(
                    code=f"22480-x{number:03d}",
                    name=f"Thôn X{number:03d}",
                    level="village",
                    parent_id=world.units["xa_an"].id,
                )
            )
        await session.commit()
    await run_plan(world.app, at(1, 0, 5))
    await register_everyone_but_thon_ba(world)
    async with primary.session() as session:
        extra = (await session.exec(select(Unit).where(col(Unit.code).startswith("22480-x")))).all()
    async with primary.session() as session:
        for unit in extra:
            world.units[unit.code] = unit
            head = await add_user(session, unit, "village_head", f"head_{unit.code}")
            await link_identity(session, head, "telegram", unit.code)
            world.users[f"head_{unit.code}"] = head
        await session.commit()
    return world


@pytest.fixture
async def databases() -> AsyncIterator[tuple[Database, list[Database]]]:
    """One schema; a connection pool for the test and one per worker."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    primary = await make_postgres_database(schema)
    workers = [
        Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
        for _ in range(WORKERS)
    ]
    yield primary, workers
    for db in workers:
        await db.dispose()
    await primary.dispose()
    await drop_postgres_schema(schema)


MOMENTS = [at(18, 8), at(24, 8), at(25, 8), at(26, 8), at(27, 8), at(28, 8)]


def assert_each_thing_happened_once(world, reminders, escalations, outbox) -> None:
    assert len(reminders) == len({(r.occurrence_id, r.stage) for r in reminders})
    heads = {u.id for key, u in world.users.items() if key.startswith("head_")}
    # Every village task reminded a week before, the day before and the first day overdue
    # (the due day and the second overdue day are spaced: a message came the day before):
    # each head gets each of the three once (in one message per moment).
    sent = Counter(
        (int(button["data"].split(":")[1]), r.idempotency_key.split(":")[2])
        for r in outbox
        if r.user_id in heads
        for row in r.payload["buttons"]
        for button in row
        if button["data"].startswith("done:")
    )
    assert set(sent.values()) == {1} and len(sent) == 2 * len(heads) * 3
    days = {day for _occurrence, day in sent}
    assert days == {"20261118", "20261124", "20261126"}
    steps = Counter(e.step for e in escalations)
    villages = EXTRA_VILLAGES + 3
    assert steps["commune"] == 2 * villages and steps["supervisor"] >= 2 * villages
    # Each escalation told its people in exactly one message line.
    officer = world.users["officer_an"]
    lines = Counter(
        line
        for r in outbox
        if r.user_id == officer.id and r.idempotency_key.split(":")[2] == "20261126"
        for line in r.payload["text"].splitlines()
        if line.startswith("• ")
    )
    assert lines and set(lines.values()) == {1}


async def test_workers_sweeping_together_send_each_reminder_exactly_once(
    settings: Settings, framework, databases
):
    primary, workers = databases
    world = await crowded_world(settings, framework, primary)
    apps = [AppContext(settings=settings, db=db, framework=world.app.framework) for db in workers]
    for moment in MOMENTS:
        reports = await asyncio.gather(*(sweep(app.db, app, moment) for app in apps))
        assert sum(r.claimed for r in reports) >= 1
        # A person's tasks may be split between two workers' messages when their claims
        # interleave, but no task is ever in two of them (checked below).
        rows = [r for r in await world.outbox() if r.idempotency_key.startswith("remind:")]
        per_person_moment = Counter((r.user_id, r.idempotency_key.split(":")[2]) for r in rows)
        assert max(per_person_moment.values()) <= WORKERS
    outbox = await world.outbox()
    escalations = await world.escalations()
    assert_each_thing_happened_once(world, await world.reminders(), escalations, outbox)
    # Run again at every moment: nothing new anywhere.
    for moment in MOMENTS:
        reports = await asyncio.gather(*(sweep(app.db, app, moment) for app in apps))
        assert sum(r.messages for r in reports) == 0
    assert len(await world.outbox()) == len(outbox)
    for task in (T1, T2):
        occurrence = await world.occurrence(task, "thon_hai")
        assert [e.step for e in escalations if e.occurrence_id == occurrence.id] == [
            "commune",
            "supervisor",
        ]


async def test_workers_taking_small_batches_share_the_work_without_repeating_it(
    settings: Settings, framework, databases
):
    primary, workers = databases
    world = await crowded_world(settings, framework, primary)
    apps = [AppContext(settings=settings, db=db, framework=world.app.framework) for db in workers]
    busy_workers = set()
    for moment in MOMENTS:
        while True:  # each worker takes 20 occurrences a pass, skipping those others hold
            reports = await asyncio.gather(*(sweep(app.db, app, moment, limit=20) for app in apps))
            busy_workers |= {index for index, r in enumerate(reports) if r.claimed}
            if not any(r.claimed for r in reports):
                break
    assert len(busy_workers) >= 2  # the work really was shared
    assert_each_thing_happened_once(
        world, await world.reminders(), await world.escalations(), await world.outbox()
    )
