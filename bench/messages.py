"""Messages per interaction: how many chat messages each party receives for one completed
report, one extension request and one "cannot do", on every channel.

    .venv/bin/python -m bench.messages            # all channels, SQLite, a table and JSON lines
    .venv/bin/python -m bench.messages --channels telegram,web

Each journey runs through the real conversations, the real sender and the platform fakes on
loopback (the journey tests' drivers, tests/helpers/drivers.py). A "message" is one the person
sees arrive in the chat; a card replaced in place (Telegram, the simulator) is an edit, counted
apart: it changes what is on screen, it adds nothing to scroll past.

The journeys (registration and /viec are not counted: they are the same for every flow):
* report: the village head taps ✅ on a task, sends one photo, taps continue, skips the note,
  taps send; the commune opens the report from the village's page and accepts it.
* extension: the head taps ⏰, +7 days, types the reason; the commune approves.
* cannot: the head taps ❌, types the reason; the commune accepts it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image
from sqlmodel import SQLModel, select

import bot.core.models  # noqa: F401  (registers the tables)
from bot.core.config import DEFAULT_FRAMEWORK_DIR, Settings
from bot.core.db import Database
from bot.core.framework import load_framework
from bot.core.models import Outbox, OutboxStatus

CHANNELS = ("telegram", "zalo_bot", "zalo_oa", "web")
HEAD, OFFICER = "head", "officer"


@dataclass
class Figure:
    channel: str
    journey: str
    taps: int  # updates the two people sent (taps, photos, typed text)
    head_messages: int
    officer_messages: int
    head_edits: int
    officer_edits: int

    @property
    def messages(self) -> int:
        return self.head_messages + self.officer_messages


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 160, 60)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def _edits(driver, chat: str) -> int:  # noqa: ANN001
    """Outbox rows that replaced a card in this chat (0 where edits do not exist)."""
    edit_of = getattr(Outbox, "edit_of", None)
    if edit_of is None:
        return 0
    async with driver.db.session() as session:
        rows = await session.exec(
            select(Outbox.id).where(
                Outbox.channel == driver.name,
                Outbox.external_id == driver.external_id(chat),
                Outbox.status == OutboxStatus.sent,
                edit_of != "",
                Outbox.edit_result.in_(("edited", "unchanged")),
            )
        )
        return len(rows.all())


def _first(messages, prefix: str) -> str:  # noqa: ANN001
    for sent in messages:
        for data in sent.buttons:
            if data.startswith(prefix):
                return data
    raise AssertionError(f"no {prefix!r} button in {[m.buttons for m in messages]}")


def _last(messages, prefix: str) -> str:  # noqa: ANN001
    for sent in reversed(messages):
        for data in reversed(sent.buttons):
            if data.startswith(prefix):
                return data
    raise AssertionError(f"no {prefix!r} button in {[m.buttons for m in messages]}")


async def _report(d) -> int:  # noqa: ANN001
    listing = await d.messages(HEAD)
    occurrence = _first(listing, "done:").split(":")[1]
    await d.tap(HEAD, f"done:{occurrence}")
    report = _last(await d.messages(HEAD), "next:").split(":")[1]
    await d.photo(HEAD, _jpeg())
    await d.tap(HEAD, f"next:{report}")
    await d.tap(HEAD, f"skip:{report}")
    await d.tap(HEAD, f"send:{report}")
    village = d.world.villages[0].id
    await d.tap(OFFICER, f"vil:{village}")
    await d.tap(OFFICER, f"rv:{report}")
    await d.tap(OFFICER, f"rva:{report}")
    return 8


async def _extension(d) -> int:  # noqa: ANN001
    occurrence = _first(await d.messages(HEAD), "ext:").split(":")[1]
    await d.tap(HEAD, f"ext:{occurrence}")
    await d.tap(HEAD, f"extd:{occurrence}:7")
    await d.say(HEAD, "Mưa bão, chưa họp được")
    await d.tap(OFFICER, _last(await d.messages(OFFICER), "appr:"))
    return 4


async def _cannot(d) -> int:  # noqa: ANN001
    occurrence = _first(await d.messages(HEAD), "cant:").split(":")[1]
    await d.tap(HEAD, f"cant:{occurrence}")
    await d.say(HEAD, "Thôn đã sáp nhập, không còn nhà văn hóa")
    await d.tap(OFFICER, _last(await d.messages(OFFICER), "cnok:"))
    return 3


JOURNEYS: dict[str, Callable[..., Awaitable[int]]] = {
    "report": _report,
    "extension": _extension,
    "cannot": _cannot,
}


async def _prepare(d) -> None:  # noqa: ANN001
    """Registered, with the task list on screen and the officer on the village list."""
    for chat, unit, role in (
        (HEAD, d.world.villages[0], "village_head"),
        (OFFICER, d.world.commune, "commune_committee"),
    ):
        invite = await d.world.invite(unit, role)
        await d.start(chat, invite.code)
    await d.say(HEAD, "/viec")
    await d.say(OFFICER, "/tinhhinh")


async def measure(channel: str, journey: str, folder: Path) -> Figure:
    from tests.helpers.drivers import make_driver

    settings = Settings(
        _env_file=None,
        data_dir=folder / "data",
        database_url=f"sqlite+aiosqlite:///{folder / 'data' / 'papibot.db'}",
        secret_key="bench-secret",
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    framework = load_framework(DEFAULT_FRAMEWORK_DIR)
    try:
        async with make_driver(channel, settings, db, framework) as d:
            await _prepare(d)
            before = {chat: len(await d.messages(chat)) for chat in (HEAD, OFFICER)}
            edits_before = {chat: await _edits(d, chat) for chat in (HEAD, OFFICER)}
            taps = await JOURNEYS[journey](d)
            counts = {chat: len(await d.messages(chat)) - before[chat] for chat in before}
            edits = {chat: await _edits(d, chat) - edits_before[chat] for chat in before}
    finally:
        await db.dispose()
    return Figure(
        channel, journey, taps, counts[HEAD], counts[OFFICER], edits[HEAD], edits[OFFICER]
    )


async def run(channels: list[str], journeys: list[str]) -> list[Figure]:
    figures = []
    # One folder for the whole run: a worker still winding down may look at its database.
    with tempfile.TemporaryDirectory() as root:
        for channel in channels:
            for journey in journeys:
                folder = Path(root) / f"{channel}-{journey}"
                figures.append(await measure(channel, journey, folder))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", default=",".join(CHANNELS))
    parser.add_argument("--journeys", default=",".join(JOURNEYS))
    args = parser.parse_args(argv)
    channels = [c for c in args.channels.split(",") if c]
    journeys = [j for j in args.journeys.split(",") if j]
    unknown = [c for c in channels if c not in CHANNELS] + [
        j for j in journeys if j not in JOURNEYS
    ]
    if unknown:
        print(f"bench.messages: unknown channel or journey {unknown[0]!r}", file=sys.stderr)
        return 2
    figures = asyncio.run(run(channels, journeys))
    print("| channel | journey | updates | head: messages (+edits) | commune: messages (+edits) |")
    print("|---|---|---|---|---|")
    for f in figures:
        print(
            f"| {f.channel} | {f.journey} | {f.taps} | {f.head_messages} (+{f.head_edits}) "
            f"| {f.officer_messages} (+{f.officer_edits}) |"
        )
    for f in figures:
        print(json.dumps({"figure": "messages", **asdict(f), "total": f.messages}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
