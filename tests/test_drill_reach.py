"""Reach drill: a month of reminders to village heads spread over every channel — Telegram,
Zalo Bot, Zalo OA inside and outside Zalo's window, with and without phone numbers, some blocked
or unfollowed, a ZNS number without Zalo, a ZNS daily quota too small for the busiest mornings,
OA messages Zalo never confirms. The fakes enforce the platforms' rules and inject the failures.

Every due reminder of every person must be accounted for within an hour of its time: delivered
(by its first channel, or by a fallback), or flagged to the commune by name with a reason; none
recorded as sent unless a platform accepted it. The figures are printed (bench/README.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from bot.core.i18n import translator
from bot.core.models import ACCEPTED_STATUSES, ChainStatus, Outbox, ReachChain, Reminder, User
from bot.core.timeutil import from_db
from scheduler.reach import REASON_TEXT
from tests.helpers.reach_rig import Rig, start_rig
from tests.helpers.scheduler_world import HCM

pytestmark = pytest.mark.drill

HOUR = timedelta(hours=1)
# key, village, channel, phone, what the platforms do
POPULATION = [
    ("tg_an", "thon_mot", "telegram", "", "ok"),
    ("tg_binh", "thon_hai", "telegram", "", "ok"),
    ("tg_cuong", "thon_ba", "telegram", "0912000003", "ok"),
    ("tg_dung", "thon_mot", "telegram", "0912000004", "blocked"),
    ("tg_giang", "thon_ba", "telegram", "", "blocked"),
    ("zb_ha", "thon_mot", "zalo_bot", "", "ok"),
    ("zb_khanh", "thon_ba", "zalo_bot", "0912000007", "ok"),
    ("zb_lan", "thon_hai", "zalo_bot", "", "blocked"),
    ("oa_minh", "thon_mot", "zalo_oa", "", "writes"),
    ("oa_nam", "thon_hai", "zalo_oa", "0912000010", "writes"),
    ("oa_oanh", "thon_ba", "zalo_oa", "0912000011", "writes_no_receipt"),
    ("oa_phuc", "thon_mot", "zalo_oa", "0912000012", "silent"),
    ("oa_quang", "thon_hai", "zalo_oa", "0912000013", "silent"),
    ("oa_son", "thon_ba", "zalo_oa", "", "silent"),
    ("oa_tam", "thon_mot", "zalo_oa", "0912000015", "unfollowed"),
    ("phone_uyen", "thon_hai", "", "0912000016", "ok"),
    ("phone_vinh", "thon_ba", "", "0912000017", "no_zalo"),
    ("nobody_xuan", "thon_hai", "", "", "-"),
    ("multi_yen", "thon_ba", "telegram", "", "blocked+zalo_bot"),
]
ZNS_DAILY_QUOTA = 4
# 08:xx: the reminder, a failed step's next one, the wait for a receipt, and a failed fallback.
SWEEP_MINUTES = (0, 1, 2, 21, 22)


@dataclass
class Figures:
    due: int = 0
    delivered_first: Counter = None  # type: ignore[assignment]
    delivered_fallback: Counter = None  # type: ignore[assignment]
    flagged: Counter = None  # type: ignore[assignment]
    late: int = 0
    unaccounted: int = 0

    def __post_init__(self) -> None:
        self.delivered_first, self.delivered_fallback, self.flagged = (
            Counter(),
            Counter(),
            Counter(),
        )

    def lines(self) -> list[str]:
        delivered = sum(self.delivered_first.values()) + sum(self.delivered_fallback.values())
        flagged = sum(self.flagged.values())
        on_time = self.due - self.late - self.unaccounted
        return [
            f"due person-reminders: {self.due}",
            f"delivered by the first channel: {sum(self.delivered_first.values())} "
            f"{dict(sorted(self.delivered_first.items()))}",
            f"delivered by a fallback: {sum(self.delivered_fallback.values())} "
            f"{dict(sorted(self.delivered_fallback.items()))}",
            f"flagged to the commune by name: {flagged} {dict(sorted(self.flagged.items()))}",
            f"accounted for within 1 h: {on_time}/{self.due} = {100 * on_time / self.due:.1f} %"
            f" (delivered {delivered}, flagged {flagged}, late {self.late}, "
            f"unaccounted {self.unaccounted})",
        ]


async def populate(rig: Rig) -> dict[str, User]:
    people: dict[str, User] = {}
    for number, (key, village, channel, phone, behaviour) in enumerate(POPULATION):
        address = {"telegram": str(1000 + number), "zalo_bot": f"zb{number}"}.get(
            channel, str(2468458835296117000 + number)
        )
        if channel == "telegram" and "blocked" not in behaviour:
            rig.telegram.user(int(address))
        if behaviour.startswith("blocked") and channel == "telegram":
            rig.telegram.block(int(address))
        if behaviour == "blocked" and channel == "zalo_bot":
            rig.zalo.bot_blocked.add(address)
        if behaviour == "unfollowed":
            rig.zalo.not_following.add(address)
        if behaviour == "writes_no_receipt":
            rig.zalo.undelivered.add(address)
        if behaviour == "no_zalo":
            rig.zns.no_zalo.add("84" + phone[1:])
        people[key] = await rig.person(key, village, channel, address if channel else "", phone)
        if behaviour.endswith("+zalo_bot"):
            from bot.core.services.people import link_identity

            async with rig.db.session() as session:
                user = await session.get(User, people[key].id)
                identity = await link_identity(session, user, "zalo_bot", f"zb{number}-2")
                identity.last_interaction_at = datetime.now(UTC) - timedelta(days=3)
                session.add(identity)
                await session.commit()
    for number, (key, unit) in enumerate((("officer_an", "xa_an"), ("officer_binh", "xa_binh"))):
        rig.telegram.user(3001 + number)
        await rig.world.person(key, unit, "commune_committee", "telegram", str(3001 + number))
    rig.telegram.user(4001)
    await rig.world.person("district", "district", "district_committee", "telegram", "4001")
    return people


async def run_month(rig: Rig, people: dict[str, User]) -> None:
    writers = [
        str(2468458835296117000 + n)
        for n, row in enumerate(POPULATION)
        if row[4].startswith("writes")
    ]
    day = datetime(2026, 11, 1, tzinfo=HCM)
    while day.month == 11:
        for user in writers:  # they chat with the OA every morning: their window stays open
            rig.zalo.user_wrote(user, (day + timedelta(hours=7)).astimezone(UTC))
        for minute in SWEEP_MINUTES:
            await rig.sweep(day.replace(hour=8, minute=minute))
            await rig.drain()
        day += timedelta(days=1)


async def account(rig: Rig, people: dict[str, User]) -> tuple[Figures, list[str]]:
    """The figures, and every problem found (a reminder lost, late, or recorded as sent
    without a platform accepting it; a flag that does not name the person with a reason)."""
    names = {user.id: key for key, user in people.items()}
    problems: list[str] = []
    figures = Figures()
    _ = translator("vi")
    async with rig.db.session() as session:
        reminders = list((await session.exec(select(Reminder))).all())
        chains = {c.key: c for c in (await session.exec(select(ReachChain))).all()}
        rows = {r.idempotency_key: r for r in (await session.exec(select(Outbox))).all()}
    for reminder in reminders:
        if reminder.outcome == "folded":
            continue
        due_at = from_db(reminder.created_at)
        mine = [chains[key] for key in reminder.chain_keys or []]
        for user_id in reminder.user_ids:
            if user_id not in names:
                continue  # officers' own reminders: counted by the journeys, not here
            figures.due += 1
            chain = next((c for c in mine if c.user_id == user_id), None)
            label = f"{names[user_id]} {reminder.stage}"
            if chain is None:
                figures.unaccounted += 1
                problems.append(f"{label}: no message")
                continue
            row = rows.get(chain.outbox_key)
            if chain.status in (ChainStatus.delivered, ChainStatus.seen) or (
                chain.status == ChainStatus.sent and chain.channel in ("telegram", "zalo_bot")
            ):
                when = from_db(row.sent_at)
                bucket = figures.delivered_fallback if chain.step else figures.delivered_first
                bucket[chain.channel] += 1
            elif chain.status == ChainStatus.flagged:
                when = from_db(chain.updated_at)
                figures.flagged[chain.reason] += 1
                told = [
                    rows[key]
                    for key in chain.steps[-1].get("notices", [])
                    if rows[key].status in ACCEPTED_STATUSES
                ]
                reason = _(REASON_TEXT[chain.reason])
                if not told or not all(
                    names[user_id] in r.payload["text"] and reason in r.payload["text"]
                    for r in told
                ):
                    problems.append(f"{label}: flagged but the commune was not told who and why")
            else:
                figures.unaccounted += 1
                problems.append(f"{label}: chain {chain.status} ({chain.reason})")
                continue
            if when - due_at > HOUR:
                figures.late += 1
                problems.append(f"{label}: {when - due_at} after its time")
        if reminder.outcome == "sent" and not any(
            rows[key].status in ACCEPTED_STATUSES
            for chain in mine
            for key in rows
            if rows[key].chain_key == chain.key
        ):
            problems.append(f"reminder {reminder.id}: sent, but no message of it was accepted")
    accepted_ids = (
        {m["message_id"] for m in rig.zalo.oa_sent}
        | {m["message_id"] for m in rig.zalo.bot_sent}
        | {m["msg_id"] for m in rig.zns.sent}
        | {f"{m.chat_id}:{m.message_id}" for m in rig.telegram.messages}
    )
    for row in rows.values():
        key = f"{row.external_id}:{row.platform_message_id}"
        known = row.platform_message_id in accepted_ids or key in accepted_ids
        if row.status in ACCEPTED_STATUSES and not known:
            problems.append(f"outbox {row.idempotency_key}: {row.status}, no platform has it")
    return figures, problems


async def test_a_month_of_reminders_every_one_delivered_or_flagged_within_the_hour(
    settings, db, framework
):  # noqa: ANN001
    rig = await start_rig(settings, db, framework)
    try:
        rig.zalo.clock = lambda: rig.moment.astimezone(UTC)
        rig.zalo.receipts_to = (rig.url + "/webhook/zalo-oa", settings.zalo_oa_secret_key)
        rig.zns.daily_quota = ZNS_DAILY_QUOTA
        people = await populate(rig)
        await run_month(rig, people)
        figures, problems = await account(rig, people)
        print("\nreach drill:\n  " + "\n  ".join(figures.lines()))
        assert problems == []
        assert figures.due >= 5 * len(POPULATION)  # several reminder days for everyone
        assert figures.unaccounted == 0 and figures.late == 0
        # Every way of failing was met, and every fallback used.
        assert set(figures.flagged) >= {"blocked", "outside_window", "no_channel", "quota"}
        assert set(figures.delivered_fallback) >= {"zalo_zns", "zalo_bot"}
        assert set(figures.delivered_first) >= {"telegram", "zalo_bot", "zalo_oa", "zalo_zns"}
    finally:
        await rig.close()
