"""No reminder is silently lost: each message's status is what the platform said, a failed or
undelivered step gives way to the person's next one (their other chats, ZNS to their phone),
and when nothing reaches them the commune is told, by name, the same morning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.framework.loader import FrameworkError
from bot.core.models import ACCEPTED_STATUSES, ChainStatus, OutboxStatus
from bot.core.services.reach import normalise_phone, unreachable_by_commune
from bot.core.services.reach_policy import load_reach_policy
from tests.helpers.reach_rig import TEMPLATES, Rig, start_rig
from tests.helpers.scheduler_world import T1, T2, at

OA_USER = "2468458835296117922"
PHONE = "0912 345 678"


@pytest.fixture
async def rig(settings, db, framework):  # noqa: ANN001
    rig = await start_rig(settings, db, framework)
    yield rig
    await rig.close()


def vi_notice_start(name: str) -> str:
    return f"📵 Không liên lạc được {name}"


def notices(rig: Rig, name: str) -> list[str]:
    """What the commune officer (chat 3001) was told about `name`."""
    wanted = vi_notice_start(name)
    return [m.text for m in rig.telegram.sent_to(3001) if m.text.startswith(wanted)]


async def officer(rig: Rig) -> None:
    rig.telegram.user(3001)
    await rig.world.person("officer_an", "xa_an", "commune_committee", "telegram", "3001")


def steps(chain) -> list[tuple[str, str, str, str]]:  # noqa: ANN001
    return [(s["step"], s["channel"], s["outcome"], s["reason"]) for s in chain.steps]


async def test_oa_refusal_outside_zalos_window_is_not_a_sent_reminder_and_zns_delivers_it(
    rig: Rig,
):
    # Our records say the head wrote yesterday; Zalo counts 48 hours and saw them 3 days ago.
    head = await rig.person("head_mot", "thon_mot", "zalo_oa", OA_USER, phone=PHONE)
    rig.zalo.window = timedelta(hours=48)
    rig.zalo.user_wrote(OA_USER, datetime.now(UTC) - timedelta(days=3))
    first = await rig.world.occurrence(T1, "thon_mot")

    await rig.sweep(at(18, 8))
    await rig.drain()
    [oa_row] = await rig.rows(channel="zalo_oa")
    assert oa_row.status == OutboxStatus.dead and oa_row.failure == "outside_window"
    assert rig.zalo.oa_sent == []
    [chain] = await rig.chains(head)
    assert chain.status == ChainStatus.failed and chain.reason == "outside_window"
    [reminder] = await rig.reminders_of(first.id)
    assert reminder.outcome == "queued"  # not "sent": Zalo refused it
    assert reminder.chain_keys == [chain.key]

    # The next minute's sweep takes the next step: the ZNS template to the phone.
    await rig.sweep(at(18, 8, 1))
    await rig.drain()
    [zns_row] = await rig.rows(channel="zalo_zns")
    assert zns_row.status == OutboxStatus.delivered and zns_row.delivered_at is not None
    [sent] = rig.zns.sent
    assert sent["phone"] == "84912345678" and sent["template_id"] == TEMPLATES["reminder"]
    assert sent["template_data"]["ten_nguoi_nhan"] == "head_mot"
    assert sent["template_data"]["so_viec"] == "2"  # both village tasks in one message
    assert sent["template_data"]["han_bao_cao"] == "25/11/2026"
    assert sent["msg_id"] == zns_row.platform_message_id
    [reminder] = await rig.reminders_of(first.id)
    assert reminder.outcome == "sent"
    [chain] = await rig.chains(head)
    assert chain.status == ChainStatus.delivered and chain.channel == "zalo_zns"
    assert steps(chain) == [
        ("last_used", "zalo_oa", "failed", "outside_window"),
        ("zns", "zalo_zns", "delivered", ""),
    ]
    # A stale window is never retried: later sweeps leave the chain alone.
    await rig.sweep(at(18, 9))
    assert len(await rig.rows(user_id=head.id)) == 2


async def test_without_a_phone_the_commune_is_told_by_name_the_same_morning(rig: Rig):
    await officer(rig)
    head = await rig.person("head_mot", "thon_mot", "zalo_oa", OA_USER)
    rig.zalo.enforce_window = True  # Zalo never saw them write
    second = await rig.world.occurrence(T2, "thon_mot")

    await rig.sweep(at(18, 8))
    await rig.drain()
    report = await rig.sweep(at(18, 8, 1))
    assert report.flagged == 1
    await rig.drain()
    [notice] = notices(rig, "head_mot")
    assert "Thôn Một" in notice and "Zalo" in notice
    assert "Chưa có số điện thoại" in notice
    [reminder] = await rig.reminders_of(second.id)
    assert reminder.outcome == "unreachable"
    [chain] = await rig.chains(head)
    assert chain.status == ChainStatus.flagged and chain.reason == "outside_window"
    assert steps(chain)[-1] == ("commune", "", "flagged", "outside_window")
    async with rig.db.session() as session:
        listed = await unreachable_by_commune(session)
    [person] = listed[rig.world.units["xa_an"].id]
    assert (person.name, person.unit, person.reason, person.phone) == (
        "head_mot",
        "Thôn Một",
        "outside_window",
        None,
    )


async def test_with_a_phone_the_commune_gets_the_number_to_call(rig: Rig):
    await officer(rig)
    await rig.person("head_mot", "thon_mot", "zalo_oa", OA_USER, phone=PHONE)
    rig.zns.no_zalo.add("84912345678")
    await rig.sweep(at(18, 8))
    await rig.drain()
    await rig.sweep(at(18, 8, 1))  # OA refused: ZNS
    await rig.drain()
    await rig.sweep(at(18, 8, 2))  # no Zalo account on the number: the commune
    await rig.drain()
    [notice] = notices(rig, "head_mot")
    assert "0912345678" in notice


FAILURES = [
    ("telegram", "blocked", lambda rig: rig.telegram.block(rig.telegram.user(1001)["id"])),
    ("telegram", "blocked", lambda rig: None),  # a chat Telegram no longer knows (deleted)
    ("zalo_bot", "blocked", lambda rig: rig.zalo.bot_blocked.add("2002")),
    ("zalo_oa", "outside_window", lambda rig: None),  # Zalo never saw them write
    ("zalo_oa", "blocked", lambda rig: rig.zalo.not_following.add(OA_USER)),
    ("zalo_oa_bad_id", "platform_error", lambda rig: None),  # Zalo: -201 parameters invalid
    ("zns", "invalid_phone", lambda rig: rig.zns.invalid_numbers.add("84912345678")),
    ("zns", "no_channel", lambda rig: rig.zns.no_zalo.add("84912345678")),
    ("zns", "blocked", lambda rig: rig.zns.refuses.add("84912345678")),
    ("zns", "quota", lambda rig: setattr(rig.zns, "daily_quota", 0)),
    ("zns", "platform_error", lambda rig: rig.zns.fail_next.append(-109)),
]
ADDRESS = {"telegram": "1001", "zalo_bot": "2002", "zalo_oa": OA_USER, "zalo_oa_bad_id": "oa-x"}


@pytest.mark.parametrize(("channel", "reason", "inject"), FAILURES)
async def test_no_failure_is_ever_recorded_as_sent(rig: Rig, channel, reason, inject):  # noqa: ANN001
    await officer(rig)
    if channel == "zns":
        head = await rig.person("head_mot", "thon_mot", phone=PHONE)
    else:
        head = await rig.person("head_mot", "thon_mot", channel[:8].rstrip("_"), ADDRESS[channel])
        channel = channel[:8].rstrip("_")
    inject(rig)
    occurrence = await rig.world.occurrence(T1, "thon_mot")

    await rig.sweep(at(18, 8))
    await rig.drain()
    mine = await rig.rows(user_id=head.id)
    assert [(r.channel.replace("zalo_zns", "zns"), r.status, r.failure) for r in mine] == [
        (channel, OutboxStatus.dead, reason)
    ]
    assert not [r for r in mine if r.status in ACCEPTED_STATUSES or r.sent_at]
    [reminder] = await rig.reminders_of(occurrence.id)
    assert reminder.outcome == "queued"
    [chain] = await rig.chains(head)
    assert chain.status == ChainStatus.failed and chain.reason == reason

    await rig.sweep(at(18, 8, 1))  # nothing else to try: the commune is told
    await rig.drain()
    [reminder] = await rig.reminders_of(occurrence.id)
    assert reminder.outcome == "unreachable"
    [chain] = await rig.chains(head)
    assert chain.status == ChainStatus.flagged and chain.reason == reason
    assert len(notices(rig, "head_mot")) == 1


async def test_a_message_with_no_receipt_in_time_gives_way_to_the_next_channel(rig: Rig):
    head = await rig.person("head_mot", "thon_mot", "zalo_oa", OA_USER, phone=PHONE)
    rig.zalo.user_wrote(OA_USER)
    await rig.sweep(at(18, 8))
    await rig.drain()
    [oa_row] = await rig.rows(channel="zalo_oa")
    assert oa_row.status == OutboxStatus.sent  # accepted; Zalo has not said it arrived
    assert (await rig.rows(channel="zalo_zns")) == []
    await rig.sweep(at(18, 8, 10))  # within the 20 minutes: wait
    assert (await rig.rows(channel="zalo_zns")) == []
    await rig.sweep(at(18, 8, 21))
    await rig.drain()
    [zns_row] = await rig.rows(channel="zalo_zns")
    assert zns_row.status == OutboxStatus.delivered
    [chain] = await rig.chains(head)
    assert steps(chain) == [
        ("last_used", "zalo_oa", "sent", "not_delivered"),
        ("zns", "zalo_zns", "delivered", ""),
    ]


async def test_an_oa_receipt_marks_the_message_delivered_then_seen(rig: Rig):
    head = await rig.person("head_mot", "thon_mot", "zalo_oa", OA_USER, phone=PHONE)
    rig.zalo.user_wrote(OA_USER)
    await rig.sweep(at(18, 8))
    await rig.drain()
    [row] = await rig.rows(channel="zalo_oa")
    webhook = rig.url + "/webhook/zalo-oa"
    secret = rig.world.app.settings.zalo_oa_secret_key
    assert await rig.zalo.receipt(webhook, secret, row.platform_message_id, user_id=OA_USER) == 200
    [row] = await rig.rows(channel="zalo_oa")
    assert row.status == OutboxStatus.delivered
    assert await rig.zalo.receipt(webhook, secret, row.platform_message_id, seen=True) == 200
    assert await rig.zalo.receipt(webhook, secret, row.platform_message_id) == 200  # late, again
    [row] = await rig.rows(channel="zalo_oa")
    assert row.status == OutboxStatus.seen and row.seen_at is not None
    [chain] = await rig.chains(head)
    assert chain.status == ChainStatus.seen
    await rig.sweep(at(18, 9))  # delivered: no next step
    assert await rig.rows(channel="zalo_zns") == []
    # A receipt for a message we never sent changes nothing and is not an error.
    assert await rig.zalo.receipt(webhook, secret, "unknown-id") == 200


async def test_the_first_step_skips_a_blocked_chat_and_tries_the_other(rig: Rig):
    rig.telegram.user(1001)
    head = await rig.person("head_mot", "thon_mot", "zalo_bot", "2002")
    async with rig.db.session() as session:
        from bot.core.models import User
        from bot.core.services.people import link_identity

        user = await session.get(User, head.id)
        await link_identity(session, user, "telegram", "1001")  # used last
        await session.commit()
    rig.telegram.block(1001)
    await rig.sweep(at(18, 8))
    await rig.drain()
    await rig.sweep(at(18, 8, 1))
    await rig.drain()
    assert [(r.channel, r.status) for r in await rig.rows(user_id=head.id)] == [
        ("telegram", OutboxStatus.dead),
        ("zalo_bot", OutboxStatus.sent),
    ]
    [chain] = await rig.chains(head)
    assert steps(chain) == [
        ("last_used", "telegram", "failed", "blocked"),
        ("other_channels", "zalo_bot", "sent", ""),
    ]


async def test_a_province_can_put_zns_first(settings, db, framework):  # noqa: ANN001
    from tests.helpers.reach_rig import REACH_YAML

    rig = await start_rig(
        settings, db, framework, REACH_YAML + "order: [zns, last_used, other_channels, commune]\n"
    )
    try:
        head = await rig.person("head_mot", "thon_mot", "telegram", "1001", phone=PHONE)
        await rig.sweep(at(18, 8))
        await rig.drain()
        assert [r.channel for r in await rig.rows(user_id=head.id)] == ["zalo_zns"]
    finally:
        await rig.close()


def test_phone_numbers_are_kept_in_zalos_form():
    assert normalise_phone("0912 345 678") == "84912345678"
    assert normalise_phone("+84 912.345.678") == "84912345678"
    assert normalise_phone("84912345678") == "84912345678"
    assert normalise_phone("0258 3822 111") is None  # a landline: no Zalo, no ZNS
    assert normalise_phone("091234567") is None
    assert normalise_phone("") is None


def test_a_template_naming_an_unknown_field_stops_the_start(settings, tmp_path):  # noqa: ANN001
    broken = tmp_path / "province"
    broken.mkdir()
    (broken / "reach.yaml").write_text(
        "zns:\n  templates:\n    reminder:\n      template_id: t1\n"
        "      params: {ten: ho_ten}\norder: [zns, commune, last_used]\n",
        encoding="utf-8",
    )
    with pytest.raises(FrameworkError) as error:
        load_reach_policy(settings.model_copy(update={"framework_overrides": broken}))
    text = str(error.value)
    assert "province/reach.yaml" in text and "`ho_ten`" in text and "commune" in text


def test_an_officer_sets_and_removes_a_phone_number_from_the_cli(tmp_path, monkeypatch, capsys):  # noqa: ANN001
    from bot.app.cli import main

    monkeypatch.setenv("PAPIBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PAPIBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    units = tmp_path / "units.csv"
    units.write_text("code,name,level,parent_code\n56,Khánh Hòa,province,\n", encoding="utf-8")
    assert main(["init", "--units", str(units)]) == 0
    assert main(["users", "add", "--unit", "56", "--role", "province_committee"]) == 0
    capsys.readouterr()
    assert main(["users", "phone", "--user", "1", "--phone", "0912 345 678"]) == 0
    assert capsys.readouterr().out.strip() == "user 1: phone 0912345678"
    assert main(["users", "phone", "--user", "1", "--phone", "0258 3822 111"]) == 2
    assert "not a Vietnamese mobile number" in capsys.readouterr().err
    assert main(["users", "phone", "--user", "99", "--phone", "0912345678"]) == 2
    assert main(["users", "phone", "--user", "1", "--remove"]) == 0
    assert capsys.readouterr().out.strip().endswith("phone removed")


async def test_a_receipt_that_arrives_before_the_send_is_recorded_is_not_lost(rig: Rig):
    from bot.core.models import Outbox

    async with rig.db.session() as session:
        row = Outbox(idempotency_key="early", channel="zalo_zns", external_id="84912345678")
        row.status = OutboxStatus.sending  # Zalo answered; the sender has not written it yet
        session.add(row)
        await session.commit()
    webhook = rig.url + "/webhook/zalo-oa"
    secret = rig.world.app.settings.zalo_oa_secret_key
    assert await rig.zalo.receipt(webhook, secret, "zns-early-1") == 200
    async with rig.db.session() as session:
        stored = await session.get(Outbox, row.id)
        stored.status, stored.platform_message_id = OutboxStatus.sent, "zns-early-1"
        session.add(stored)
        await session.commit()
    await rig.channels["zalo_oa"].settle_receipts()
    [stored] = await rig.rows(idempotency_key="early")
    assert stored.status == OutboxStatus.delivered


async def test_the_commune_gets_one_message_naming_everyone_it_could_not_reach(rig: Rig):
    await officer(rig)
    await rig.person("head_mot", "thon_mot", "zalo_oa", OA_USER)
    await rig.person("head_hai", "thon_mot", "telegram", "1002")
    rig.telegram.block(rig.telegram.user(1002)["id"])
    await rig.sweep(at(18, 8))
    await rig.drain()
    report = await rig.sweep(at(18, 8, 1))
    assert report.flagged == 2
    await rig.drain()
    texts = [m.text for m in rig.telegram.sent_to(3001)]
    [notice] = [t for t in texts if t.startswith(vi_notice_start("head_"))]
    assert notice.startswith(vi_notice_start("head_hai"))
    assert vi_notice_start("head_mot") in notice and "đã chặn" in notice
