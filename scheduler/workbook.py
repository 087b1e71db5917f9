"""Digest spreadsheets (XLSX, openpyxl): one sheet per table, a header row, filters on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
MAX_WIDTH = 60


@dataclass
class Sheet:
    title: str  # ≤ 31 characters (Excel's limit)
    headers: list[str]
    rows: list[list[Any]]


def write_workbook(path: Path, sheets: list[Sheet]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    book.remove(book.active)
    for sheet in sheets:
        page = book.create_sheet(sheet.title[:31])
        page.append(sheet.headers)
        for cell in page[1]:
            cell.font = Font(bold=True)
            cell.fill = HEADER_FILL
        for row in sheet.rows:
            page.append(row)
        for index, header in enumerate(sheet.headers, start=1):
            longest = max([len(str(header))] + [len(str(row[index - 1])) for row in sheet.rows])
            page.column_dimensions[get_column_letter(index)].width = min(longest + 2, MAX_WIDTH)
        page.freeze_panes = "A2"
        if sheet.rows:
            page.auto_filter.ref = page.dimensions
    book.save(path)
    return path
