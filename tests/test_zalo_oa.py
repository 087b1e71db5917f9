"""Zalo Official Account channel end to end: signed webhooks into our server over real HTTP,
a fake OA Open API, fake OAuth and a fake CDN on loopback, and a real database."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import col, select

from bot.channels.base import DeliveryError
from bot.channels.zalo_oa import (
    SIGNATURE_HEADER,
    ZaloOAChannel,
    fit_image,
)
from bot.channels.zalo_tokens import ZaloTokenStore
from bot.core.capabilities import within_free_window, within_window
from bot.core.context import AppContext
from bot.core.messages import Button, Kind, Outgoing
from bot.core.models import (
    ChannelIdentity,
    Evidence,
    InboundUpdate,
    Occurrence,
    Outbox,
    OutboxStatus,
    PlatformToken,
    Report,
    Unit,
    User,
    utcnow,
)
from bot.core.sealed import unseal
from bot.core.services.outbox import enqueue, notify_user, preferred_identity
from bot.core.services.people import add_user, link_identity
from tests.helpers.fake_zalo import FakeZalo, ZaloStack, fixture, jpeg_bytes, noisy_png, start_stack
from tests.helpers.rows import count
from tests.helpers.world import build_world, framework_for

USER = "2468458835296117922"  # > 2^53: must never pass through a float
OFFICER = "8123456789012345678"


def event(name: str, user: str = USER, **message: object) -> dict:
    body = copy.deepcopy(fixture(f"oa_{name}.json"))
    body["timestamp"] = str(int(datetime.now(UTC).timestamp() * 1000))
    if "follower" in body:
        body["follower"]["id"] = user
    else:
        body["sender"]["id"] = user
        body["message"]["msg_id"] = uuid.uuid4().hex
        body["message"].update(message)
    return body


async def post_event(stack: ZaloStack, body: dict | bytes, sign: str = "right") -> int:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    timestamp = json.loads(raw, parse_int=str).get("timestamp", "") if sign != "none" else ""
    secret = stack.app.settings.zalo_oa_secret_key if sign == "right" else "someone-else"
    headers = stack.fake.oa_headers(raw, secret, timestamp)
    if sign == "none":
        headers.pop(SIGNATURE_HEADER)
    response = await stack.post("/webhook/zalo-oa", raw, headers)
    return response.status


async def say(stack: ZaloStack, text: str, user: str = USER) -> list[dict]:
    before = len(stack.fake.oa_sent)
    assert await post_event(stack, event("user_send_text", user, text=text)) == 200
    await stack.settle()
    return [m["message"] for m in stack.fake.oa_sent[before:] if m["user_id"] == user]


def buttons_of(message: dict) -> list[dict]:
    attachment = message.get("attachment") or {}
    return attachment.get("payload", {}).get("buttons", [])


@pytest.fixture
async def bare_stack(settings, db, framework):  # noqa: ANN001
    stack = await start_stack(
        AppContext(settings=settings, db=db, framework=framework), ZaloOAChannel
    )
    yield stack
    await stack.close()


async def registered(
    db,  # noqa: ANN001
    external_id: str = USER,
    last_seen: datetime | None = None,
    fake: FakeZalo | None = None,
) -> User:
    """A village head on the OA; `fake`: Zalo saw them write at `last_seen` (default now)."""
    if fake is not None:
        fake.user_wrote(external_id, last_seen)
    async with db.session() as session:
        unit = Unit(code=f"V{uuid.uuid4().hex[:6]}", name="Thôn Đông", level="village")
        session.add(unit)
        await session.flush()
        user = await add_user(session, unit, "village_head", "Trưởng thôn")
        identity = await link_identity(session, user, "zalo_oa", external_id)
        if last_seen is not None:
            identity.last_interaction_at = last_seen
            session.add(identity)
        await session.commit()
        return user


async def test_village_head_follows_registers_and_answers_with_buttons(settings, db, structure):
    world = await build_world(settings, db, framework_for(structure))
    stack = await start_stack(world.app, ZaloOAChannel)
    try:
        village = world.villages[0]
        officer = await world.person(
            "Chủ tịch xã", world.commune, "commune_committee", "zalo_oa", OFFICER
        )
        stack.fake.user_wrote(OFFICER)  # the officer wrote to the OA lately

        # Following the OA: the greeting asks for the code.
        assert await post_event(stack, event("follow")) == 200
        await stack.settle()
        assert "3012" in stack.fake.oa_texts(USER)[-1]

        # Typing the code registers; the main menu comes as oa.query.hide buttons.
        invite = await world.invite(village, "village_head")
        answer = await say(stack, invite.code.lower())
        assert village.name in answer[-1]["text"]
        menu = buttons_of(answer[-1])
        assert menu and all(b["type"] == "oa.query.hide" for b in menu)
        assert answer[-1]["attachment"]["payload"]["template_type"] == "button"
        async with db.session() as session:
            identity = (
                await session.exec(
                    select(ChannelIdentity).where(ChannelIdentity.external_id == USER)
                )
            ).one()
            head = await session.get(User, identity.user_id)
            occurrences = (
                await session.exec(
                    select(Occurrence)
                    .where(Occurrence.unit_id == village.id, Occurrence.status == "open")
                    .order_by(col(Occurrence.due_at))
                )
            ).all()
        assert identity.channel == "zalo_oa" and identity.external_id == USER
        first, second = occurrences[0], occurrences[1]

        async def remind(occurrence: Occurrence) -> dict:
            buttons = [
                [
                    Button("✅ Đã xong", f"done:{occurrence.id}"),
                    Button("📷 Gửi ảnh", f"photo:{occurrence.id}"),
                ],
                [
                    Button("⏰ Xin thêm thời gian", f"ext:{occurrence.id}"),
                    Button("❌ Không làm được", f"cant:{occurrence.id}"),
                ],
            ]
            async with db.session() as session:
                await notify_user(
                    session,
                    await session.get(User, head.id),
                    Outgoing(text="Nhắc việc", buttons=buttons),
                    f"r:{occurrence.id}",
                )
                await session.commit()
            await stack.settle()
            return stack.fake.oa_sent[-1]["message"]

        reminder = await remind(first)
        assert [b["payload"] for b in buttons_of(reminder)] == [
            f"done:{first.id}",
            f"photo:{first.id}",
            f"ext:{first.id}",
            f"cant:{first.id}",
        ]

        # Tapping a button comes back as the payload text: more time, +7 days, a reason.
        choices = await say(stack, f"ext:{first.id}")
        week = next(b["payload"] for b in buttons_of(choices[-1]) if b["payload"].endswith(":7"))
        await say(stack, week)
        await say(stack, "Chờ kinh phí từ xã")
        async with db.session() as session:
            request = (await session.exec(select(Report).where(Report.kind == "extension"))).one()
        assert request.occurrence_id == first.id and request.note == "Chờ kinh phí từ xã"
        officer_messages = [m["message"] for m in stack.fake.oa_sent if m["user_id"] == OFFICER]
        assert officer_messages and "Chờ kinh phí từ xã" in officer_messages[-1]["text"]
        approve = buttons_of(officer_messages[-1])[0]["payload"]
        assert approve == f"appr:{request.id}"
        await say(stack, approve, user=OFFICER)
        async with db.session() as session:
            assert (await session.get(Report, request.id)).decided_by_user_id == officer.id

        # A photo report: the image is fetched from the CDN and stored as evidence.
        await remind(second)
        await say(stack, f"photo:{second.id}")
        photo = jpeg_bytes(400, 300, "blue")
        url = stack.fake.add_cdn("oa-evidence.jpg", photo)
        image = event("user_send_image")
        image["message"]["attachments"][0]["payload"]["url"] = url
        assert await post_event(stack, image) == 200
        await stack.settle()
        async with db.session() as session:
            evidence = (await session.exec(select(Evidence))).one()
            report = await session.get(Report, evidence.report_id)
        assert (
            evidence.size == len(photo)
            and (Path(settings.data_dir) / evidence.path).read_bytes() == photo
        )
        for payload in (f"next:{report.id}", f"skip:{report.id}", f"send:{report.id}"):
            await say(stack, payload)
        async with db.session() as session:
            assert (await session.get(Occurrence, second.id)).status == "done"

        # A sticker is answered, never crashes; nothing was left undelivered.
        assert await post_event(stack, event("user_send_sticker")) == 200
        await stack.settle()
        async with db.session() as session:
            dead = (
                await session.exec(select(Outbox).where(Outbox.status != OutboxStatus.sent))
            ).all()
        assert dead == []
    finally:
        await stack.close()


async def test_signature_is_checked_before_anything_is_written(bare_stack: ZaloStack, db):  # noqa: ANN001
    stack = bare_stack
    body = event("user_send_text", text="Xin chào")
    assert await post_event(stack, body, sign="none") == 403
    assert await post_event(stack, body, sign="wrong") == 403
    raw = json.dumps(body).encode()
    tampered = raw.replace(b"Xin ch", b"Tam ch")
    headers = stack.fake.oa_headers(raw, stack.app.settings.zalo_oa_secret_key, body["timestamp"])
    assert (await stack.post("/webhook/zalo-oa", tampered, headers)).status == 403
    assert (await stack.post("/webhook/zalo-oa", b"<xml/>", headers)).status == 403
    xml_signed = stack.fake.oa_headers(b"<xml/>", stack.app.settings.zalo_oa_secret_key, "")
    assert (await stack.post("/webhook/zalo-oa", b"<xml/>", xml_signed)).status == 400
    assert await count(db, InboundUpdate) == 0 and await count(db, Outbox) == 0

    assert await post_event(stack, body) == 200
    await stack.settle()
    assert await count(db, InboundUpdate) == 1 and len(stack.fake.oa_sent) == 1
    # Zalo delivers the same event again: nothing changes.
    assert await post_event(stack, body) == 200
    await stack.settle()
    assert await count(db, InboundUpdate) == 1 and len(stack.fake.oa_sent) == 1
    # A follow delivered twice greets once.
    follow = event("follow", user="1111111111111111111")
    assert await post_event(stack, follow) == 200
    assert await post_event(stack, follow) == 200
    await stack.settle()
    assert await count(db, InboundUpdate) == 2 and len(stack.fake.oa_sent) == 2


async def test_big_ids_sent_as_json_numbers_keep_every_digit(bare_stack: ZaloStack, db):  # noqa: ANN001
    stack = bare_stack
    big = "9007199254740993123"  # far beyond 2^53
    body = event("user_send_text", user=big, text="Xin chào")
    raw = json.dumps(body).replace(f'"id": "{big}"', f'"id": {big}')
    raw = raw.replace(f'"timestamp": "{body["timestamp"]}"', f'"timestamp": {body["timestamp"]}')
    assert f'"id": {big}' in raw
    assert await post_event(stack, raw.encode()) == 200
    await stack.settle()
    assert stack.fake.oa_sent[-1]["user_id"] == big


async def test_events_become_the_right_incoming(bare_stack: ZaloStack):
    channel = bare_stack.channel
    location = channel.to_incomings(event("user_send_location"))[0]
    assert location.kind == Kind.location and (location.latitude, location.longitude) == (
        12.2451,
        109.1943,
    )
    numeric = event("user_send_location")
    numeric["message"]["attachments"][0]["payload"]["coordinates"] = {
        "latitude": 12.5,
        "longitude": 109.0,
    }
    assert channel.to_incomings(numeric)[0].latitude == 12.5
    assert channel.to_incomings(event("user_send_text", text="done:12"))[0].kind == Kind.button
    assert channel.to_incomings(event("user_send_text", text="menu:viec"))[0].data == "menu:viec"
    assert channel.to_incomings(event("user_send_text", text="ghi chú: xong"))[0].kind == Kind.text
    assert channel.to_incomings(event("user_send_text", text="abc:12"))[0].kind == Kind.text
    command = channel.to_incomings(event("user_send_text", text="/viec"))[0]
    assert (command.kind, command.command) == (Kind.command, "viec")
    follow = event("follow")
    incoming = channel.to_incomings(follow)[0]
    assert (
        incoming.kind == Kind.follow
        and incoming.update_id == f"follow:{USER}:{follow['timestamp']}"
    )
    assert channel.to_incomings(event("user_send_sticker"))[0].kind == Kind.unsupported
    echo = event("user_send_text", text="x")
    echo["event_name"] = "oa_send_text"
    assert channel.to_incomings(echo) == []


async def test_unfollow_marks_the_identity_unreachable(bare_stack: ZaloStack, db):  # noqa: ANN001
    await registered(db)
    assert await post_event(bare_stack, event("unfollow")) == 200
    async with db.session() as session:
        identity = (await session.exec(select(ChannelIdentity))).one()
    assert identity.blocked
    assert await post_event(bare_stack, event("follow")) == 200  # coming back clears it
    await bare_stack.settle()
    async with db.session() as session:
        identity = (await session.exec(select(ChannelIdentity))).one()
    assert not identity.blocked


async def test_expired_token_is_refreshed_once_for_concurrent_sends(bare_stack: ZaloStack, db):  # noqa: ANN001
    stack = bare_stack
    await registered(db, USER, fake=stack.fake)
    await registered(db, OFFICER, fake=stack.fake)
    await stack.channel.send(USER, Outgoing(text="trước"), "t0")
    assert stack.fake.oauth_calls == 0
    stack.fake.expire_access_token()
    stack.fake.oauth_delay = 0.3  # both sends see -216 before the refresh finishes
    results = await asyncio.gather(
        stack.channel.send(USER, Outgoing(text="một"), "t1"),
        stack.channel.send(OFFICER, Outgoing(text="hai"), "t2"),
    )
    assert all(results)
    assert stack.fake.oauth_calls == 1
    assert stack.fake.oa_texts() == ["trước", "một", "hai"] or sorted(
        stack.fake.oa_texts()[1:]
    ) == ["hai", "một"]
    refresh_call = stack.fake.calls_to("oauth")[0]
    assert refresh_call.body == {
        "refresh_token": "oa-refresh-1",
        "app_id": stack.fake.app_id,
        "grant_type": "refresh_token",
    }
    assert refresh_call.headers["secret_key"] == stack.fake.app_secret
    async with db.session() as session:
        row = (await session.exec(select(PlatformToken))).one()
    key = stack.app.settings.secret_key
    assert (unseal(key, row.access_token), unseal(key, row.refresh_token), row.version) == (
        "oa-access-2",
        "oa-refresh-2",
        2,
    )
    assert row.expires_at > utcnow() + timedelta(hours=24)

    # Another worker (its own store) that still holds version 1 does not refresh again.
    other = ZaloTokenStore(db, stack.app.settings, stack.channel.http)
    assert (await other.refresh(1)).access_token == "oa-access-2"
    assert stack.fake.oauth_calls == 1
    await stack.channel.send(USER, Outgoing(text="sau"), "t3")
    assert stack.fake.oauth_calls == 1
    sent_with = [c.headers.get("access_token") for c in stack.fake.calls_to("oa")]
    assert sent_with[-1] == "oa-access-2"

    # A refresh token Zalo no longer accepts: the send fails, to be retried; nothing is lost.
    stack.fake.expire_access_token()
    stack.fake.refresh_token = "revoked-by-zalo"
    with pytest.raises(DeliveryError) as failed:
        await stack.channel.send(USER, Outgoing(text="x"), "t4")
    assert not failed.value.permanent
    async with db.session() as session:
        stored = (await session.exec(select(PlatformToken))).one().refresh_token
    assert unseal(stack.app.settings.secret_key, stored) == "oa-refresh-2"


async def test_the_interaction_window_is_respected(bare_stack: ZaloStack, db):  # noqa: ANN001
    stack = bare_stack
    stale = await registered(db, USER, last_seen=utcnow() - timedelta(days=8), fake=stack.fake)
    await registered(db, OFFICER, last_seen=utcnow() - timedelta(days=6), fake=stack.fake)
    with pytest.raises(DeliveryError) as refused:
        await stack.channel.send(USER, Outgoing(text="Nhắc việc"), "w1")
    assert refused.value.permanent and not refused.value.unreachable
    assert stack.fake.calls_to("oa") == []  # Zalo was not even asked
    await stack.channel.send(OFFICER, Outgoing(text="Nhắc việc"), "w2")
    assert stack.fake.oa_texts(OFFICER) == ["Nhắc việc"]

    now = datetime.now(UTC)
    identity = ChannelIdentity(
        user_id=1,
        channel="zalo_oa",
        external_id="x",
        last_interaction_at=utcnow() - timedelta(hours=50),
    )
    assert within_window(identity, now) and not within_free_window(identity, now)
    identity.last_interaction_at = None
    assert not within_window(identity, now)
    assert within_window(ChannelIdentity(user_id=1, channel="telegram", external_id="1"), now)

    # Reminders skip a Zalo OA identity outside the window: another channel is preferred,
    # and with none, the person is unreachable (the reminder escalates instead).
    async with db.session() as session:
        assert await preferred_identity(session, stale.id) is None
        user = await session.get(User, stale.id)
        await link_identity(session, user, "telegram", "555")
        telegram = await session.exec(
            select(ChannelIdentity).where(ChannelIdentity.channel == "telegram")
        )
        old = telegram.one()
        old.last_interaction_at = utcnow() - timedelta(days=30)
        session.add(old)
        await session.commit()
        chosen = await preferred_identity(session, stale.id)
    assert chosen is not None and chosen.channel == "telegram"

    # Zalo's own window errors are permanent too; an unfollowed user is unreachable.
    stack.fake.outside_window.add(OFFICER)
    with pytest.raises(DeliveryError) as window:
        await stack.channel.send(OFFICER, Outgoing(text="x"), "w3")
    assert window.value.permanent and not window.value.unreachable
    stack.fake.outside_window.clear()
    stack.fake.not_following.add(OFFICER)
    async with db.session() as session:
        await enqueue(session, "zalo_oa", OFFICER, Outgoing(text="Nhắc"), "w4")
        await session.commit()
    assert await stack.sender.drain_once() == 0
    async with db.session() as session:
        row = (await session.exec(select(Outbox).where(Outbox.idempotency_key == "w4"))).one()
        identity = (
            await session.exec(
                select(ChannelIdentity).where(ChannelIdentity.external_id == OFFICER)
            )
        ).one()
    assert row.status == OutboxStatus.dead and "-213" in row.last_error
    assert identity.blocked


async def test_rate_limit_and_other_errors(bare_stack: ZaloStack, db):  # noqa: ANN001
    stack = bare_stack
    await registered(db, USER, fake=stack.fake)
    stack.fake.rate_limit_next = 1
    stack.channel.rate_limit_retry_after = 0.2
    with pytest.raises(DeliveryError) as limited:
        await stack.channel.send(USER, Outgoing(text="x"), "l1")
    assert limited.value.retry_after == 0.2 and not limited.value.permanent

    # Through the sender, the wait is honoured and the message goes out.
    from bot.channels.sender import RateLimiter

    stack.sender.limits = {"zalo_oa": RateLimiter(per_second=100, per_chat_interval=0)}
    stack.fake.rate_limit_next = 1
    async with db.session() as session:
        await enqueue(session, "zalo_oa", USER, Outgoing(text="sau khi chờ"), "l2")
        await session.commit()
    assert await stack.sender.drain_once() == 1
    assert stack.fake.oa_texts(USER)[-1] == "sau khi chờ"

    # Any other error is permanent: a dead letter that keeps the message and the reason.
    async with db.session() as session:
        await enqueue(session, "zalo_oa", "not-a-number", Outgoing(text="lạc"), "l3")
        await session.commit()
    await stack.sender.drain_once()
    async with db.session() as session:
        row = (await session.exec(select(Outbox).where(Outbox.idempotency_key == "l3"))).one()
    assert (
        row.status == OutboxStatus.dead
        and "-201" in row.last_error
        and row.payload["text"] == "lạc"
    )


async def test_long_text_many_buttons_and_big_images(bare_stack: ZaloStack, db, settings):  # noqa: ANN001
    stack = bare_stack
    await registered(db, USER, fake=stack.fake)
    text = "\n".join(f"{n}. Thôn {n}: đã nộp báo cáo công khai ngân sách quý." for n in range(100))
    assert len(text) > 4000
    buttons = [[Button("Xem", "menu:viec"), Button("Trợ giúp", "menu:help")]]
    await stack.channel.send(USER, Outgoing(text=text, buttons=buttons), "s1")
    sent = [m["message"] for m in stack.fake.oa_sent]
    assert len(sent) == 3 and all(len(m["text"]) <= 2000 for m in sent)
    assert "\n".join(m["text"] for m in sent).splitlines() == text.splitlines()
    assert [bool(buttons_of(m)) for m in sent] == [False, False, True]

    six = [[Button(f"Thôn {n}", f"vil:{n}")] for n in range(1, 7)]
    await stack.channel.send(USER, Outgoing(text="Chọn thôn", buttons=six), "s2")
    last = stack.fake.oa_sent[-1]["message"]
    assert "attachment" not in last and last["text"].endswith("6. Thôn 6")

    # A photo over 1 MB is downscaled below it before the upload, then sent by attachment id.
    big = noisy_png(1400, 1000)
    assert len(big) > 3_000_000
    chart = Path(settings.data_dir) / "charts" / "big.png"
    chart.parent.mkdir(parents=True, exist_ok=True)
    chart.write_bytes(big)
    await stack.channel.send(USER, Outgoing(text="Biểu đồ", photo_path="charts/big.png"), "s3")
    ((attachment_id, uploaded),) = stack.fake.uploads.items()
    assert len(uploaded) <= 1_000_000
    with Image.open(io.BytesIO(uploaded)) as image:
        assert image.format == "JPEG" and image.width <= 1400
    media = stack.fake.oa_sent[-1]["message"]
    assert media["text"] == "Biểu đồ"
    assert media["attachment"]["payload"]["elements"][0]["attachment_id"] == attachment_id

    small = jpeg_bytes(100, 100)
    assert fit_image(small) == (small, "image.jpg")


async def test_webhook_answers_within_two_seconds_while_a_slow_download_goes_on(
    bare_stack: ZaloStack,
    db,  # noqa: ANN001
):
    stack = bare_stack
    await registered(db, USER, fake=stack.fake)
    stack.fake.cdn_delay = 3.0
    image = event("user_send_image")
    image["message"]["attachments"][0]["payload"]["url"] = stack.fake.add_cdn(
        "slow.jpg", jpeg_bytes()
    )
    started = asyncio.get_running_loop().time()
    assert await post_event(stack, image) == 200
    assert asyncio.get_running_loop().time() - started < 2.0
    await stack.settle()  # the handling finished after the answer
    assert await count(db, InboundUpdate) == 1
    assert stack.fake.calls_to("cdn") and stack.fake.oa_sent  # "which task is this photo for?"
