"""A button's argument comes from the chat, so it can be anything: what cannot name a row (more
digits than an id has, a superscript digit) gets the kind refusal and changes nothing, on both
databases."""

import pytest
from sqlmodel import select

from bot.core.messages import Kind
from bot.core.models import Occurrence, Report
from tests.helpers.chat_person import Person
from tests.helpers.scheduler_world import T1, build_scheduler_world


@pytest.mark.parametrize("action", ["done", "ext", "cant", "rv", "appr", "vil"])
@pytest.mark.parametrize("forged", ["99999999999999999999", "²"])
async def test_a_forged_row_id_is_refused_kindly_and_changes_nothing(
    db, settings, framework, action, forged
):
    world = await build_scheduler_world(settings, db, framework, tasks=(T1,))
    await world.person("officer_an", "xa_an", "commune_committee", "telegram", "3001")
    person = Person(world, "3001")
    async with db.session() as session:
        before = (
            [o.status for o in (await session.exec(select(Occurrence))).all()],
            len((await session.exec(select(Report))).all()),
        )
    seen = len(await world.outbox())
    await person.send(kind=Kind.button, data=f"{action}:{forged}")
    replies = (await world.outbox())[seen:]
    assert len(replies) == 1 and replies[0].payload["text"], replies  # an answer, not a failure
    async with db.session() as session:
        after = (
            [o.status for o in (await session.exec(select(Occurrence))).all()],
            len((await session.exec(select(Report))).all()),
        )
    assert after == before
