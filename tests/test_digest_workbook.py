"""The district workbook as an official report: opened with openpyxl the way a clerk opens it
in Excel — title block, dates dd/mm/yyyy HH:MM, periods in words, totals, frozen headers,
filters, print setup, empty sheets that say so, and a note that looks like a formula kept as
text."""

from __future__ import annotations

from datetime import date, datetime

from openpyxl import load_workbook

from bot.core.i18n import translator
from bot.core.models import Occurrence, OccurrenceStatus, Report, User
from scheduler.commands import run_digest
from scheduler.period_words import period_in_words
from scheduler.workbook import Sheet, write_workbook
from tests.helpers.scheduler_world import (
    T1,
    T2,
    T3,
    at,
    build_scheduler_world,
    register_everyone_but_thon_ba,
)
from tests.test_digests import digest_rows, month_until, tap_followed_up

vi = translator("vi")


def test_period_codes_read_as_words():
    assert [
        period_in_words(vi, code)
        for code in ("2026-12", "2026-H2", "2026-H1", "2026-2027.1", "2026-2027", "2026-Q4", "2026")
    ] == [
        "Tháng 12/2026",
        "6 tháng cuối năm 2026",
        "6 tháng đầu năm 2026",
        "Năm học 2026–2027, học kỳ 1",
        "Năm học 2026–2027",
        "Quý 4/2026",
        "Năm 2026",
    ]
    assert period_in_words(vi, "event-17") == "event-17"


def test_a_note_that_looks_like_a_formula_is_stored_as_text(tmp_path):
    notes = ['=HYPERLINK("http://x")', "+84 905 123 456", "-", "@all"]
    path = write_workbook(
        tmp_path / "b.xlsx",
        [Sheet("Lý do", ["Lý do"], [[note] for note in notes], totals=["Tổng", len(notes)])],
    )
    sheet = load_workbook(path)["Lý do"]
    cells = [sheet.cell(row=r, column=1) for r in range(2, 6)]
    assert [c.value for c in cells] == notes
    assert all(c.data_type == "s" and c.quotePrefix for c in cells)


async def test_the_weekly_workbook_is_a_report_with_a_title_sheet(db, settings, framework):
    world = await build_scheduler_world(settings, db, framework)
    await register_everyone_but_thon_ba(world)
    await month_until(world, at(30, 8))
    await run_digest(world.app, at(30, 7, 30))
    rows = digest_rows(await world.outbox(), world.users["district"], "weekly")
    book = next(
        r for r in rows if r.idempotency_key.endswith(":xlsx") and "20261130" in r.idempotency_key
    )
    workbook = load_workbook(settings.data_dir / book.payload["document_path"])
    assert workbook.sheetnames == [
        vi("Report"),
        vi("Overdue"),
        vi("Open"),
        vi("Excused"),
        vi("Done"),
        "Xã",
        vi("Followed up"),
        "Xã Bình",
        "Xã An",
    ]
    title = workbook[vi("Report")]
    assert title["A1"].value == "UBND huyện Diên Khánh"
    block = {row[0]: row[1] for row in title.iter_rows(min_row=3, values_only=True)}
    assert block[vi("Date of issue")] == datetime(2026, 11, 30, 7, 30)
    assert block[vi("Period covered")] == "Việc đến hạn từ 30/08/2026 (3 tháng gần nhất)"
    assert (block[vi("Done")], block[vi("Overdue")], block[vi("Excused")]) == (6, 8, 0)
    assert block[vi("How it was made")]
    overdue = workbook[vi("Overdue")]
    assert overdue.freeze_panes == "A2" and overdue.auto_filter.ref == "A1:M9"
    assert overdue.page_setup.orientation == "landscape" and overdue.page_setup.fitToWidth == 1
    assert overdue.sheet_properties.pageSetUpPr.fitToPage and overdue.print_title_rows == "$1:$1"
    assert overdue.column_dimensions["C"].width > 10
    due = overdue["F2"]
    assert isinstance(due.value, datetime) and due.number_format == "dd/mm/yyyy hh:mm"
    assert overdue["E2"].value == "Tháng 11/2026"
    # No public address: the words say where the item's page is.
    assert overdue["M2"].value.startswith(vi("On the dashboard, the page {path}").split("{")[0])
    assert "/dashboard/o/" in overdue["M2"].value and overdue["M2"].hyperlink is None
    assert workbook[vi("Followed up")]["A2"].value == vi(
        "No follow-up was recorded in this period."
    )
    assert [c.value for c in overdue[10]][:2] == [vi("Total"), 8]
    assert overdue["A10"].font.bold
    done = workbook[vi("Done")]
    done_rows = list(done.iter_rows(min_row=2, max_row=done.max_row - 1, values_only=True))
    # The communes' six, and the district's own task (its unit named, not an empty "Xã").
    assert len(done_rows) == 7 and all(isinstance(r[6], datetime) for r in done_rows)
    assert ("Huyện Diên Khánh", "—") in {(r[0], r[1]) for r in done_rows}
    assert workbook[vi("Excused")]["A2"].value == vi("Nothing was excused.")
    binh = list(workbook["Xã Bình"].iter_rows(min_row=2, values_only=True))
    assert len(binh) == 6 + 1 and binh[-1][:2] == (vi("Total"), 6)


async def test_each_item_says_who_to_call_what_was_asked_and_where_its_page_is(
    db, settings, framework
):
    """Thôn Hai's head (with a phone) asked for more time and was declined, then asked to be
    excused and is still waiting; Xã Bình's own task was excused for a reason that begins with
    "="; the district called Xã Bình. All of it is in the workbook, with links to the pages."""
    world = await build_scheduler_world(settings, db, framework)
    await register_everyone_but_thon_ba(world)
    await month_until(world, at(30, 8))
    hai_t1 = await world.occurrence(T1, "thon_hai")
    hai_t2 = await world.occurrence(T2, "thon_hai")
    binh_t3 = await world.occurrence(T3, "xa_binh")
    head_hai, officer_an = world.users["head_hai"], world.users["officer_an"]
    officer_binh = world.users["officer_binh"]
    reason = "=Nước ngập, không họp dân được"
    async with world.db.session() as session:
        person = await session.get(User, head_hai.id)
        person.phone = "84905123456"
        session.add(person)
        session.add(
            Report(
                occurrence_id=hai_t1.id,
                user_id=head_hai.id,
                kind="extension",
                status="declined",
                requested_until=date(2026, 11, 27),
                submitted_at=at(20, 9),
                decided_by_user_id=officer_an.id,
                decided_at=at(21, 10),
                decision_note="Không đủ lý do",
            )
        )
        session.add(
            Report(
                occurrence_id=hai_t2.id,
                user_id=head_hai.id,
                kind="cannot",
                status="submitted",
                note="Loa hỏng",
                submitted_at=at(29, 9),
            )
        )
        excused = await session.get(Occurrence, binh_t3.id)
        excused.status = OccurrenceStatus.excused
        session.add(excused)
        session.add(
            Report(
                occurrence_id=binh_t3.id,
                user_id=officer_binh.id,
                kind="cannot",
                status="approved",
                note=reason,
                submitted_at=at(26, 9),
                decided_by_user_id=world.users["district"].id,
                decided_at=at(27, 9),
            )
        )
        await session.commit()
    await tap_followed_up(world, world.users["district"], world.units["xa_binh"], at(27, 10))
    settings.public_url = "https://papi.example.vn/"
    await run_digest(world.app, at(30, 7, 30))
    rows = digest_rows(await world.outbox(), world.users["district"], "weekly")
    book = next(
        r for r in rows if r.idempotency_key.endswith(":xlsx") and "20261130" in r.idempotency_key
    )
    workbook = load_workbook(settings.data_dir / book.payload["document_path"])
    overdue = workbook[vi("Overdue")]
    header = [c.value for c in overdue[1]]
    assert header[8:] == [
        vi("Responsible"),
        vi("Phone"),
        vi("More time asked"),
        vi("Asked to be excused"),
        vi("Details and photos"),
    ]
    by_id = {}
    for number in range(2, overdue.max_row):
        link = overdue.cell(row=number, column=13)
        by_id[int(link.value.rsplit("/", 1)[1])] = [c.value for c in overdue[number]]
        assert link.hyperlink.target == link.value
    assert by_id[hai_t1.id][8:10] == ["head_hai", "0905 123 456"]
    assert by_id[hai_t1.id][10] == vi("Asked until {until} (sent {sent}): {decision}").format(
        until="27/11/2026",
        sent="20/11/2026",
        decision=vi("declined on {day}").format(day="21/11/2026") + " (Không đủ lý do)",
    )
    assert by_id[hai_t1.id][12] == f"https://papi.example.vn/dashboard/o/{hai_t1.id}"
    # The request still waiting keeps the item overdue, its reason beside it.
    assert by_id[hai_t2.id][11] == vi("“{reason}” (sent {sent}): {decision}").format(
        reason="Loa hỏng", sent="29/11/2026", decision=vi("waiting for a decision")
    )
    thon_ba = [r for r in by_id.values() if r[1] == "Thôn Ba"]
    assert thon_ba and all(r[8:10] == [vi("Nobody registered"), "—"] for r in thon_ba)
    assert binh_t3.id not in by_id
    # The excused item, its reason (which looks like a formula) kept as the text it is.
    excused_sheet = workbook[vi("Excused")]
    assert excused_sheet["G1"].value == vi("Reason")
    assert excused_sheet["G2"].value == reason
    assert excused_sheet["G2"].data_type == "s" and excused_sheet["G2"].quotePrefix
    assert excused_sheet["K2"].value.startswith(f"“{reason}”")
    assert [c.value for c in excused_sheet[3]][:2] == [vi("Total"), 1]
    # Who called which commune, when; a totals row.
    followed = list(workbook[vi("Followed up")].iter_rows(min_row=1, values_only=True))
    assert followed == [
        ("Xã", vi("Followed up by"), vi("Phone"), vi("When")),
        ("Xã Bình", "district", "—", datetime(2026, 11, 27, 10, 0)),
        (vi("Total"), 1, None, None),
    ]
    assert workbook[vi("Followed up")].page_setup.orientation == "landscape"
