"""The district workbook as an official report: opened with openpyxl the way a clerk opens it
in Excel — title block, dates dd/mm/yyyy HH:MM, periods in words, totals, frozen headers,
filters, print setup, empty sheets that say so, and a note that looks like a formula kept as
text."""

from __future__ import annotations

from datetime import datetime

from openpyxl import load_workbook

from bot.core.i18n import translator
from scheduler.commands import run_digest
from scheduler.period_words import period_in_words
from scheduler.workbook import Sheet, write_workbook
from tests.helpers.scheduler_world import at, build_scheduler_world, register_everyone_but_thon_ba
from tests.test_digests import digest_rows, month_until

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
    assert overdue.freeze_panes == "A2" and overdue.auto_filter.ref == "A1:H9"
    assert overdue.page_setup.orientation == "landscape" and overdue.page_setup.fitToWidth == 1
    assert overdue.sheet_properties.pageSetUpPr.fitToPage and overdue.print_title_rows == "$1:$1"
    assert overdue.column_dimensions["C"].width > 10
    due = overdue["F2"]
    assert isinstance(due.value, datetime) and due.number_format == "dd/mm/yyyy hh:mm"
    assert overdue["E2"].value == "Tháng 11/2026"
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
