"""A tapped card is replaced in place where the channel can edit (Telegram, the simulator), and
the outbox row says what happened; Zalo Bot and Zalo OA keep getting new messages.

Runs the real conversations, sender and platform fakes on loopback (tests/helpers/drivers.py),
on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import col, select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import Outbox, OutboxStatus
from tests.helpers.drivers import make_driver


async def _registered(d) -> None:  # noqa: ANN001
    invite = await d.world.invite(d.world.villages[0], "village_head")
    await d.start("head", invite.code)
    await d.say("head", "/viec")


def _first(messages, prefix: str) -> str:  # noqa: ANN001
    return next(data for sent in messages for data in sent.buttons if data.startswith(prefix))


async def _rows(d, chat: str = "head") -> list[Outbox]:  # noqa: ANN001
    async with d.db.session() as session:
        rows = await session.exec(
            select(Outbox)
            .where(Outbox.channel == d.name, Outbox.external_id == d.external_id(chat))
            .order_by(col(Outbox.id))
        )
        return list(rows.all())


async def test_telegram_edits_the_tapped_card_and_falls_back_when_it_is_gone(
    settings: Settings, db: Database, framework: Framework
) -> None:
    async with make_driver("telegram", settings, db, framework) as d:
        await _registered(d)
        fake, chat = d.fake, int(d.external_id("head"))
        done = _first(await d.messages("head"), "done:")
        card = next(m for m in fake.sent_to(chat) if done in m.callback_data())
        shown = len(await d.messages("head"))

        await d.tap("head", done)
        edit = fake.calls_to("editMessageText", ok=True)[-1]
        assert (edit.params["chat_id"], edit.params["message_id"]) == (chat, card.message_id)
        assert len(await d.messages("head")) == shown  # replaced, nothing added
        row = (await _rows(d))[-1]
        assert (row.status, row.edit_of, row.edit_result) == (
            OutboxStatus.sent,
            str(card.message_id),
            "edited",
        )
        assert row.platform_message_id == str(card.message_id)

        # The person deleted the card before the answer came: the edit is refused as the Bot
        # API refuses it, and the answer arrives as a new message.
        next_data = _first(await d.messages("head"), "next:")
        update = fake.press(chat, next_data)
        fake.forget(chat, card.message_id)
        assert await fake.deliver(update) == 200
        await d.flush()
        refused = fake.calls_to("editMessageText", ok=False)
        assert [(c.status, c.description) for c in refused] == [
            (400, "Bad Request: message to edit not found")
        ]
        row = (await _rows(d))[-1]
        assert (row.status, row.edit_of, row.edit_result) == (
            OutboxStatus.sent,
            str(card.message_id),
            "resent",
        )
        new = fake.last_to(chat)
        assert str(new.message_id) == row.platform_message_id != str(card.message_id)
        assert any(data.startswith("skip:") for data in new.callback_data())


async def test_telegram_treats_not_modified_as_done(
    settings: Settings, db: Database, framework: Framework
) -> None:
    async with make_driver("telegram", settings, db, framework) as d:
        await _registered(d)
        fake, chat = d.fake, int(d.external_id("head"))
        await d.tap("head", _first(await d.messages("head"), "done:"))
        report = _first(await d.messages("head"), "next:").split(":")[1]
        await d.tap("head", f"cancel:{report}")
        card_id = int((await d.messages("head"))[-1].ref)  # the card, now "cancelled"
        # A stale "send" on the cancelled card (a modified client) twice: the first edit
        # says the report is closed, the second would change nothing, which Telegram refuses
        # as "not modified"; that is the card as it should be, so the row is sent.
        for _ in range(2):
            assert await fake.deliver(fake.callback(chat, f"send:{report}", card_id)) == 200
            await d.flush()
        refused = fake.calls_to("editMessageText", ok=False)
        assert len(refused) == 1 and "message is not modified" in refused[0].description
        last = (await _rows(d))[-2:]
        assert [(r.status, r.edit_of, r.edit_result) for r in last] == [
            (OutboxStatus.sent, str(card_id), "edited"),
            (OutboxStatus.sent, str(card_id), "unchanged"),
        ]
        assert not fake.calls_to("editMessageReplyMarkup")


@pytest.mark.parametrize("channel", ["zalo_bot", "zalo_oa"])
async def test_zalo_channels_still_get_a_new_message_per_answer(
    channel: str, settings: Settings, db: Database, framework: Framework
) -> None:
    async with make_driver(channel, settings, db, framework) as d:
        await _registered(d)
        shown = len(await d.messages("head"))
        await d.tap("head", _first(await d.messages("head"), "done:"))
        report = _first(await d.messages("head"), "next:").split(":")[1]
        await d.tap("head", f"next:{report}")
        assert len(await d.messages("head")) == shown + 2
        rows = await _rows(d)
        assert rows and all((r.edit_of, r.edit_result) == ("", "") for r in rows)


async def test_the_simulator_shows_one_card_through_the_steps(
    settings: Settings, db: Database, framework: Framework
) -> None:
    async with make_driver("web", settings, db, framework) as d:
        await _registered(d)
        done = _first(await d.messages("head"), "done:")
        card = next(sent for sent in await d.messages("head") if done in sent.buttons)
        shown = len(await d.messages("head"))
        await d.tap("head", done)
        report = _first(await d.messages("head"), "next:").split(":")[1]
        await d.tap("head", f"next:{report}")  # a tap on the replaced card names that card
        await d.tap("head", f"skip:{report}")
        await d.tap("head", f"send:{report}")
        messages = await d.messages("head")
        assert len(messages) == shown
        assert messages[-1].ref == card.ref and messages[-1].buttons == ["menu:viec"]
        async with d.client.get(
            d.base_url + "/sim/api/messages", params={"chat": d.external_id("head")}
        ) as response:
            page = await response.json()
        edits = [m for m in page["messages"] if m["replaces"] is not None]
        assert [m["replaces"] for m in edits] == [int(card.ref)] * 4

        # A card id the chat does not have: the answer comes as a new message, and the row
        # says so.
        body = {
            "chat": d.external_id("head"),
            "data": f"cancel:{report}",
            "message_id": "999999",
            "update_id": uuid.uuid4().hex,
        }
        async with d.client.post(d.base_url + "/sim/api/button", json=body) as response:
            assert response.status == 200
        await d.flush()
        assert len(await d.messages("head")) == shown + 1
        row = (await _rows(d))[-1]
        assert (row.status, row.edit_of, row.edit_result) == (OutboxStatus.sent, "999999", "resent")
