"""Drill: an attacker in the chat, on a real database (SQLite; PostgreSQL when configured).

What was reproduced on the old main and must not happen again: one single-use code
registering six chats at once on PostgreSQL, a brute force that starts over from every new chat
id, a village head declaring an election by typing `evk:election`, dates in the year 9999 and
negative extensions, a replayed old Zalo OA `unfollow`, and the Zalo Bot adapter downloading a
"photo" from loopback. Each refusal is the sentence the person reads, an audit row, and nothing
else written.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import SQLModel, col, select

from bot.channels.media_source import check_source
from bot.channels.zalo_bot import SECRET_HEADER, ZaloBotChannel
from bot.channels.zalo_oa import ZaloOAChannel
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.i18n import format_day, translator
from bot.core.messages import FetchRefused, Incoming, Kind
from bot.core.models import (
    AuditLog,
    ChannelIdentity,
    Event,
    Invite,
    Occurrence,
    Outbox,
    Report,
    Unit,
    User,
)
from bot.core.services.outbox import dialog_state
from bot.core.services.people import identity_for
from bot.core.timeutil import from_db
from bot.core.unit_words import titled
from handlers.router import BUTTONS, COMMANDS, STATE_TEXT, Dispatcher
from scheduler.policy import load_policies
from tests.helpers.drill_support import changed, row_counts
from tests.helpers.fake_zalo import ZaloStack, fixture, jpeg_bytes, start_stack
from tests.helpers.rows import count
from tests.helpers.telegram_harness import small_world
from tests.helpers.world import World

pytestmark = pytest.mark.drill

vi = translator("vi")
USED = vi("The code {code} has already been used. Please ask the commune office for a new one.")
UNKNOWN = vi("I cannot find the code {code}. Please check it and type it again.")
BUSY = vi(
    "Many wrong codes have been typed in the last minute, so registration is paused "
    "for a moment. Please wait a minute and type your code again."
)


@pytest.fixture
async def world(settings: Settings, db: Database, framework: Framework) -> World:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await small_world(settings, db, framework)


@pytest.fixture
async def sqlite_world(settings: Settings, framework: Framework) -> AsyncIterator[World]:
    """For checks that do not depend on the engine (the role table): SQLite only, once."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    async with database.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    yield await small_world(settings, database, framework)
    await database.dispose()


def typed(chat: str, text: str, channel: str = "telegram") -> Incoming:
    return Incoming(
        channel=channel,
        external_id=chat,
        update_id=uuid.uuid4().hex,
        kind=Kind.text,
        text=text,
        display_name=f"chat {chat}",
    )


async def replies(db: Database, chat: str) -> list[str]:
    async with db.session() as session:
        rows = await session.exec(
            select(Outbox).where(Outbox.external_id == chat).order_by(col(Outbox.id))
        )
        return [row.payload["text"] for row in rows.all()]


async def audit_rows(db: Database, *actions: str) -> list[AuditLog]:
    async with db.session() as session:
        rows = await session.exec(
            select(AuditLog).where(col(AuditLog.action).in_(actions)).order_by(col(AuditLog.id))
        )
        return list(rows.all())


# --------------------------------------------------------------------------- invites


async def test_twenty_chats_sending_one_code_at_once_register_exactly_one(world: World) -> None:
    db = world.db
    invite = await world.invite(world.villages[0], "village_head")
    dispatcher = Dispatcher(world.app)
    chats = [f"77000{n:02d}" for n in range(20)]

    # Twenty registrations at the same moment, each in its own session and connection.
    await asyncio.gather(*(dispatcher.handle(typed(chat, invite.code)) for chat in chats))

    assert await count(db, User) == 1
    async with db.session() as session:
        identities = list((await session.exec(select(ChannelIdentity))).all())
        used = await session.get(Invite, invite.id)
    assert len(identities) == 1
    winner = identities[0].external_id
    assert used.used_at is not None and used.used_by_user_id == identities[0].user_id
    for chat in chats:
        answer = await replies(db, chat)
        if chat == winner:
            assert len(answer) == 1 and answer[0] != USED.format(code=invite.code)
        else:
            assert answer == [USED.format(code=invite.code)], (chat, answer)
    refusals = await audit_rows(db, "invite.wrong_code")
    assert sorted(r.subject for r in refusals) == sorted(
        f"telegram:{chat}" for chat in chats if chat != winner
    )
    assert {r.detail["reason"] for r in refusals} == {"used"}
    assert [r.subject for r in await audit_rows(db, "invite.redeemed")] == [f"telegram:{winner}"]


async def test_new_chat_ids_do_not_buy_new_guesses(world: World, settings: Settings) -> None:
    db = world.db
    settings.invite_wrong_codes_per_minute = 6
    invite = await world.invite(world.villages[0], "village_head")
    dispatcher = Dispatcher(world.app)
    guesses = [f"ZZZZ{n}{n}{n}{n}" for n in range(2, 8)]
    assert invite.code not in guesses

    # Six wrong codes, each from a chat never seen before: each one answered as unknown.
    for number, guess in enumerate(guesses):
        await dispatcher.handle(typed(f"88000{number}", guess))
        assert await replies(db, f"88000{number}") == [UNKNOWN.format(code=guess)]
    before = await row_counts(db)

    # The right code from yet another new chat: the code space is closed for the minute.
    await dispatcher.handle(typed("8800099", invite.code))

    assert await replies(db, "8800099") == [BUSY]
    assert await count(db, User) == 0 and await count(db, ChannelIdentity) == 0
    async with db.session() as session:
        assert (await session.get(Invite, invite.id)).used_at is None
    limited = await audit_rows(db, "invite.rate_limited")
    assert [(r.subject, r.detail["scope"], r.detail["code"]) for r in limited] == [
        ("telegram:8800099", "all", invite.code)
    ]
    grew = changed(before, await row_counts(db))
    assert grew == {"inbound_updates": 1, "dialog_states": 1, "outbox": 1, "audit_log": 1}, grew

    # A minute later the window has passed: the same code registers that chat.
    async with db.session() as session:
        for row in (await session.exec(select(AuditLog))).all():
            row.at -= timedelta(seconds=61)
            session.add(row)
        await session.commit()
    await dispatcher.handle(typed("8800099", invite.code))
    assert await count(db, User) == 1


# --------------------------------------------------------------------------- roles

REFUSED = vi(
    "Sorry, this is not something {role} can do here, so nothing was changed. "
    "Type /help to see what you can do."
)
AGENCY_ROLE = "province_agency:so-noi-vu"


def declared() -> list[tuple[str, str, frozenset[str]]]:
    """Every (kind, name, roles) the router declares."""
    return (
        [("command", name, action.roles) for name, action in COMMANDS.items()]
        + [("button", name, action.roles) for name, action in BUTTONS.items()]
        + [("state", name, action.roles) for name, action in STATE_TEXT.items()]
    )


def expected_allowed(framework: Framework, roles: frozenset[str], role: str) -> bool:
    """The declaration read independently of the router's own check."""
    if "*" in roles or role in roles:
        return True
    if role.startswith("province_agency:") and "province_agency:*" in roles:
        return True
    definition = framework.roles.get(role)
    if definition is None:
        return False
    if "@oversees" in roles and definition.oversees:
        return True
    # "@oversees:commune_committee": a role that oversees that one (the district committee;
    # the province committee when there are no districts).
    overseen = {entry.split(":", 1)[1] for entry in roles if entry.startswith("@oversees:")}
    return bool(overseen & set(definition.oversees))


async def home_unit(world: World, framework: Framework, role: str) -> Unit:
    level = "province" if role.startswith("province_agency:") else framework.roles[role].level
    if level == "village":
        return world.villages[0]
    if level == "commune":
        return world.commune
    if level == "district":
        return world.district
    async with world.db.session() as session:
        return await session.get(Unit, world.district.parent_id)


async def some_occurrence(db: Database, unit: Unit) -> int:
    async with db.session() as session:
        ids = await session.exec(
            select(Occurrence.id).where(Occurrence.unit_id == unit.id).order_by(col(Occurrence.id))
        )
        mine = ids.first()
        if mine is None:
            mine = (await session.exec(select(Occurrence.id).order_by(col(Occurrence.id)))).first()
    assert mine is not None
    return int(mine)


def attempt(kind: str, name: str, chat: str, occurrence_id: int, today_text: str) -> Incoming:
    """The update that tries `name`, with a plausible argument."""
    base = {"channel": "telegram", "external_id": chat, "update_id": uuid.uuid4().hex}
    if kind == "command":
        return Incoming(
            kind=Kind.command, command=name, text="vi" if name == "lang" else "", **base
        )
    if kind == "button":
        day = f"{date.today():%Y%m%d}"  # the walk's buttons name the reminder's day
        arg = {
            "evk": "election",
            "extd": f"{occurrence_id}:3",
            "fu": "0",
            "one": day,
            "wkq": day,
            "wkx": f"{day}:{occurrence_id}:3",
            **{walk: f"{day}:{occurrence_id}" for walk in ("wkd", "wke", "wkc", "wks")},
        }.get(name, str(occurrence_id))
        return Incoming(kind=Kind.button, data=f"{name}:{arg}", **base)
    text = today_text if name in ("awaiting_event_date", "awaiting_extension_date") else "Vì mưa"
    return Incoming(kind=Kind.text, text=text, **base)


def state_data(name: str, occurrence_id: int) -> dict:
    day = f"{date.today():%Y%m%d}"
    return {
        "awaiting_note": {"report_id": 0},
        "awaiting_extension_date": {"occurrence_id": occurrence_id},
        "awaiting_extension_reason": {
            "occurrence_id": occurrence_id,
            "until": (date.today() + timedelta(days=20)).isoformat(),
        },
        "awaiting_cannot_reason": {"occurrence_id": occurrence_id},
        "awaiting_event_date": {"kind": "election"},
        "awaiting_decision_reason": {"report_id": 0, "action": "decr"},
        "walking": {"walk": day, "occurrence_id": occurrence_id, "report_id": 0},
        "walk_cannot_reason": {"walk": day, "occurrence_id": occurrence_id},
        "walk_extension_date": {"walk": day, "occurrence_id": occurrence_id},
        "walk_extension_reason": {
            "walk": day,
            "occurrence_id": occurrence_id,
            "until": (date.today() + timedelta(days=20)).isoformat(),
        },
    }[name]


async def put_state(db: Database, chat: str, name: str, data: dict) -> None:
    async with db.session() as session:
        state = await dialog_state(session, "telegram", chat)
        state.state, state.data = name, data
        session.add(state)
        await session.commit()


async def state_of(db: Database, chat: str) -> tuple[str, dict]:
    async with db.session() as session:
        state = await dialog_state(session, "telegram", chat)
        return state.state, dict(state.data)


async def test_every_action_is_refused_to_every_role_it_is_not_declared_for(
    sqlite_world: World, framework: Framework
) -> None:
    world = sqlite_world
    db = world.db
    dispatcher = Dispatcher(world.app)
    roles = [*framework.roles, AGENCY_ROLE]
    actions = declared()
    today_text = (date.today() + timedelta(days=20)).strftime("%d/%m/%Y")
    refused_pairs = allowed_pairs = 0
    for number, role in enumerate(roles):
        chat = f"99{number:04d}"
        unit = await home_unit(world, framework, role)
        await world.person(f"{role} person", unit, role, "telegram", chat)
        occurrence_id = await some_occurrence(db, unit)
        await dispatcher.handle(attempt("command", "help", chat, 0, ""))  # the dialog row
        for kind, name, allowed in actions:
            if kind == "state":
                await put_state(db, chat, name, state_data(name, occurrence_id))
            permitted = expected_allowed(framework, allowed, role)
            said_before = len(await replies(db, chat))
            forbidden_before = len(await audit_rows(db, "forbidden"))
            if not permitted:
                state_before = await state_of(db, chat)
                counts_before = await row_counts(db)

            await dispatcher.handle(attempt(kind, name, chat, occurrence_id, today_text))

            said = (await replies(db, chat))[said_before:]
            new_audits = (await audit_rows(db, "forbidden"))[forbidden_before:]
            role_refusals = [a for a in new_audits if a.detail.get("reason") == "role"]
            where = (kind, name, role, said)
            if permitted:
                allowed_pairs += 1
                assert role_refusals == [], where
                assert all(not s.startswith(REFUSED[:20]) for s in said), where
                continue
            refused_pairs += 1
            label = titled(framework, role, unit, "vi")  # the reader's own title at their unit
            assert said == [REFUSED.format(role=label)], where
            attempted = {"command": f"/{name}", "button": f"{name}:"}.get(kind, name)
            assert [(a.detail["attempted"], a.detail["role"]) for a in role_refusals] == [
                (attempted, role)
            ], where
            grew = changed(counts_before, await row_counts(db))
            assert grew == {"inbound_updates": 1, "outbox": 1, "audit_log": 1}, where + (grew,)
            assert await state_of(db, chat) == state_before, where
    # The declaration is not vacuous either way.
    assert refused_pairs > 100 and allowed_pairs > 100, (refused_pairs, allowed_pairs)


# --------------------------------------------------------------------------- on Zalo


@pytest.fixture
async def oa_stack(world: World) -> AsyncIterator[ZaloStack]:
    stack = await start_stack(world.app, ZaloOAChannel)
    yield stack
    await stack.close()


@pytest.fixture
async def bot_stack(world: World) -> AsyncIterator[ZaloStack]:
    stack = await start_stack(world.app, ZaloBotChannel)
    yield stack
    await stack.close()


def oa_body(name: str, user: str, age: timedelta = timedelta(0), **message: object) -> dict:
    """A Zalo OA event signed `age` ago (Zalo signs the body's own timestamp)."""
    body = copy.deepcopy(fixture(f"oa_{name}.json"))
    body["timestamp"] = str(int((datetime.now(UTC) - age).timestamp() * 1000))
    if "follower" in body:
        body["follower"]["id"] = user
    else:
        body["sender"]["id"] = user
        body["message"]["msg_id"] = uuid.uuid4().hex
        body["message"].update(message)
    return body


async def oa_post(stack: ZaloStack, body: dict) -> int:
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = stack.fake.oa_headers(raw, stack.app.settings.zalo_oa_secret_key, body["timestamp"])
    response = await stack.post("/webhook/zalo-oa", raw, headers)
    await stack.settle()
    return response.status


async def oa_says(stack: ZaloStack, body: dict) -> list[str]:
    user = body["sender"]["id"]
    before = len(stack.fake.oa_texts(user))
    assert await oa_post(stack, body) == 200
    return stack.fake.oa_texts(user)[before:]


async def test_a_village_head_typing_evk_election_on_zalo_oa_declares_nothing(
    oa_stack: ZaloStack, world: World
) -> None:
    stack, db = oa_stack, world.db
    user = "4100000000000000001"
    head_unit = world.villages[0]
    head = await world.person("Trưởng thôn", head_unit, "village_head", "zalo_oa", user)
    await oa_says(stack, oa_body("user_send_text", user, text="/help"))
    before = await row_counts(db)

    # Zalo OA lets anyone type a button's payload; the village head tries the officer's.
    answer = await oa_says(stack, oa_body("user_send_text", user, text="evk:election"))

    assert answer == [REFUSED.format(role=titled(world.app.framework, "village_head", head_unit))]
    grew = changed(before, await row_counts(db))
    assert grew == {"inbound_updates": 1, "outbox": 1, "audit_log": 1}, grew
    # … and the date that would have followed is just text: still no event, no plan.
    await oa_says(stack, oa_body("user_send_text", user, text="15/03/2027"))
    # The officer's menu entry, typed, is refused the same way.
    answer = await oa_says(stack, oa_body("user_send_text", user, text="menu:sukien"))
    assert answer == [REFUSED.format(role=titled(world.app.framework, "village_head", head_unit))]
    assert await count(db, Event) == 0
    rows = await audit_rows(db, "forbidden")
    assert [(r.actor_user_id, r.detail["attempted"], r.detail["role"]) for r in rows] == [
        (head.id, "evk:", "village_head"),
        (head.id, "/sukien", "village_head"),
    ]


async def test_a_replayed_old_unfollow_blocks_nobody_and_old_messages_are_refused(
    oa_stack: ZaloStack, world: World, settings: Settings
) -> None:
    stack, db = oa_stack, world.db
    user = "4200000000000000001"
    await world.person("Trưởng thôn", world.villages[0], "village_head", "zalo_oa", user)
    eleven_minutes = timedelta(minutes=11)
    before = await row_counts(db)

    assert await oa_post(stack, oa_body("unfollow", user, age=eleven_minutes)) == 403
    assert (
        await oa_post(stack, oa_body("user_send_text", user, eleven_minutes, text="/viec")) == 403
    )
    # As far ahead is no better (a clock cannot be that wrong; a forger's can).
    assert await oa_post(stack, oa_body("unfollow", user, age=-eleven_minutes)) == 403

    assert changed(before, await row_counts(db)) == {}
    async with db.session() as session:
        identity = await identity_for(session, "zalo_oa", user)
    assert identity.blocked is False
    assert stack.fake.oa_texts(user) == []

    # Within the window (a setting) the same unfollow is taken: the check is not vacuous.
    settings.zalo_oa_replay_window_seconds = 3600
    assert await oa_post(stack, oa_body("unfollow", user, age=eleven_minutes)) == 200
    async with db.session() as session:
        assert (await identity_for(session, "zalo_oa", user)).blocked is True


def bot_photo(chat: str, url: str) -> dict:
    body = copy.deepcopy(fixture("bot_image.json"))
    message = body["message"]
    message["from"]["id"] = message["chat"]["id"] = chat
    message["photo_url"] = url
    message["message_id"] = uuid.uuid4().hex[:20]
    return body


async def bot_says(stack: ZaloStack, update: dict) -> list[str]:
    chat = update["message"]["chat"]["id"]
    before = len(stack.fake.bot_texts(chat))
    headers = {
        SECRET_HEADER: stack.app.settings.zalo_bot_webhook_secret,
        "Content-Type": "application/json",
    }
    response = await stack.post("/webhook/zalo-bot", json.dumps(update).encode(), headers)
    assert response.status == 200
    await stack.settle()
    return stack.fake.bot_texts(chat)[before:]


NOT_FROM_ZALO = vi(
    "I could not take this photo: it was not sent through Zalo itself. Please send "
    "the photo again from the Zalo app (tap the picture icon), not as a link."
)


async def test_a_photo_address_on_loopback_is_never_fetched_by_zalo_bot(
    bot_stack: ZaloStack, world: World, settings: Settings
) -> None:
    stack, db = bot_stack, world.db
    chat = "55ad0000000000000001"
    head = await world.person("Trưởng thôn", world.villages[0], "village_head", "zalo_bot", chat)
    listed = stack.fake.add_cdn("anh.jpg", jpeg_bytes())
    port = stack.fake.host.rsplit(":", 1)[1]
    by_name = f"http://localhost:{port}/cdn/anh.jpg"  # the same loopback server, not listed
    ours = f"{stack.url}/healthz"  # papibot itself
    metadata = "http://169.254.169.254/latest/meta-data/"
    before = await row_counts(db)

    for url in (by_name, ours, metadata):
        assert await bot_says(stack, bot_photo(chat, url)) == [NOT_FROM_ZALO], url
    # Listing a name is not enough: it must resolve to a public address, and localhost does not.
    settings.zalo_media_hosts = f"{stack.fake.host},localhost"
    assert await bot_says(stack, bot_photo(chat, by_name)) == [NOT_FROM_ZALO]

    assert stack.fake.calls_to("cdn") == []
    grew = changed(before, await row_counts(db))
    assert grew == {"inbound_updates": 4, "dialog_states": 1, "outbox": 4, "audit_log": 4}, grew
    rows = await audit_rows(db, "evidence.refused_source")
    assert [(r.actor_user_id, r.detail["ref"]) for r in rows] == [
        (head.id, url) for url in (by_name, ours, metadata, by_name)
    ]
    assert "resolves to a private address" in rows[-1].detail["why"]

    # The address the setting lists explicitly (the fake CDN) is fetched as before.
    answer = await bot_says(stack, bot_photo(chat, listed))
    assert answer != [NOT_FROM_ZALO] and len(stack.fake.calls_to("cdn")) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.jpg",
        "http://[::1]/x.jpg",
        "http://[::ffff:127.0.0.1]/x.jpg",
        "http://10.0.0.8/x.jpg",
        "http://169.254.169.254/x.jpg",
        "http://zdn.vn@127.0.0.1/x.jpg",
        "http://f20-zpc.zdn.vn.evil.example/x.jpg",
        "file:///etc/passwd",
        "ftp://f20-zpc.zdn.vn/x.jpg",
    ],
)
async def test_addresses_off_the_zalo_hosts_are_refused_before_any_connection(url: str) -> None:
    with pytest.raises(FetchRefused):
        await check_source(url, Settings(_env_file=None).zalo_media_hosts)


# --------------------------------------------------------------------------- dates and days


def tapped(chat: str, data: str) -> Incoming:
    return Incoming(
        channel="telegram",
        external_id=chat,
        update_id=uuid.uuid4().hex,
        kind=Kind.button,
        data=data,
    )


async def test_an_event_in_the_year_9999_or_long_past_is_not_declared(world: World) -> None:
    db = world.db
    chat = "6600001"
    await world.person("UBND xã", world.commune, "commune_committee", "telegram", chat)
    dispatcher = Dispatcher(world.app)
    today = date.today()
    first = (today - timedelta(days=30)).strftime("%d/%m/%Y")
    last = (today + timedelta(days=2 * 366)).strftime("%d/%m/%Y")
    bounded = vi("Please type a date from {first} to {last}, like 15/12/2026.").format(
        first=first, last=last
    )
    await dispatcher.handle(tapped(chat, "evk:election"))
    occurrences = await count(db, Occurrence)

    for text in ("15/03/9999", (today - timedelta(days=400)).strftime("%d/%m/%Y")):
        said = len(await replies(db, chat))
        await dispatcher.handle(typed(chat, text))
        assert (await replies(db, chat))[said:] == [bounded], text
        assert await count(db, Event) == 0 and await count(db, Occurrence) == occurrences
        assert (await state_of(db, chat))[0] == "awaiting_event_date"  # they may type again

    await dispatcher.handle(typed(chat, (today + timedelta(days=60)).strftime("%d/%m/%Y")))
    assert await count(db, Event) == 1


async def test_an_extension_of_negative_zero_or_huge_days_is_not_requested(world: World) -> None:
    db = world.db
    max_days = load_policies(world.app.settings).reminders.max_extension_days
    chat = "6600002"
    await world.person("Trưởng thôn", world.villages[0], "village_head", "telegram", chat)
    dispatcher = Dispatcher(world.app)
    occurrence_id = await some_occurrence(db, world.villages[0])
    async with db.session() as session:
        occurrence = await session.get(Occurrence, occurrence_id)
    due = from_db(occurrence.due_at).astimezone(world.app.settings.tz).date()
    base = max(due, date.today())
    tap = "bấm một nút bên dưới"  # what "{action}" reads as on a channel with buttons
    example = f"{base + timedelta(days=5):%d/%m}"
    retype = vi("Please type a date like {example}, or {action}.").format(
        example=example, action=tap
    )
    too_far = vi(
        "At most {days} more days can be asked for: the latest date is {latest} "
        "(current due date {due})."
    ).format(
        days=max_days,
        latest=format_day(base + timedelta(days=max_days), "vi"),
        due=format_day(due, "vi"),
    )
    too_early = vi(
        "The new date must be after the current due date ({due}). "
        "Please type a later date, like {example}."
    ).format(due=format_day(due, "vi"), example=example)
    await dispatcher.handle(tapped(chat, f"ext:{occurrence_id}"))
    forged = {
        f"extd:{occurrence_id}:-30": retype,
        f"extd:{occurrence_id}:0": retype,
        f"extd:{occurrence_id}:{max_days + 1}": too_far,
        f"extd:{occurrence_id}:99999999": too_far,
    }
    for data, answer in forged.items():
        said = len(await replies(db, chat))
        await dispatcher.handle(tapped(chat, data))
        assert (await replies(db, chat))[said:] == [answer], data
        assert (await state_of(db, chat))[0] == "awaiting_extension_date", data
    for text, answer in (
        ("01/01/2099", too_far),
        ((due - timedelta(days=1)).strftime("%d/%m/%Y"), too_early),
    ):
        said = len(await replies(db, chat))
        await dispatcher.handle(typed(chat, text))
        assert (await replies(db, chat))[said:] == [answer], text
    assert await count(db, Report) == 0

    await dispatcher.handle(tapped(chat, f"extd:{occurrence_id}:{max_days}"))
    state, data = await state_of(db, chat)
    assert state == "awaiting_extension_reason"
    assert data["until"] == (base + timedelta(days=max_days)).isoformat()
