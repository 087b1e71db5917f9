"""`/baocao` for a province with no districts: 45 communes and wards a page at a time.

With the 2025 structure the province committee oversees every commune of the province (65 in
Khánh Hòa). One message listed them all, with buttons for the first 20 only: the rest could
not be opened. Now each page of 20 has a button per commune and the page turns."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.messages import Kind
from bot.core.models import Outbox, Unit
from handlers.router import Dispatcher
from tests.helpers.world import TWO_TIER, build_world, framework_for
from tests.test_every_message import Chat

EXTRA_COMMUNES = 43  # with the world's own two: 45, three pages


async def province_with_45_communes(settings: Settings, db: Database):  # noqa: ANN201
    settings.structure = TWO_TIER
    world = await build_world(settings, db, framework_for(TWO_TIER))
    async with db.session() as session:
        for number in range(1, EXTRA_COMMUNES + 1):
            session.add(
                Unit(
                    code=f"test-{number:02d}",
                    name=f"Xã Thử Nghiệm {number:02d}",
                    level="commune",
                    parent_id=world.province.id,
                )
            )
        await session.commit()
        communes = (
            await session.exec(
                select(Unit).where(Unit.parent_id == world.province.id, Unit.level == "commune")
            )
        ).all()
    assert len(communes) == 45
    return world, {unit.id for unit in communes}


async def last_message(db: Database, chat: str) -> Outbox:
    async with db.session() as session:
        rows = await session.exec(
            select(Outbox).where(Outbox.external_id == chat).order_by(col(Outbox.id))
        )
        return rows.all()[-1]


def taps(message: Outbox) -> list[str]:
    return [button["data"] for row in message.payload["buttons"] for button in row]


def commune_ids(message: Outbox) -> list[int]:
    return [int(data[4:]) for data in taps(message) if data.startswith("com:")]


async def test_the_province_turns_the_pages_of_every_commune(
    settings: Settings, db: Database
) -> None:
    world, every_commune = await province_with_45_communes(settings, db)
    await world.person("Lê Văn Tỉnh", world.province, "province_committee", "telegram", "p")
    province = Chat(Dispatcher(world.app), "telegram", "p")

    await province.say("/baocao")
    first = await last_message(db, "p")
    assert "Trang 1/3 (thứ 1–20 trong 45)" in first.payload["text"]
    assert len(commune_ids(first)) == 20
    assert taps(first)[-1] == "comp:2"
    labels = [button["label"] for row in first.payload["buttons"] for button in row]
    assert labels[-1] == "➡️ Xem tiếp: 21–40"

    await province.send(Kind.button, data="comp:2", message_id="41")  # tapped on that card
    second = await last_message(db, "p")
    assert "Trang 2/3 (thứ 21–40 trong 45)" in second.payload["text"]
    assert taps(second)[-2:] == ["comp:1", "comp:3"]
    assert second.edit_of == "41"  # the page turns in place on Telegram

    await province.tap("comp:3")
    third = await last_message(db, "p")
    assert "Trang 3/3 (thứ 41–45 trong 45)" in third.payload["text"]
    assert len(commune_ids(third)) == 5 and taps(third)[-1] == "comp:2"

    shown = commune_ids(first) + commune_ids(second) + commune_ids(third)
    assert sorted(shown) == sorted(every_commune)  # every commune once, none left out
    lines = [line for m in (first, second, third) for line in m.payload["text"].splitlines()]
    assert sum(line.startswith(("• ", "⚠️ ")) for line in lines) == 45

    # The last commune can be opened: before, only the first 20 had a button.
    await province.tap(f"com:{commune_ids(third)[-1]}")
    detail = await last_message(db, "p")
    assert "kém nhất trước" in detail.payload["text"]


@pytest.mark.parametrize("arg", ["99", "abc", "0", "12345678901234567890"])
async def test_a_page_that_does_not_exist_shows_a_page_that_does(
    arg: str, settings: Settings, db: Database
) -> None:
    world, _communes = await province_with_45_communes(settings, db)
    await world.person("Lê Văn Tỉnh", world.province, "province_committee", "telegram", "p")
    province = Chat(Dispatcher(world.app), "telegram", "p")
    await province.tap(f"comp:{arg}")
    page = 3 if arg == "99" else 1
    assert f"Trang {page}/3" in (await last_message(db, "p")).payload["text"]


async def test_a_district_with_few_communes_sees_one_page_without_page_buttons(
    settings: Settings, db: Database, framework
) -> None:  # noqa: ANN001
    world = await build_world(settings, db, framework)
    await world.person("Lê Văn Cường", world.district, "district_committee", "telegram", "d")
    district = Chat(Dispatcher(world.app), "telegram", "d")
    await district.say("/baocao")
    message = await last_message(db, "d")
    assert "Trang 1/" not in message.payload["text"]
    assert not [data for data in taps(message) if data.startswith("comp:")]


async def test_zalo_bot_turns_the_page_by_number(settings: Settings, db: Database) -> None:
    world, _communes = await province_with_45_communes(settings, db)
    await world.person("Lê Văn Tỉnh", world.province, "province_committee", "zalo_bot", "z")
    province = Chat(Dispatcher(world.app), "zalo_bot", "z")
    await province.say("/baocao")
    await province.say("21")  # the numbered menu: 20 communes, then "Xem tiếp"
    page = await last_message(db, "z")
    assert "Trang 2/3" in page.payload["text"]
    assert page.edit_of == ""  # Zalo Bot cannot edit: a new message


async def test_a_commune_cannot_turn_the_provinces_pages(settings: Settings, db: Database) -> None:
    world, _communes = await province_with_45_communes(settings, db)
    await world.person("Trần B", world.commune, "commune_committee", "telegram", "c")
    officer = Chat(Dispatcher(world.app), "telegram", "c")
    await officer.tap("comp:2")
    text = (await last_message(db, "c")).payload["text"]
    assert text.startswith("Xin lỗi, việc này không thuộc quyền của")
    assert "Trang 1/" not in text
