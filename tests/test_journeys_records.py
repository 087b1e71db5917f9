"""What the record says after a supervisor's journeys, on every channel (the machinery of
tests/test_journeys.py: its `driver` fixture runs each test on Telegram, Zalo Bot, Zalo OA and
the simulator, on each database).

Deadlines only move forward; "không thực hiện được" is a request the commune accepts (excused)
or rejects (still open), counted apart everywhere; the commune reviews the villages' evidence
(photos sent to it in chat) and can return it; an officer reports for a village, and the record
names both people.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta

import pytest
from openpyxl import load_workbook
from sqlmodel import col, func, select

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.i18n import translator
from bot.core.models import (
    AuditLog,
    Evidence,
    Occurrence,
    OccurrenceStatus,
    Outbox,
    OutboxStatus,
    Report,
    Unit,
)
from bot.core.timeutil import from_db
from scheduler.commands import run_evidence_digest, run_sweep
from scheduler.digests import build_district_digest, district_text, scopes
from scheduler.policy import load_policies
from tests.helpers.drivers import CHANNELS, ChannelDriver, structured_driver
from tests.helpers.rows import count
from tests.helpers.scheduler_world import bar_shares
from tests.helpers.world import structure_independent
from tests.test_journeys import OFFICER, VILLAGE_HEAD, arg, buttons, jpeg, register, task_list

vi = translator("vi")


@pytest.fixture(params=CHANNELS)
async def driver(
    request: pytest.FixtureRequest, settings: Settings, db: Database, structure: str
) -> AsyncIterator[ChannelDriver]:
    async with structured_driver(request.param, settings, db, structure) as channel_driver:
        yield channel_driver


async def occurrence(d: ChannelDriver, occurrence_id: int) -> Occurrence:
    async with d.world.db.session() as session:
        return await session.get(Occurrence, occurrence_id)


async def report_of(d: ChannelDriver, report_id: int) -> Report:
    async with d.world.db.session() as session:
        return await session.get(Report, report_id)


def due_day(d: ChannelDriver, occ: Occurrence) -> date:
    return from_db(occ.due_at).astimezone(d.world.app.settings.tz).date()


async def new_messages(d: ChannelDriver, chat: str, before: int) -> list:
    return (await d.messages(chat))[before:]


async def reports_of(d: ChannelDriver, occurrence_id: int, kind: str) -> list[Report]:
    async with d.world.db.session() as session:
        rows = await session.exec(
            select(Report)
            .where(Report.occurrence_id == occurrence_id, Report.kind == kind)
            .order_by(col(Report.id))
        )
        return list(rows.all())


async def village_counts(d: ChannelDriver, village: Unit) -> dict[str, int]:
    """Counted here from the rows, not by the service the views use."""
    since = datetime.now(UTC) - timedelta(days=92)
    async with d.world.db.session() as session:
        rows = await session.exec(
            select(Occurrence.status, func.count())
            .where(
                Occurrence.unit_id == village.id,
                col(Occurrence.due_at) >= since,
                col(Occurrence.window_start) <= datetime.now(UTC),
            )
            .group_by(Occurrence.status)
        )
        by_status = dict(rows.all())
    return {
        "done": by_status.get("done", 0),
        "excused": by_status.get("excused", 0),
        "open": by_status.get("open", 0),
        "overdue": by_status.get("overdue", 0) + by_status.get("escalated", 0),
    }


# --------------------------------------------------------------------------- (1) more time


@structure_independent
async def test_an_extension_only_moves_a_deadline_forward_and_a_decline_says_why(
    driver: ChannelDriver,
) -> None:
    d = driver
    village = d.world.villages[0]
    head = await register(d, "head", village, VILLAGE_HEAD)
    officer = await register(d, "officer", d.world.commune, OFFICER)
    listing = await task_list(d, "head")
    occurrence_id = arg(buttons(listing, "ext:")[0])
    before = await occurrence(d, occurrence_id)
    due = due_day(d, before)
    today = datetime.now(d.world.app.settings.tz).date()
    base = max(due, today)
    due_text = f"{due:%d/%m/%Y}"

    await d.tap("head", f"ext:{occurrence_id}")
    ask = (await d.messages("head"))[-1]
    assert due_text in ask.text
    assert f"{base + timedelta(days=5):%d/%m}" in ask.text  # the example is after the due date

    # A date in the past, the current due date itself, and (on channels that can send any
    # payload) a negative number of days: refused, naming the current due date; nothing
    # recorded.
    refused = ["01/01/2020", f"{due:%d/%m/%Y}", f"{due - timedelta(days=5):%d/%m/%Y}"]
    for typed in refused:
        sent = len(await d.messages("head"))
        await d.say("head", typed)
        (answer,) = await new_messages(d, "head", sent)
        assert due_text in answer.text, (typed, answer.text)
    if d.can_forge:
        sent = len(await d.messages("head"))
        await d.forge("head", f"extd:{occurrence_id}:-3")
        (answer,) = await new_messages(d, "head", sent)
        assert "01/01/2020" not in answer.text and answer.text
    too_far = base + timedelta(
        days=load_policies(d.world.app.settings).reminders.max_extension_days + 1
    )
    sent = len(await d.messages("head"))
    await d.say("head", f"{too_far:%d/%m/%Y}")
    (answer,) = await new_messages(d, "head", sent)
    assert due_text in answer.text
    assert await count(d.world.db, Report, Report.kind == "extension") == 0

    wanted = base + timedelta(days=5)
    await d.say("head", f"{wanted:%d/%m/%Y}")
    await d.say("head", "Mưa bão, chưa họp được")
    card = (await d.messages("officer"))[-1]
    # Who asks, the current due date → the requested one (+N days), and the reason.
    assert village.name in card.text and "Mưa bão, chưa họp được" in card.text
    assert due_text in card.text and f"{wanted:%d/%m/%Y}" in card.text
    assert f"{(wanted - due).days}" in card.text
    report_id = arg(buttons([card], "decl:")[0])

    await d.tap("officer", f"decl:{report_id}")
    asked = (await d.messages("officer"))[-1]
    assert buttons([asked], "decn:") == [f"decn:{report_id}"]  # a way out without a reason
    told = len(await d.messages("head"))
    await d.say("officer", "Việc này đã gia hạn một lần rồi")

    report = await report_of(d, report_id)
    assert (report.status, report.decided_by_user_id, report.user_id) == (
        "declined",
        officer.id,
        head.id,
    )
    assert report.decision_note == "Việc này đã gia hạn một lần rồi"
    assert report.requested_until == wanted
    after = await occurrence(d, occurrence_id)
    assert after.due_at == before.due_at
    (decision,) = await new_messages(d, "head", told)
    assert "Việc này đã gia hạn một lần rồi" in decision.text and due_text in decision.text
    overdue_words = vi(
        "That date has passed: the task is now overdue. Please do it and report it soon."
    )
    assert (overdue_words in decision.text) == (due < today or after.status != "open")
    assert await count(d.world.db, AuditLog, AuditLog.action == "extension.declined") == 1

    # Asked again (+3 days from the buttons), declined without a reason: still told the date.
    assert f"ext:{occurrence_id}" in buttons(await task_list(d, "head"), "ext:")
    await d.tap("head", f"ext:{occurrence_id}")
    await d.tap("head", f"extd:{occurrence_id}:3")
    await d.say("head", "Xin thêm ít ngày")
    card = (await d.messages("officer"))[-1]
    again_id = arg(buttons([card], "decl:")[0])
    await d.tap("officer", f"decl:{again_id}")
    told = len(await d.messages("head"))
    await d.tap("officer", f"decn:{again_id}")
    again = await report_of(d, again_id)
    assert (again.status, again.decision_note, again.requested_until) == (
        "declined",
        "",
        base + timedelta(days=3),
    )
    (decision,) = await new_messages(d, "head", told)
    assert due_text in decision.text
    assert (await occurrence(d, occurrence_id)).due_at == before.due_at


# --------------------------------------------------------------------------- (2) cannot do


async def test_cannot_do_accepted_is_excused_rejected_stays_open_and_counted_apart(
    driver: ChannelDriver,
) -> None:
    d = driver
    village = d.world.villages[0]
    head = await register(d, "head", village, VILLAGE_HEAD)
    officer = await register(d, "officer", d.world.commune, OFFICER)
    district = await register(d, "district", d.world.supervisor, d.world.supervisor_role)
    cards = buttons(await task_list(d, "head"), "cant:")
    first, second = arg(cards[0]), arg(cards[1])
    statuses = {first: (await occurrence(d, first)).status}
    statuses[second] = (await occurrence(d, second)).status

    await d.tap("head", f"cant:{first}")
    await d.say("head", "Thôn chưa có nhà văn hóa")
    # A request, not an outcome: the task is still open (or overdue) until the commune decides.
    assert (await occurrence(d, first)).status == statuses[first]
    card = (await d.messages("officer"))[-1]
    assert "Thôn chưa có nhà văn hóa" in card.text and village.name in card.text
    (request,) = await reports_of(d, first, "cannot")
    assert buttons([card], "cnok:") == [f"cnok:{request.id}"]
    assert buttons([card], "cnno:") == [f"cnno:{request.id}"]
    told = len(await d.messages("head"))
    await d.tap("officer", f"cnok:{request.id}")

    accepted = await occurrence(d, first)
    assert (accepted.status, accepted.note) == ("excused", "Thôn chưa có nhà văn hóa")
    assert (accepted.done_at, accepted.done_by_user_id) == (None, None)
    request = await report_of(d, request.id)
    assert (request.status, request.user_id, request.decided_by_user_id) == (
        "approved",
        head.id,
        officer.id,
    )
    assert len(await new_messages(d, "head", told)) == 1
    # The answered card still says whose request it was and why (it replaces the request card
    # where the channel can edit).
    decided = (await d.messages("officer"))[-1]
    assert "Đã chấp nhận" in decided.text and "Thôn chưa có nhà văn hóa" in decided.text
    assert village.name in decided.text and head.name in decided.text

    await d.tap("head", f"cant:{second}")
    await d.say("head", "Bận quá")
    (second_request,) = await reports_of(d, second, "cannot")
    await d.tap("officer", f"cnno:{second_request.id}")
    told = len(await d.messages("head"))
    await d.say("officer", "Việc này thôn nào cũng làm được, đề nghị thực hiện")
    rejected = await occurrence(d, second)
    assert rejected.status == statuses[second]
    second_request = await report_of(d, second_request.id)
    assert (second_request.status, second_request.decision_note) == (
        "declined",
        "Việc này thôn nào cũng làm được, đề nghị thực hiện",
    )
    (why,) = await new_messages(d, "head", told)
    assert "Việc này thôn nào cũng làm được" in why.text
    decided = (await d.messages("officer"))[-1]
    assert "Đã không chấp nhận" in decided.text and "Lý do đề nghị: Bận quá" in decided.text
    assert f"done:{second}" in why.buttons  # a way forward: report it after all
    # A decided request cannot be decided again (a stale or forged tap).
    if d.can_forge:
        await d.forge("officer", f"cnno:{second_request.id}")
        await d.forge("officer", f"cnok:{second_request.id}")
        assert (await occurrence(d, second)).status == statuses[second]
        assert (await report_of(d, second_request.id)).status == "declined"

    # /tinhhinh: the village's line shows done, excused, open and overdue apart.
    counts = await village_counts(d, village)
    assert counts["excused"] == 1
    line = vi("{done} done · {excused} excused · {open} open · {overdue} overdue").format(**counts)
    sent = len(await d.messages("officer"))
    await d.say("officer", "/tinhhinh")
    (overview,) = await new_messages(d, "officer", sent)
    assert f"{village.name}: {line}" in overview.text

    # /baocao: the commune's line, counted with everything below it.
    totals = {"done": 0, "excused": 0, "open": 0, "overdue": 0}
    for unit in [d.world.commune, *d.world.villages]:
        for key, value in (await village_counts(d, unit)).items():
            totals[key] += value
    district_line = vi("{done} done · {excused} excused · {open} open · {overdue} overdue")
    sent = len(await d.messages("district"))
    await d.say("district", "/baocao")
    (report,) = await new_messages(d, "district", sent)
    assert f"{d.world.commune.name}: {district_line.format(**totals)}" in report.text

    # The district digest: its text, chart and workbook show the excused item apart.
    app = d.world.app
    policies = load_policies(app.settings)
    now = datetime.now(UTC)
    async with d.world.db.session() as session:
        (scope,) = await scopes(session, app, policies)
        assert district.id in [user.id for user in scope.recipients]
        digest = await build_district_digest(session, app, policies, scope, "weekly", now, "vi")
    text = district_text(policies, digest, "weekly", "vi", now.date(), [], [])
    assert (
        vi("✅ Done {done} · 🟦 Excused {excused} · 🔴 Overdue {overdue}").format(
            done=totals["done"], excused=totals["excused"], overdue=totals["overdue"]
        )
        in text
    )
    (shares,) = bar_shares(app.settings.data_dir / digest.chart_path)
    whole = sum(totals.values())
    assert abs(shares["excused"] - totals["excused"] / whole) < 0.02
    assert abs(shares["overdue"] - totals["overdue"] / whole) < 0.02
    book = load_workbook(app.settings.data_dir / digest.workbook_path)
    communes = book["Phường"]  # the sheet is named for the communes it holds: here one phường
    assert list(communes.iter_rows(min_row=2, values_only=True))[0][:5] == (
        d.world.commune.name,
        totals["done"],
        totals["excused"],
        totals["open"],
        totals["overdue"],
    )
    sheet = book[vi("Excused")]
    excused_rows = list(sheet.iter_rows(min_row=2, max_row=sheet.max_row - 1, values_only=True))
    reason = [cell.value for cell in sheet[1]].index(vi("Reason"))
    assert [(row[1], row[reason]) for row in excused_rows] == [
        (village.name, "Thôn chưa có nhà văn hóa")
    ]


# --------------------------------------------------------------------------- (3) evidence


def evidence_moment(tz) -> datetime:  # noqa: ANN001
    """The next moment at or after now when the evidence digest may go out (16:30–21:00)."""
    now = datetime.now(tz) + timedelta(minutes=1)
    opens = datetime.combine(now.date(), time(16, 31), tzinfo=tz)
    if now < opens:
        return opens
    if now.time() < time(20, 55):
        return now
    return opens + timedelta(days=1)


async def test_the_commune_reviews_the_villages_evidence_and_returns_a_report(
    driver: ChannelDriver,
) -> None:
    d = driver
    village = d.world.villages[0]
    head = await register(d, "head", village, VILLAGE_HEAD)
    officer = await register(d, "officer", d.world.commune, OFFICER)
    cards = buttons(await task_list(d, "head"), "done:")
    returned_id = arg(cards[0])

    await d.tap("head", f"done:{returned_id}")
    report_id = arg(buttons(await d.messages("head"), "next:")[-1])
    for colour in ((200, 30, 30), (30, 30, 200)):
        await d.photo("head", jpeg(colour))
    await d.tap("head", f"next:{report_id}")
    await d.say("head", "Đã niêm yết tại nhà văn hóa")
    await d.tap("head", f"send:{report_id}")
    await d.say("head", "da xong")
    quick = buttons([(await d.messages("head"))[-1]], "qdone:")
    await d.tap("head", quick[0])
    quick_id = arg(quick[0])
    (quick_report,) = [r for r in await reports_of(d, quick_id, "done") if r.status == "submitted"]

    # Once a day, one message to the officer with what came in, each report a button.
    moment = evidence_moment(d.world.app.settings.tz)
    sent = len(await d.messages("officer"))
    result = await run_evidence_digest(d.world.app, moment)
    await d.flush()
    assert (result.sent, result.reports) == (1, 2)
    (digest,) = await new_messages(d, "officer", sent)
    assert sorted(buttons([digest], "rv:")) == sorted([f"rv:{report_id}", f"rv:{quick_report.id}"])
    again = await run_evidence_digest(d.world.app, moment + timedelta(minutes=5))
    assert again.sent == 0  # once a day
    quiet = await run_evidence_digest(
        d.world.app, datetime.combine(moment.date(), time(22, 0), tzinfo=moment.tzinfo)
    )
    assert (quiet.sent, quiet.reason) == (0, "quiet hours")

    # Opened: the note, who, and both photos sent to the officer as photos.
    sent = len(await d.messages("officer"))
    await d.tap("officer", f"rv:{report_id}")
    opened = await new_messages(d, "officer", sent)
    assert "Đã niêm yết tại nhà văn hóa" in opened[0].text
    assert buttons(opened, "rvr:") == [f"rvr:{report_id}"]
    async with d.world.db.session() as session:
        paths = set(
            (await session.exec(select(Evidence.path).where(Evidence.report_id == report_id))).all()
        )
        photos = (
            await session.exec(
                select(Outbox).where(
                    Outbox.external_id == d.external_id("officer"),
                    Outbox.status == OutboxStatus.sent,
                )
            )
        ).all()
    assert len(paths) == 2
    assert {row.payload.get("photo_path") for row in photos} >= paths
    assert len(opened) == 3

    await d.tap("officer", f"rvr:{report_id}")
    told = len(await d.messages("head"))
    await d.say("officer", "Ảnh mờ, đề nghị chụp lại bảng niêm yết")
    report = await report_of(d, report_id)
    assert (report.review_status, report.reviewed_by_user_id, report.review_note) == (
        "returned",
        officer.id,
        "Ảnh mờ, đề nghị chụp lại bảng niêm yết",
    )
    reopened = await occurrence(d, returned_id)
    assert reopened.status in (OccurrenceStatus.open, OccurrenceStatus.overdue)
    assert (reopened.done_at, reopened.done_by_user_id) == (None, None)
    (notice,) = await new_messages(d, "head", told)
    assert "Ảnh mờ" in notice.text and f"done:{returned_id}" in notice.buttons

    # The other one, opened from /tinhhinh → the village, and accepted.
    await d.say("officer", "/tinhhinh")
    await d.tap("officer", f"vil:{village.id}")
    assert f"rv:{quick_report.id}" in (await d.messages("officer"))[-1].buttons
    await d.tap("officer", f"rv:{quick_report.id}")
    await d.tap("officer", f"rva:{quick_report.id}")
    accepted = await report_of(d, quick_report.id)
    assert (accepted.review_status, accepted.reviewed_by_user_id) == ("accepted", officer.id)
    assert (await occurrence(d, quick_id)).status == "done"
    # The district sees the same report and its photos (its drill-down from /baocao lands on
    # the village's tasks), but reviewing is the commune's.
    if d.can_forge:
        await register(d, "district", d.world.supervisor, d.world.supervisor_role)
        await d.forge("district", f"vil:{village.id}")
        assert f"rv:{quick_report.id}" in (await d.messages("district"))[-1].buttons
        sent = len(await d.messages("district"))
        await d.forge("district", f"rv:{report_id}")
        shown = await new_messages(d, "district", sent)
        assert len(shown) == 3 and not buttons(shown, "rva:")
        async with d.world.db.session() as session:
            to_district = (
                await session.exec(
                    select(Outbox).where(Outbox.external_id == d.external_id("district"))
                )
            ).all()
        assert {row.payload.get("photo_path") for row in to_district} >= paths
    # The village head cannot review their own report.
    if d.can_forge:
        await d.forge("head", f"rva:{report_id}")
        assert (await report_of(d, report_id)).review_status == "returned"
        refused = (AuditLog.actor_user_id == head.id, AuditLog.action == "forbidden")
        assert await count(d.world.db, AuditLog, *refused) == 1


# --------------------------------------------------------------------------- (4) on behalf


@structure_independent
async def test_a_commune_officer_reports_on_a_villages_behalf(driver: ChannelDriver) -> None:
    d = driver
    village = d.world.villages[0]
    head = await register(d, "head", village, VILLAGE_HEAD)
    officer = await register(d, "officer", d.world.commune, OFFICER)

    await d.say("officer", "/tinhhinh")
    await d.tap("officer", f"vil:{village.id}")
    detail = (await d.messages("officer"))[-1]
    behalf = buttons([detail], "obh:")
    assert len(behalf) >= 2
    done_id, cannot_id = arg(behalf[0]), arg(behalf[1])

    await d.tap("officer", f"obh:{done_id}")
    await d.tap("officer", f"done:{done_id}")
    report_id = arg(buttons(await d.messages("officer"), "next:")[-1])
    await d.photo("officer", jpeg((20, 160, 60)))
    await d.tap("officer", f"next:{report_id}")
    await d.tap("officer", f"skip:{report_id}")
    await d.tap("officer", f"send:{report_id}")

    report = await report_of(d, report_id)
    done = await occurrence(d, done_id)
    assert (report.status, report.user_id, report.on_behalf_of_user_id) == (
        "submitted",
        officer.id,
        head.id,
    )
    assert (done.status, done.done_by_user_id, done.unit_id) == ("done", officer.id, village.id)
    assert await count(d.world.db, Evidence, Evidence.report_id == report_id) == 1
    assert await count(d.world.db, AuditLog, AuditLog.action == "report.on_behalf") == 1

    # Cannot do, on the village's behalf: the officer is the level that decides it.
    await d.tap("officer", f"vil:{village.id}")  # the button under "recorded"
    assert f"obh:{cannot_id}" in (await d.messages("officer"))[-1].buttons
    await d.tap("officer", f"obh:{cannot_id}")
    await d.tap("officer", f"cant:{cannot_id}")
    await d.say("officer", "Thôn đang sáp nhập")
    (excuse,) = await reports_of(d, cannot_id, "cannot")
    assert (excuse.user_id, excuse.on_behalf_of_user_id, excuse.decided_by_user_id) == (
        officer.id,
        head.id,
        officer.id,
    )
    assert (await occurrence(d, cannot_id)).status == "excused"

    # The escalation of a village's late task carries a "báo cáo thay" button.
    tz = d.world.app.settings.tz
    morning = datetime.combine(datetime.now(tz).date(), time(10, 0), tzinfo=tz)
    sent = len(await d.messages("officer"))
    await run_sweep(d.world.app, morning)
    await d.flush()
    escalated = buttons(await new_messages(d, "officer", sent), "obh:")
    assert escalated, "the commune was told of late village tasks with buttons to report them"
    late = await occurrence(d, arg(escalated[0]))
    assert late.unit_id in [v.id for v in d.world.villages]
    assert late.status in (OccurrenceStatus.overdue, OccurrenceStatus.escalated)
