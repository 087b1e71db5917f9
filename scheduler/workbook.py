"""Digest spreadsheets (XLSX, openpyxl) fit for an official report: a title sheet (who, when,
what period, totals, how it was made), then one sheet per table with a bold frozen header row,
filters, widths, a totals row, print setup (landscape, fit to width, the header row repeated)
and, when a table is empty, a sentence saying so. Text that Excel would read as a formula
(beginning with = + - @) is stored as text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
MAX_WIDTH = 60
DATE_TIME = "dd/mm/yyyy hh:mm"
DATE = "dd/mm/yyyy"
FORMULA_STARTS = ("=", "+", "-", "@")


@dataclass(frozen=True)
class Link:
    """A cell that shows `text` and, when `url` is set, opens it (Excel's hyperlink)."""

    text: str
    url: str = ""


@dataclass
class Sheet:
    title: str  # ≤ 31 characters (Excel's limit)
    headers: list[str]
    rows: list[list[Any]]
    empty: str = ""  # the sentence shown when there are no rows
    totals: list[Any] | None = None  # a last, bold row


@dataclass
class TitleSheet:
    title: str  # the sheet's name
    heading: str  # the unit's full name, first line of the report
    lines: list[tuple[str, Any]] = field(default_factory=list)  # label, value


def _write(page: Worksheet, row: int, column: int, value: Any) -> None:
    cell = page.cell(row=row, column=column)
    if isinstance(value, datetime):
        cell.value = value.replace(tzinfo=None)  # local time, as the reader reads it
        cell.number_format = DATE_TIME
    elif isinstance(value, date):
        cell.value = value
        cell.number_format = DATE
    elif isinstance(value, Link):
        _write(page, row, column, value.text)
        if value.url:
            cell.hyperlink = value.url
            cell.font = Font(color="0563C1", underline="single")
    elif isinstance(value, str) and value.startswith(FORMULA_STARTS):
        cell.value = value
        cell.data_type = "s"  # never a formula: a note is what someone wrote
        cell.quotePrefix = True
    else:
        cell.value = value
    if isinstance(value, str) and "\n" in value:
        cell.alignment = Alignment(wrap_text=True, vertical="top")


def _width(value: Any) -> int:
    """Characters the column needs for a value: a date-time's 16, a list's longest line."""
    if isinstance(value, datetime):
        return 16
    text = value.text if isinstance(value, Link) else str(value)
    return max((len(line) for line in text.splitlines()), default=0)


def _print_setup(page: Worksheet, header_row: int | None) -> None:
    page.page_setup.orientation = "landscape"
    page.page_setup.paperSize = page.PAPERSIZE_A4
    page.page_setup.fitToWidth = 1
    page.page_setup.fitToHeight = 0
    page.sheet_properties.pageSetUpPr.fitToPage = True
    if header_row:
        page.print_title_rows = f"{header_row}:{header_row}"


def _title_sheet(book: Workbook, title: TitleSheet) -> None:
    page = book.create_sheet(title.title[:31])
    page["A1"] = title.heading
    page["A1"].font = Font(bold=True, size=14)
    for index, (label, value) in enumerate(title.lines, start=3):
        _write(page, index, 1, label)
        page.cell(row=index, column=1).font = Font(bold=True)
        _write(page, index, 2, value)
        page.cell(row=index, column=2).alignment = Alignment(wrap_text=True, horizontal="left")
    page.column_dimensions["A"].width = 28
    page.column_dimensions["B"].width = 80
    _print_setup(page, None)


def write_workbook(path: Path, sheets: list[Sheet], title: TitleSheet | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    book.remove(book.active)
    if title is not None:
        _title_sheet(book, title)
    for sheet in sheets:
        page = book.create_sheet(sheet.title[:31])
        page.append(sheet.headers)
        for cell in page[1]:
            cell.font = Font(bold=True)
            cell.fill = HEADER_FILL
        for number, row in enumerate(sheet.rows, start=2):
            for column, value in enumerate(row, start=1):
                _write(page, number, column, value)
        last = len(sheet.rows) + 1
        if sheet.rows:
            page.auto_filter.ref = f"A1:{get_column_letter(len(sheet.headers))}{last}"
        elif sheet.empty:
            page.cell(row=2, column=1, value=sheet.empty).font = Font(italic=True)
            last = 2
        if sheet.totals is not None:
            for column, value in enumerate(sheet.totals, start=1):
                _write(page, last + 1, column, value)
                page.cell(row=last + 1, column=column).font = Font(bold=True)
                page.cell(row=last + 1, column=column).fill = TOTAL_FILL
        for index, header in enumerate(sheet.headers, start=1):
            cells = [row[index - 1] for row in sheet.rows if index - 1 < len(row)]
            sizes = [_width(v) for v in cells]
            longest = max([len(str(header)), *sizes])
            page.column_dimensions[get_column_letter(index)].width = min(longest + 2, MAX_WIDTH)
        page.freeze_panes = "A2"
        _print_setup(page, 1)
    book.save(path)
    return path
