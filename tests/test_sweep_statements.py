"""The busy sweep without N+1: the statements a claimed batch runs do not grow with the number
of units (and people, and chats) in it. Counted on the engine, as the database sees them."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlmodel import select

from bot.core.db import Database
from bot.core.models import Escalation, Occurrence
from scheduler.commands import run_sweep
from scheduler.reminders import sweep
from tests.helpers.scheduler_world import at
from tests.test_sweep_scale import crowded_world

TREE_LEVELS = 4  # village, commune, district, province
# The larger batch has kinds of work the small one has not (an unreachable unit, a numbered menu
# for a Zalo chat): a few more kinds of statement, each once.
EXTRA_KINDS = 6


def shape(statement: str) -> str:
    """A statement without its parameters: IN lists and VALUES rows of any length look alike."""
    text = re.sub(r"\$\d+(::[A-Z]+(\[\])?)?|%\(\w+\)s", "?", statement)
    text = re.sub(r"\(\?(, \?)*\)", "(…)", text)
    return re.sub(r"\(…\)(, \(…\))+", "(…)", text)


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, PLR0913
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)


async def escalated_units(db: Database, after: int) -> set[int]:
    async with db.session() as session:
        rows = await session.exec(
            select(Occurrence.unit_id)
            .join(Escalation, Escalation.occurrence_id == Occurrence.id)
            .where(Escalation.id > after)
        )
        return set(rows.all())


async def last_escalation(db: Database) -> int:
    async with db.session() as session:
        ids = (await session.exec(select(Escalation.id))).all()
    return max(ids, default=0)


async def test_a_late_batch_runs_as_many_statements_for_many_villages_as_for_few(
    db, settings, framework
):
    world = await crowded_world(settings, db, framework)
    await run_sweep(world.app, at(25, 18))  # past due: overdue, nobody told yet
    one_day_late = at(26, 8)  # the commune's step has come for every late village task

    mark = await last_escalation(db)
    with counted(db) as few_statements:
        few = await sweep(db, world.app, one_day_late, limit=10, budget_seconds=0)
    few_units = await escalated_units(db, mark)

    mark = await last_escalation(db)
    with counted(db) as many_statements:
        many = await sweep(db, world.app, one_day_late, limit=60, budget_seconds=0)
    many_units = await escalated_units(db, mark)

    assert few.claimed == 10 and many.claimed > 2 * few.claimed
    assert len(many_units) >= 2 * max(len(few_units), 1), (few_units, many_units)
    assert many.escalations and few.escalations
    # Each kind of statement runs once a batch, or once per level of the tree (a village, its
    # commune, district, province): never once per unit, person or chat.
    for name, statements in (("few", few_statements), ("many", many_statements)):
        kinds = Counter(shape(statement) for statement in statements)
        worst, times = kinds.most_common(1)[0]
        assert times <= TREE_LEVELS, f"{name}: {times} × {worst[:80]}"
    assert len(many_statements) <= len(few_statements) + EXTRA_KINDS, (
        f"{len(few_statements)} statements for {len(few_units)} units, "
        f"{len(many_statements)} for {len(many_units)}"
    )
