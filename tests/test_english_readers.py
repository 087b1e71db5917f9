"""English is English: a reader who chose English sees the framework's English task titles and
evidence, and a bad English field in a province's YAML is refused like any other field."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select, update

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework, FrameworkError, load_framework
from bot.core.models import Outbox, User
from handlers.router import Dispatcher
from tests.helpers.world import build_world
from tests.test_every_message import Chat


def test_every_shipped_task_has_an_english_title_and_evidence(framework: Framework) -> None:
    missing = [
        key for key, task in framework.tasks.items() if not (task.title_en and task.evidence_en)
    ]
    assert missing == []


async def test_an_english_reader_sees_english_task_cards(
    settings: Settings, db: Database, framework: Framework
) -> None:
    world = await build_world(settings, db, framework)
    head = await world.person("Nguyễn Văn An", world.villages[0], "village_head", "web", "en-head")
    async with db.session() as session:
        await session.exec(update(User).where(col(User.id) == head.id).values(locale="en"))
        await session.commit()
    await Chat(Dispatcher(world.app), "web", "en-head").say("/viec")
    async with db.session() as session:
        cards = [
            row.payload["text"]
            for row in (await session.exec(select(Outbox).where(Outbox.user_id == head.id))).all()
            if row.payload["buttons"]
        ]
    assert cards
    english_titles = {task.title_en for task in framework.tasks.values()}
    vietnamese_titles = {task.title for task in framework.tasks.values()}
    for card in cards:
        title_line = card.splitlines()[0].split("] ", 1)[1]
        assert title_line in english_titles and title_line not in vietnamese_titles
        assert "Evidence: " in card and "Minh chứng" not in card and "niêm yết" not in card


def test_an_empty_or_overlong_english_title_names_the_file_task_and_field(
    settings: Settings, tmp_path: Path
) -> None:
    shipped = (settings.framework_dir / "tasks.yaml").read_text(encoding="utf-8")
    for bad in ('""', "x" * 61):
        folder = tmp_path / f"province-{len(bad)}"
        folder.mkdir()
        text = shipped.replace(
            "    title_en: Meet and talk directly with residents",
            f"    title_en: {bad}",
            1,
        )
        assert text != shipped
        (folder / "tasks.yaml").write_text(text, encoding="utf-8")
        with pytest.raises(FrameworkError) as raised:
            load_framework(settings.framework_dir, folder)
        message = str(raised.value)
        assert "tasks.yaml" in message and "doi-thoai-voi-nhan-dan" in message
        assert "title_en" in message
