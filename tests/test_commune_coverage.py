"""The commune's own weekly coverage report: its villages and roles only, in its own words,
with what to do next; Mondays at the digest time, once, never at night, never in a reminder."""

from __future__ import annotations

from sqlmodel import select

from bot.core.i18n import translator
from bot.core.models import ChannelIdentity
from scheduler.commands import run_digest, run_sweep
from tests.helpers.scheduler_world import UNITS, at, build_scheduler_world

vi = translator("vi")

# Xã An stays a xã; Xã Bình becomes a phường with a residential group (tổ dân phố).
WARD_UNITS = [
    ("xa_binh", "22483", "Phường Lộc Thọ", "commune", "district")
    if key == "xa_binh"
    else ("thon_ba", "22483-01", "Tổ dân phố 1", "village", "xa_binh")
    if key == "thon_ba"
    else (key, *rest)
    for key, *rest in UNITS
]


def coverage_rows(rows, user) -> list:  # noqa: ANN001
    return [r for r in rows if r.idempotency_key.startswith(f"coverage:{user.id}:")]


async def test_each_commune_gets_its_own_coverage_in_its_own_words(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework, units=WARD_UNITS)
    head = await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    await world.person("head_hai", "thon_hai", "village_head", "telegram", "1002")
    officer_an = await world.person("officer_an", "xa_an", "commune_committee", "telegram", "3001")
    officer_ward = await world.person(
        "officer_lt", "xa_binh", "commune_committee", "telegram", "3002"
    )
    await world.person("district", "district", "district_committee", "telegram", "4001")
    async with db.session() as session:  # Thôn Một's head blocked the chat
        identity = (
            await session.exec(select(ChannelIdentity).where(ChannelIdentity.user_id == head.id))
        ).one()
        identity.blocked = True
        session.add(identity)
        await session.commit()
    await run_sweep(world.app, at(18, 8))  # the week-before reminder cannot reach him

    assert (await run_digest(world.app, at(23, 6, 50))).coverage == 0  # before the digest time
    report = await run_digest(world.app, at(23, 7, 30))  # Monday
    assert report.coverage == 2
    rows = await world.outbox()
    (an,) = coverage_rows(rows, officer_an)
    (ward,) = coverage_rows(rows, officer_ward)

    text = an.payload["text"]
    assert text.startswith(vi("📵 Weekly coverage — {unit}").format(unit="xã An"))
    assert vi("Could not be reached last week: {count}").format(count=1) in text
    why = vi("has blocked the chat or unfollowed")
    step = vi("ask them to open the chat with the bot again")
    no_phone = vi("no phone number on record: ask them for one")
    assert f"• head_mot (Thôn Một): {why}; {step} — {no_phone}" in text
    assert "Tổ dân phố" not in text and "Lộc Thọ" not in text  # nothing of the other commune
    assert not an.payload.get("buttons")

    text = ward.payload["text"]
    assert text.startswith(vi("📵 Weekly coverage — {unit}").format(unit="phường Lộc Thọ"))
    assert "xã" not in text.lower().replace("xã hội", "")
    assert (
        "• "
        + vi("{role}: nobody registered; {step}").format(
            role="Tổ trưởng Tổ dân phố 1", step=vi("invite them (/moi)")
        )
        in text.splitlines()
    )
    assert "Thôn" not in text and "head_mot" not in text

    # The district still has its own copy, apart from its digest.
    district = world.users["district"]
    assert [r for r in rows if r.user_id == district.id and r.idempotency_key.endswith(":coverage")]

    # Once a week: again on Monday, the next days, at night: nothing more.
    for moment in (at(23, 7, 31), at(23, 15), at(24, 7, 30), at(29, 7, 30), at(30, 22)):
        assert (await run_digest(world.app, moment)).coverage == 0
    assert len(coverage_rows(await world.outbox(), officer_an)) == 1
    # The next Monday, a new week: the ward's gap is still there, so it is told again.
    assert (await run_digest(world.app, at(30, 7, 30))).coverage >= 1
    assert len(coverage_rows(await world.outbox(), officer_ward)) == 2

    # Never inside a reminder or an overdue list.
    header = vi("📵 Weekly coverage — {unit}").format(unit="")
    for row in await world.outbox():
        if not row.idempotency_key.startswith(("coverage:", "digest:")):
            assert header not in row.payload["text"]
        if row.idempotency_key.startswith("digest:") and not row.idempotency_key.endswith(
            ":coverage"
        ):
            assert header not in row.payload.get("text", "")


async def test_a_commune_where_everyone_can_be_reached_gets_no_coverage_report(
    db, settings, framework
):
    world = await build_scheduler_world(settings, db, framework)
    await world.person("head_mot", "thon_mot", "village_head", "telegram", "1001")
    await world.person("head_hai", "thon_hai", "village_head", "telegram", "1002")
    officer = await world.person("officer_an", "xa_an", "commune_committee", "telegram", "3001")
    assert (await run_digest(world.app, at(23, 7, 30))).coverage == 0
    assert not coverage_rows(await world.outbox(), officer)
