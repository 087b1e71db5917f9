"""Every channel gets the digest's files or is told why not, and every digest leads to the
dashboard in one tap: real HTTP to a fake Zalo Bot API, a real database, our sender."""

from __future__ import annotations

import logging

import pytest

from bot.channels.zalo_bot import ZaloBotChannel
from bot.core.i18n import translator
from scheduler import digest_access
from scheduler.commands import run_digest
from tests.helpers.fake_zalo import start_stack
from tests.helpers.scheduler_world import at, build_scheduler_world
from tests.test_zalo_bot import text_update

vi = translator("vi")
ZALO_CHAT = "d1d2d3d4e5e6f7f8a9a0"
NOTE = vi(
    "📎 {what} cannot come in this chat: type /web for a link to the dashboard, where "
    "everything is."
).format(what=vi("The chart and the spreadsheet"))


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):  # noqa: ANN001
    """Each test is a new process as far as the once-per-process warning goes."""
    monkeypatch.setattr(digest_access, "_warned", set())


def public_url_warnings(caplog) -> list[logging.LogRecord]:  # noqa: ANN001
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "PAPIBOT_PUBLIC_URL" in r.getMessage()
    ]


async def test_zalo_bot_without_a_public_url_is_told_where_the_files_are(
    db, settings, framework, caplog
):
    world = await build_scheduler_world(settings, db, framework)
    on_zalo = await world.person(
        "district", "district", "district_committee", "zalo_bot", ZALO_CHAT
    )
    second = await world.person("deputy", "district", "district_committee", "zalo_bot", "e1e2e3")
    on_telegram = await world.person("clerk", "district", "district_committee", "telegram", "4009")
    stack = await start_stack(world.app, ZaloBotChannel)
    try:
        settings.public_url = ""  # no public address: Zalo Bot cannot be given a file's link
        caplog.set_level(logging.WARNING)
        assert (await run_digest(world.app, at(23, 7, 30))).weekly == 3  # a Monday
        assert (await run_digest(world.app, at(30, 7, 30))).weekly == 3
        # The operator is told once, with the setting to change, however many digests.
        (warning,) = public_url_warnings(caplog)
        assert "zalo_bot" in warning.getMessage()

        rows = await world.outbox()
        for person in (on_zalo, second):
            mine = [r.idempotency_key.rsplit(":", 1)[1] for r in rows if r.user_id == person.id]
            assert mine == ["text", "coverage"] * 2  # no chart, no workbook queued for them
        theirs = [r.idempotency_key.rsplit(":", 1)[1] for r in rows if r.user_id == on_telegram.id]
        # The trend chart comes from the second weekly digest on: the first week is the record's
        # first, and one column is no trend.
        assert theirs == ["text", "chart", "xlsx", "coverage"] + [
            "text",
            "chart",
            "trend",
            "xlsx",
            "coverage",
        ]
        telegram_text = next(r for r in rows if r.user_id == on_telegram.id).payload["text"]
        assert NOTE not in telegram_text

        await stack.sender.drain_once()
        assert not [m for m in stack.fake.bot_sent if m["method"] == "sendPhoto"]
        texts = stack.fake.bot_texts(ZALO_CHAT)
        headline = texts[0]
        assert NOTE in headline
        assert headline.endswith("\n1. " + vi("🌐 Open the dashboard"))
        assert not [t for t in texts if vi("Every overdue and open item") in t]

        # Typing 1 (the numbered button) asks for the sign-in link, as /web does.
        await stack.fake.updates.put(text_update(ZALO_CHAT, "1", wrapped=False))
        assert await stack.channel.poll_once() == 1
        await stack.settle()
        assert "/dashboard/login/" in stack.fake.bot_texts(ZALO_CHAT)[-1]
    finally:
        await stack.close()


async def test_with_a_public_url_zalo_bot_gets_the_chart_and_the_workbook_and_no_warning(
    db, settings, framework, caplog
):
    world = await build_scheduler_world(settings, db, framework)
    person = await world.person("district", "district", "district_committee", "zalo_bot", ZALO_CHAT)
    stack = await start_stack(world.app, ZaloBotChannel)  # public_url: our server on loopback
    try:
        caplog.set_level(logging.WARNING)
        assert (await run_digest(world.app, at(23, 7, 30))).weekly == 1
        assert not public_url_warnings(caplog)
        rows = [r for r in await world.outbox() if r.user_id == person.id]
        assert [r.idempotency_key.rsplit(":", 1)[1] for r in rows] == [
            "text",
            "chart",
            "xlsx",
            "coverage",
        ]
        await stack.sender.drain_once()
        (photo,) = [m for m in stack.fake.bot_sent if m["method"] == "sendPhoto"]
        assert photo["photo"].startswith(stack.url + "/media/")
        texts = stack.fake.bot_texts(ZALO_CHAT)
        assert NOTE not in texts[0]
        assert any(f"{stack.url}/media/" in t and ".xlsx" in t for t in texts)
    finally:
        await stack.close()


async def test_every_digest_headline_has_the_dashboard_button(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    district = await world.person("district", "district", "district_committee", "telegram", "1")
    agency = await world.person("noi_vu", "so_noi_vu", "province_agency:so-noi-vu", "telegram", "2")
    await run_digest(world.app, at(23, 7, 30))  # weekly
    # Sở Nội vụ's monthly summary of November needs something due in it.
    await run_digest(world.app, at(1, 7, 30, month=12))
    rows = await world.outbox()
    headlines = [
        r
        for r in rows
        if r.user_id in (district.id, agency.id) and r.idempotency_key.endswith(":text")
    ]
    assert {r.idempotency_key.split(":")[2] for r in headlines} >= {"weekly", "monthly"}
    for row in headlines:
        assert row.payload["buttons"] == [
            [{"label": vi("🌐 Open the dashboard"), "data": "menu:web"}]
        ]


def test_the_note_names_only_what_the_chat_cannot_carry(settings, caplog):  # noqa: ANN001
    settings.public_url = ""
    caplog.set_level(logging.WARNING)
    assert digest_access.files_note(vi, "telegram", settings) == ""  # uploads its files
    oa = digest_access.files_note(vi, "zalo_oa", settings)  # uploads photos, links documents
    assert oa.startswith("📎 " + vi("The spreadsheet") + " ")
    assert [r.getMessage().split()[0] for r in public_url_warnings(caplog)] == ["zalo_oa"]
    settings.public_url = "https://papi.example.vn"
    assert digest_access.files_note(vi, "zalo_bot", settings) == ""
    assert digest_access.files_note(vi, "zalo_oa", settings) == ""
