"""The web chat simulator, driven only through its HTTP API on loopback, on a real database.

Translations are being written concurrently, so these tests look at the database, unit names,
codes and button data rather than at whole sentences.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlmodel import col, select

from bot.app.demo import COMMUNE_OFFICER, DISTRICT_OFFICER, VILLAGE_HEAD, seed_demo
from bot.app.runtime import build_runtime
from bot.app.server import build_app
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.models import (
    AuditLog,
    ChannelIdentity,
    Evidence,
    InboundUpdate,
    Invite,
    Occurrence,
    OccurrenceStatus,
    Outbox,
    Report,
    User,
)
from bot.core.unit_words import place
from tests.helpers.rows import count
from tests.helpers.tree_words import assert_no_district_words
from tests.helpers.world import World, build_world, framework_for, structure_independent

MB = 1024 * 1024


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


@dataclass
class Sim:
    """The simulator page's side of the conversation: HTTP calls and the transcript."""

    world: World
    client: TestClient

    @property
    def db(self) -> Database:
        return self.world.db

    async def post(self, path: str, body: Any, status: int = 200) -> dict[str, Any]:
        response = await self.client.post(path, json=body)
        assert response.status == status, await response.text()
        return await response.json()

    async def send(self, chat: str, text: str, update_id: str | None = None) -> dict[str, Any]:
        body = {"chat": chat, "text": text}
        if update_id:
            body["update_id"] = update_id
        return await self.post("/sim/api/send", body)

    async def tap(self, chat: str, data: str, message_id: int | str = "") -> dict[str, Any]:
        body = {"chat": chat, "data": data, "message_id": str(message_id)}
        return await self.post("/sim/api/button", body)

    async def upload(
        self, chat: str, content: bytes, name: str, mime: str, status: int = 200
    ) -> dict[str, Any]:
        form = FormData()
        form.add_field("chat", chat)
        form.add_field("file", content, filename=name, content_type=mime)
        response = await self.client.post("/sim/api/photo", data=form)
        assert response.status == status, await response.text()
        return await response.json()

    async def login(self, user: User) -> str:
        answer = await self.post("/sim/api/login", {"user_id": user.id})
        return answer["chat"]

    async def messages(self, chat: str, after: int = 0) -> list[dict[str, Any]]:
        response = await self.client.get("/sim/api/messages", params={"chat": chat, "after": after})
        assert response.status == 200, await response.text()
        return (await response.json())["messages"]

    async def last_id(self, chat: str) -> int:
        messages = await self.messages(chat)
        return messages[-1]["id"] if messages else 0


def buttons_of(messages: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [
        (message["id"], button["data"])
        for message in messages
        for row in message["buttons"]
        for button in row
    ]


def button(messages: list[dict[str, Any]], prefix: str) -> tuple[int, str]:
    found = [(mid, data) for mid, data in buttons_of(messages) if data.startswith(prefix)]
    assert found, f"no button {prefix}… in {buttons_of(messages)}"
    return found[0]


async def demo_user(db: Database, who: Any) -> User:
    async with db.session() as session:
        return (await session.exec(select(User).where(User.name == who.name))).one()


def stored_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "evidence"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


@pytest.fixture
async def sim(settings: Settings, db: Database, structure: str) -> AsyncIterator[Sim]:
    world = await build_world(settings, db, framework_for(structure))
    await seed_demo(world.app)
    runtime = build_runtime(world.app)
    assert set(runtime.channels) >= {"web"}
    client = TestClient(TestServer(build_app(runtime), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Sim(world, client)
        if structure == "two_tier":
            await assert_no_district_words(db)
    finally:
        await client.close()


@structure_independent
async def test_the_page_is_served(sim: Sim) -> None:
    response = await sim.client.get("/sim")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert "/sim/api/send" in page and "/sim/api/messages" in page


async def test_seed_demo_places_people_in_the_first_commune_of_nha_trang(sim: Sim) -> None:
    """Three-tier: a ward of Thành phố Nha Trang and the city's officer; two-tier: Phường Bắc
    Nha Trang and, with no district, the province committee's officer."""
    world = sim.world
    head = await demo_user(sim.db, VILLAGE_HEAD)
    officer = await demo_user(sim.db, COMMUNE_OFFICER)
    supervisor = await demo_user(sim.db, DISTRICT_OFFICER)  # the same person's name in both
    if world.two_tier:
        assert (world.commune.name, world.supervisor.name) == (
            "Phường Bắc Nha Trang",
            "Tỉnh Khánh Hòa",
        )
    else:
        assert world.district.name == "Thành phố Nha Trang"
    assert (head.unit_id, head.role) == (world.villages[0].id, "village_head")
    assert (officer.unit_id, officer.role) == (world.commune.id, "commune_committee")
    assert (supervisor.unit_id, supervisor.role) == (world.supervisor.id, world.supervisor_role)

    # The officer above follows the demo commune up from the simulator.
    chat = await sim.login(supervisor)
    mark = await sim.last_id(chat)
    await sim.send(chat, "/baocao")
    (overview,) = await sim.messages(chat, mark)
    assert f"{world.commune.name}:" in overview["text"]
    assert f"com:{world.commune.id}" in [data for _mid, data in buttons_of([overview])]
    response = await sim.client.get("/sim/api/users")
    listed = {user["id"]: user for user in (await response.json())["users"]}
    assert listed[head.id]["unit_name"] == world.villages[0].name
    assert listed[head.id]["role"] == "village_head"
    assert listed[head.id]["chat"] == f"web-{head.id}"
    assert listed[officer.id]["unit_name"] == world.commune.name


async def test_seed_demo_twice_creates_nothing_the_second_time(sim: Sim) -> None:
    tables = (User, ChannelIdentity, Invite)
    before = [await count(sim.db, table) for table in tables]
    lines = await seed_demo(sim.world.app)
    assert [await count(sim.db, table) for table in tables] == before
    async with sim.db.session() as session:
        invite = (await session.exec(select(Invite))).one()
    assert invite.unit_id == sim.world.villages[1].id and invite.used_at is None
    text = "\n".join(lines)
    assert invite.code in text and "/sim" in text
    assert sim.world.villages[0].name in text and sim.world.commune.name in text
    # Each person by their title in their unit's words: a ward's committee is "UBND phường".
    assert f"UBND {place(sim.world.commune)}: {COMMUNE_OFFICER.name}" in text
    assert "UBND xã — " not in text and "Trưởng thôn — " not in text


async def test_a_guest_registers_with_the_demo_invite_code(sim: Sim) -> None:
    async with sim.db.session() as session:
        invite = (await session.exec(select(Invite))).one()
    chat = f"guest-{uuid.uuid4().hex[:8]}"
    await sim.send(chat, "/start")
    assert len(await sim.messages(chat)) == 1  # the greeting, asking for a code
    await sim.post("/sim/api/send", {"chat": chat, "text": invite.code, "name": "Phạm Thị Dung"})
    async with sim.db.session() as session:
        identity = (
            await session.exec(
                select(ChannelIdentity).where(
                    ChannelIdentity.channel == "web", ChannelIdentity.external_id == chat
                )
            )
        ).one()
        user = await session.get(User, identity.user_id)
        used = await session.get(Invite, invite.id)
    assert (user.unit_id, user.role, user.name) == (
        sim.world.villages[1].id,
        "village_head",
        "Phạm Thị Dung",
    )
    assert used.used_by_user_id == user.id
    welcome = (await sim.messages(chat))[-1]
    assert sim.world.villages[1].name in welcome["text"]
    assert "menu:viec" in [data for _mid, data in buttons_of([welcome])]
    listed = {u["id"]: u for u in (await (await sim.client.get("/sim/api/users")).json())["users"]}
    assert listed[user.id]["chat"] == chat


async def test_commune_officer_approves_an_extension_in_the_simulator(sim: Sim) -> None:
    head = await demo_user(sim.db, VILLAGE_HEAD)
    officer = await demo_user(sim.db, COMMUNE_OFFICER)
    head_chat = await sim.login(head)
    officer_chat = await sim.login(officer)

    mark = await sim.last_id(head_chat)
    await sim.send(head_chat, "/viec")
    _mid, ext = button(await sim.messages(head_chat, mark), "ext:")
    occurrence_id = int(ext.split(":")[1])
    async with sim.db.session() as session:
        due_before = (await session.get(Occurrence, occurrence_id)).due_at

    mark = await sim.last_id(head_chat)
    await sim.tap(head_chat, ext)
    _mid, days = button(await sim.messages(head_chat, mark), f"extd:{occurrence_id}:7")
    await sim.tap(head_chat, days)
    officer_mark = await sim.last_id(officer_chat)
    await sim.send(head_chat, "Mưa lớn, chưa họp dân được")

    request = await sim.messages(officer_chat, officer_mark)
    assert sim.world.villages[0].name in request[-1]["text"]
    message_id, approve = button(request, "appr:")
    report_id = int(approve.split(":")[1])
    assert ("decl:" + str(report_id)) in [data for _mid, data in buttons_of(request)]

    head_mark = await sim.last_id(head_chat)
    await sim.tap(officer_chat, approve, message_id)
    async with sim.db.session() as session:
        report = await session.get(Report, report_id)
        occurrence = await session.get(Occurrence, occurrence_id)
    assert (report.kind, report.status, report.decided_by_user_id) == (
        "extension",
        "approved",
        officer.id,
    )
    assert report.note == "Mưa lớn, chưa họp dân được"
    assert occurrence.due_at > due_before
    assert occurrence.status in (OccurrenceStatus.open, OccurrenceStatus.overdue)
    assert len(await sim.messages(head_chat, head_mark)) == 1  # the decision reached them

    # A second tap on the same button decides nothing again.
    await sim.tap(officer_chat, approve, message_id)
    async with sim.db.session() as session:
        assert (await session.get(Occurrence, occurrence_id)).due_at == occurrence.due_at


@structure_independent
async def test_a_forged_button_for_another_village_is_refused(sim: Sim) -> None:
    head = await demo_user(sim.db, VILLAGE_HEAD)
    chat = await sim.login(head)
    other_village = sim.world.villages[2]
    async with sim.db.session() as session:
        theirs = (
            await session.exec(
                select(Occurrence)
                .where(Occurrence.unit_id == other_village.id)
                .order_by(col(Occurrence.id))
            )
        ).first()
    assert theirs is not None and theirs.status == OccurrenceStatus.open

    for data in (f"done:{theirs.id}", f"qdone:{theirs.id}", f"ext:{theirs.id}"):
        mark = await sim.last_id(chat)
        await sim.tap(chat, data)
        assert len(await sim.messages(chat, mark)) == 1  # refused, in words

    async with sim.db.session() as session:
        after = await session.get(Occurrence, theirs.id)
    assert after.status == OccurrenceStatus.open and after.done_at is None
    assert await count(sim.db, Report, Report.occurrence_id == theirs.id) == 0
    assert await count(sim.db, AuditLog, AuditLog.action == "forbidden") == 3


@structure_independent
async def test_a_repeated_update_id_changes_nothing(sim: Sim) -> None:
    chat = await sim.login(await demo_user(sim.db, VILLAGE_HEAD))
    update_id = uuid.uuid4().hex
    first = await sim.send(chat, "/viec", update_id=update_id)
    assert first == {"ok": True, "update_id": update_id, "duplicate": False}
    outbox, inbound = await count(sim.db, Outbox), await count(sim.db, InboundUpdate)

    second = await sim.send(chat, "/viec", update_id=update_id)
    assert second["duplicate"] is True
    assert (await count(sim.db, Outbox), await count(sim.db, InboundUpdate)) == (outbox, inbound)

    # Without an update id the server makes a fresh one each time.
    assert (await sim.send(chat, "/viec"))["update_id"] != (await sim.send(chat, "/viec"))[
        "update_id"
    ]


async def _awaiting_photos(sim: Sim) -> tuple[str, int]:
    chat = await sim.login(await demo_user(sim.db, VILLAGE_HEAD))
    mark = await sim.last_id(chat)
    await sim.send(chat, "/viec")
    message_id, done = button(await sim.messages(chat, mark), "done:")
    await sim.tap(chat, done, message_id)
    return chat, int(done.split(":")[1])


@structure_independent
async def test_a_25_mb_upload_is_refused_with_413_and_nothing_stored(sim: Sim) -> None:
    chat, _occurrence = await _awaiting_photos(sim)
    inbound = await count(sim.db, InboundUpdate)
    outbox = await count(sim.db, Outbox)
    answer = await sim.upload(chat, bytes(25 * MB), "lon.jpg", "image/jpeg", status=413)
    assert answer["error"] == "too_large"
    assert await count(sim.db, Evidence) == 0
    assert stored_files(sim.world.app.settings) == []
    assert (await count(sim.db, InboundUpdate), await count(sim.db, Outbox)) == (inbound, outbox)


@structure_independent
async def test_an_oversized_upload_without_content_length_is_cut_off(sim: Sim) -> None:
    chat, _occurrence = await _awaiting_photos(sim)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(25):
            yield bytes(MB)

    form = FormData()
    form.add_field("chat", chat)
    form.add_field("file", chunks(), filename="lon.jpg", content_type="image/jpeg")
    response = await sim.client.post("/sim/api/photo", data=form)
    assert response.status == 413
    assert (await response.json())["error"] == "too_large"
    assert await count(sim.db, Evidence) == 0
    assert stored_files(sim.world.app.settings) == []


@structure_independent
async def test_a_photo_between_one_and_twenty_megabytes_is_accepted(sim: Sim) -> None:
    chat, _occurrence = await _awaiting_photos(sim)
    big = jpeg((10, 120, 10), size=(1200, 900))
    padded = big + bytes(2 * MB)  # JPEG readers ignore bytes after the end marker
    await sim.upload(chat, padded, "lon-vua.jpg", "image/jpeg")
    async with sim.db.session() as session:
        evidence = (await session.exec(select(Evidence))).one()
    assert evidence.size == len(padded) and (evidence.width, evidence.height) == (1200, 900)


@pytest.mark.parametrize(
    ("name", "mime", "content"),
    [
        ("bao-cao.pdf", "application/pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
        ("gia-anh.jpg", "image/jpeg", b"this is not a picture at all"),
    ],
)
@structure_independent
async def test_a_file_that_is_not_an_image_gets_an_answer_and_nothing_stored(
    sim: Sim, name: str, mime: str, content: bytes
) -> None:
    chat, _occurrence = await _awaiting_photos(sim)
    mark = await sim.last_id(chat)
    answer = await sim.upload(chat, content, name, mime)
    assert answer["duplicate"] is False
    assert len(await sim.messages(chat, mark)) == 1
    assert await count(sim.db, Evidence) == 0
    assert stored_files(sim.world.app.settings) == []
    assert await count(sim.db, AuditLog, col(AuditLog.action) == "evidence.not_image") == 1


@structure_independent
async def test_bad_requests_get_json_errors_not_500(sim: Sim) -> None:
    client = sim.client
    cases = [
        ("/sim/api/send", b"{not json", 400),
        ("/sim/api/send", b"[1, 2]", 400),
        ("/sim/api/send", b'{"text": "/viec"}', 400),
        ("/sim/api/send", b'{"chat": "web-1"}', 400),
        ("/sim/api/send", b'{"chat": "../etc", "text": "hi"}', 400),
        ("/sim/api/send", b'{"chat": "web-1", "text": "hi", "update_id": "a b"}', 400),
        ("/sim/api/button", b'{"chat": "web-1"}', 400),
        ("/sim/api/button", b'{"chat": "web-1", "data": "' + b"x" * 65 + b'"}', 400),
        ("/sim/api/login", b"{}", 400),
        ("/sim/api/login", b'{"user_id": "abc"}', 400),
        ("/sim/api/login", b'{"user_id": 999999}', 404),
        ("/sim/api/login", b'{"user_id": 99999999999}', 404),
        ("/sim/api/photo", b'{"chat": "web-1"}', 400),
    ]
    for path, body, status in cases:
        response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
        assert response.status == status, (path, body, await response.text())
        assert "error" in await response.json()
    form = FormData(default_to_multipart=True)
    form.add_field("chat", "web-1")
    response = await client.post("/sim/api/photo", data=form)
    assert response.status == 400 and (await response.json())["error"] == "missing_file"
    for query in ({}, {"chat": "web-1", "after": "x"}, {"chat": "nobody"}):
        response = await client.get("/sim/api/messages", params=query)
        assert response.status == 400, query
    response = await client.get("/sim/api/media/999999/photo")
    assert response.status == 404
    assert await count(sim.db, InboundUpdate) == 0


@structure_independent
async def test_a_bot_photo_is_served_only_from_the_data_directory(sim: Sim) -> None:
    from bot.core.messages import Outgoing
    from bot.core.models import OutboxStatus

    settings = sim.world.app.settings
    (settings.data_dir / "digests").mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "digests" / "c.png").write_bytes(jpeg((1, 2, 3)))
    async with sim.db.session() as session:
        for key, path in (("inside", "digests/c.png"), ("outside", "../../etc/passwd")):
            session.add(
                Outbox(
                    idempotency_key=f"test:{key}",
                    channel="web",
                    external_id="web-1",
                    payload=Outgoing(text=key, photo_path=path).to_payload(),
                    status=OutboxStatus.sent,
                )
            )
        await session.commit()
    messages = await sim.messages("web-1")
    inside, outside = messages[-2], messages[-1]
    assert (await sim.client.get(inside["photo_url"])).status == 200
    assert (await sim.client.get(outside["photo_url"])).status == 404
