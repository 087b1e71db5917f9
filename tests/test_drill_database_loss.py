"""Drill: the database drops the app's connections during a sweep and during inbound traffic.

PostgreSQL only (SQLite has no server to lose). The app's engine tags its connections with an
`application_name` of its own, and a saboteur runs `pg_terminate_backend` on exactly those, at
chosen statements, from a separate admin connection: the same thing a PostgreSQL restart or a
failover does to a running papibot.

What must hold:

* the app recovers by itself: the next checkout finds the dead connections (pool_pre_ping) and
  opens new ones; nobody restarts anything;
* a sweep cut off mid-transaction leaves nothing half done, and its next run does exactly what
  an undisturbed sweep does (compared with a twin database where no connection was lost);
* an inbound update whose recording is cut off is answered with a 5xx, so the platform (the
  fake Telegram's delivery loop below, which redelivers like Telegram does) sends it again; one
  whose handling is cut off stays recorded and the inbox's worker handles it again once the
  database is back; no update is lost and none is applied twice: one inbound row per update,
  one registration per invite, no "something went wrong" apology standing in for a lost update;
* the sender, whose connections die too, delivers every queued reply in the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel, col, select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import (
    AuditLog,
    ChannelIdentity,
    Escalation,
    InboundUpdate,
    Invite,
    Occurrence,
    Outbox,
    OutboxStatus,
    Reminder,
    Unit,
    User,
)
from scheduler.commands import run_sweep
from tests.conftest import POSTGRES_URL, drop_postgres_schema, make_postgres_database
from tests.helpers.drill_support import (
    Saboteur,
    postgres_app_database,
    statement_starts,
    wait_for,
)
from tests.helpers.rows import count
from tests.helpers.scheduler_world import at, build_scheduler_world, register_everyone_but_thon_ba
from tests.helpers.telegram_harness import Harness, harness

pytestmark = [
    pytest.mark.drill,
    pytest.mark.postgres,
    pytest.mark.skipif(
        not POSTGRES_URL,
        reason="database-loss drill needs PostgreSQL: set PAPIBOT_TEST_DATABASE_URL",
    ),
]

MOMENTS = [at(18, 8), at(24, 8), at(25, 8), at(26, 8), at(27, 8), at(28, 8)]
PEOPLE = 8
# The n-th write (inbound row recorded or marked handled, user, reply) meets a dead connection.
KILLS = {2, 7, 13, 20, 28}
MAX_DELIVERIES = 25  # per update: the fake platform gives up after that (the drill fails)


@contextlib.asynccontextmanager
async def app_schema(tag: str) -> AsyncIterator[tuple[Database, str]]:
    """A fresh schema with the tables, and the app's tagged engine on it."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    creator = await make_postgres_database(schema)
    async with creator.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    await creator.dispose()
    application_name = f"papibot-drill-{tag}-{schema}"
    db = postgres_app_database(POSTGRES_URL, schema, application_name)
    try:
        yield db, application_name
    finally:
        await db.dispose()
        await drop_postgres_schema(schema)


# --------------------------------------------------------------------------- the sweep


def _without_digest(key: str) -> str:
    head, _sep, last = key.rpartition(":")
    digest = len(last) == 16 and all(c in "0123456789abcdef" for c in last)
    return head if head and digest else key


async def sweep_outcome(db: Database) -> dict[str, object]:
    """What the sweeps did, in terms that do not depend on row ids."""
    async with db.session() as session:
        units = {u.id: u.code for u in (await session.exec(select(Unit))).all()}
        occurrences = {
            o.id: (o.task_key, units[o.unit_id], o.period)
            for o in (await session.exec(select(Occurrence))).all()
        }
        statuses = sorted(
            (*occurrences[o.id], o.status) for o in (await session.exec(select(Occurrence))).all()
        )
        reminders = sorted(
            (*occurrences[r.occurrence_id], r.stage, r.outcome)
            for r in (await session.exec(select(Reminder))).all()
        )
        escalations = sorted(
            (*occurrences[e.occurrence_id], e.step, units[e.target_unit_id])
            for e in (await session.exec(select(Escalation))).all()
        )
        # A letter's key ends with a digest of its occurrences' ids, which differ between two
        # plans on PostgreSQL (planned on two connections side by side): the key without it,
        # and the letter's text, say the same without the ids.
        outbox = sorted(
            (_without_digest(r.idempotency_key), r.channel, r.external_id, r.payload.get("text"))
            for r in (await session.exec(select(Outbox))).all()
        )
    return {
        "statuses": statuses,
        "reminders": reminders,
        "escalations": escalations,
        "outbox": outbox,
    }


async def scheduler_world(settings: Settings, db: Database, framework: Framework):  # noqa: ANN201
    world = await build_scheduler_world(settings, db, framework)
    await register_everyone_but_thon_ba(world)
    return world


async def test_a_sweep_cut_off_by_the_database_completes_on_its_next_run(
    tmp_path, framework: Framework
) -> None:
    reference_settings = Settings(_env_file=None, data_dir=tmp_path / "ref", secret_key="t")
    drilled_settings = Settings(_env_file=None, data_dir=tmp_path / "drill", secret_key="t")
    async with app_schema("ref") as (reference_db, _), app_schema("sweep") as (db, name):
        reference = await scheduler_world(reference_settings, reference_db, framework)
        drilled = await scheduler_world(drilled_settings, db, framework)
        # Moments whose sweep queues messages (on the others every stage is spaced: a
        # message came the day before).
        sending = [
            moment for moment in MOMENTS if (await run_sweep(reference.app, moment)).messages
        ]
        assert len(sending) >= 3
        expected = await sweep_outcome(reference_db)
        assert expected["reminders"] and expected["escalations"] and expected["outbox"]

        saboteur = Saboteur(POSTGRES_URL, name)
        saboteur.attach(db)
        cut_off: list[datetime] = []
        try:
            for moment in MOMENTS:
                if moment not in sending:
                    await run_sweep(drilled.app, moment)
                    continue
                before = await sweep_outcome(db)
                # The messages are queued last, after the overdue marks, the reminder stages
                # and the escalations were written in the same transaction: cut it there.
                saboteur.arm(statement_starts("INSERT INTO outbox"), at={1})
                with pytest.raises(DBAPIError) as lost:
                    await run_sweep(drilled.app, moment)
                assert lost.value.connection_invalidated, lost.value
                saboteur.disarm()
                cut_off.append(moment)
                # Nothing of the interrupted sweep remains…
                assert await sweep_outcome(db) == before
                # …and the next run (the scheduler's next minute) does it all.
                report = await run_sweep(drilled.app, moment)
                assert report.messages > 0, report
                again = await run_sweep(drilled.app, moment)
                assert again.messages == 0 and not again.escalations, again
        finally:
            await saboteur.close()
        print(f"\n[database-loss drill] sweep: {len(saboteur.kills)} connection losses: ")
        for kill in saboteur.kills:
            print(f"  match {kill[0]}: {kill[1]} backend(s) terminated before {kill[2]}")
        assert cut_off == sending
        assert all(ended >= 1 for _n, ended, _s in saboteur.kills)
        assert await sweep_outcome(db) == expected


# --------------------------------------------------------------------------- inbound traffic


class Platform:
    """Telegram's side: deliver each update to the webhook until it is answered 200
    (a 5xx or a broken connection is retried, as Telegram does), in order per chat."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.attempts: Counter[int] = Counter()
        self.failures: list[tuple[int, str]] = []  # (update id, status or error)

    async def deliver(self, update: dict) -> None:
        update_id = update["update_id"]
        for attempt in range(1, MAX_DELIVERIES + 1):
            self.attempts[update_id] += 1
            try:
                status = await self.h.fake.deliver(update)
            except (aiohttp.ClientError, TimeoutError) as error:
                self.failures.append((update_id, type(error).__name__))
            else:
                if status == 200:
                    return
                assert status is not None and status >= 500, (update_id, status)
                self.failures.append((update_id, str(status)))
            await asyncio.sleep(0.02 * attempt)
        raise AssertionError(f"update {update_id} was never accepted")

    async def conversation(self, updates: list[dict]) -> None:
        for update in updates:
            await self.deliver(update)


async def test_inbound_updates_survive_lost_connections_without_loss_or_repeat(
    tmp_path, framework: Framework
) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", secret_key="t", sender_lease_seconds=2
    )
    async with app_schema("inbound") as (db, name), harness(settings, db, framework) as h:
        saboteur = Saboteur(POSTGRES_URL, name)
        saboteur.attach(db)
        sender = asyncio.create_task(h.runtime.sender.run(idle_poll=0.2))
        try:
            chats = [9_100 + n for n in range(PEOPLE)]
            invites = [await h.world.invite(h.world.villages[n % 3], "village_head") for n in chats]
            conversations = [
                [
                    h.fake.command(chat, "start", invite.code),
                    h.fake.command(chat, "viec"),
                    h.fake.text(chat, "Thôn đã họp dân xong"),
                ]
                for chat, invite in zip(chats, invites, strict=True)
            ]
            updates = [update for talk in conversations for update in talk]
            # Cut the connections at several points of recording the updates (the webhook) and
            # of handling them (the registrations' transactions): when an inbound row, a user
            # row or a reply is about to be written.
            saboteur.arm(
                statement_starts(
                    "INSERT INTO users",
                    "INSERT INTO inbound_updates",
                    "UPDATE inbound_updates",
                    "INSERT INTO outbox",
                ),
                at=KILLS,
            )
            platform = Platform(h)
            async with asyncio.timeout(90):
                await asyncio.gather(*(platform.conversation(talk) for talk in conversations))
                await h.runtime.dispatcher.idle()  # every recorded update handled
            saboteur.disarm()

            # Recovered by itself: every reply is delivered by the sender in the end.
            async def everything_sent() -> bool:
                return await count(db, Outbox, Outbox.status != OutboxStatus.sent) == 0

            await wait_for(everything_sent, "the sender to deliver every reply", within=30)
        finally:
            h.runtime.sender.stop()
            await asyncio.wait_for(sender, timeout=10)
            await saboteur.close()

        retried = sum(n - 1 for n in platform.attempts.values())
        print(
            f"\n[database-loss drill] inbound: {len(updates)} updates, "
            f"{len(saboteur.kills)} connection losses, {len(platform.failures)} failed "
            f"deliveries ({Counter(s for _u, s in platform.failures)}), {retried} redeliveries"
        )
        assert len(saboteur.kills) == len(KILLS), saboteur.kills
        assert platform.failures, "no delivery failed: the drill did not cut any recording"
        cut_handling = [kill for kill in saboteur.kills if "INSERT INTO inbound" not in kill[2]]
        assert cut_handling, "the drill did not cut any handling"

        # No update lost, none applied twice.
        async with db.session() as session:
            inbound = (await session.exec(select(InboundUpdate.update_id))).all()
            keys = (await session.exec(select(Outbox.idempotency_key))).all()
            used = (
                await session.exec(select(Invite).where(col(Invite.used_at).is_not(None)))
            ).all()
            audits = Counter((await session.exec(select(AuditLog.action))).all())
        assert sorted(inbound) == sorted(str(u["update_id"]) for u in updates)
        assert await count(db, User) == PEOPLE
        assert await count(db, ChannelIdentity) == PEOPLE
        assert len(used) == PEOPLE and len({i.used_by_user_id for i in used}) == PEOPLE
        assert audits["invite.redeemed"] == PEOPLE, audits
        assert audits["invite.wrong_code"] == 0, audits  # a /start applied twice says "used"
        apologies = [key for key in keys if key.endswith(":error")]
        assert apologies == [], "a lost connection was answered with an apology"
        replied = {key.split(":")[2] for key in keys if key.startswith("reply:telegram:")}
        assert replied == {str(u["update_id"]) for u in updates}
        for chat in chats:
            assert h.fake.sent_to(chat), f"chat {chat} got no answer"
