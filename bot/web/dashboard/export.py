"""Every list as XLSX (a title block, dd/mm/yyyy dates, a totals row) and as CSV (UTF-8 with a
byte-order mark, so Excel opens Vietnamese correctly)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from bot.core.services.people import audit
from bot.core.services.status import outcome_of
from bot.core.timeutil import from_db
from bot.web.dashboard import queries
from bot.web.dashboard.visit import OutOfScope, Visit, int_arg, resource

HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
DATE_FORMAT = "dd/mm/yyyy"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_ROWS = 200_000


@dataclass
class Table:
    title: str
    subtitle: list[str]
    headers: list[str]
    rows: list[list[Any]]
    totals: list[Any]


def xlsx_bytes(table: Table) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = table.title[:31]
    sheet.append([table.title])
    sheet["A1"].font = Font(bold=True, size=14)
    for line in table.subtitle:
        sheet.append([line])
    sheet.append([])
    header_row = sheet.max_row + 1
    sheet.append(table.headers)
    for cell in sheet[header_row]:
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
    date_columns = {
        index
        for row in table.rows[:50]
        for index, value in enumerate(row, 1)
        if isinstance(value, date)
    }
    for row in table.rows:
        sheet.append(row)
    last_row = header_row + len(table.rows)
    for column in date_columns:
        for (cell,) in sheet.iter_rows(
            min_row=header_row + 1, max_row=last_row, min_col=column, max_col=column
        ):
            cell.number_format = DATE_FORMAT
    sheet.append(table.totals)
    for cell in sheet[last_row + 1]:
        cell.font = Font(bold=True)
    for index, header in enumerate(table.headers, start=1):
        values = [len(str(header))] + [len(_text(row[index - 1])) for row in table.rows[:2000]]
        sheet.column_dimensions[get_column_letter(index)].width = min(max(values) + 2, 60)
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=1)
    if table.rows:
        last = get_column_letter(len(table.headers))
        sheet.auto_filter.ref = f"A{header_row}:{last}{header_row + len(table.rows)}"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _text(value: Any) -> str:
    return value.strftime("%d/%m/%Y") if isinstance(value, date) else str(value)


def csv_bytes(table: Table) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.headers)
    for row in table.rows:
        writer.writerow([_text(value) if value is not None else "" for value in row])
    writer.writerow([_text(value) for value in table.totals])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _status_labels(visit: Visit) -> dict[str, str]:
    _ = visit._
    return {"done": _("done"), "excused": _("excused"), "overdue": _("overdue"), "open": _("open")}


def _local(value, visit: Visit) -> date | None:  # noqa: ANN001
    if value is None:
        return None
    return from_db(value).astimezone(visit.ctx.settings.tz).date()


async def _occurrence_table(visit: Visit, unit, title: str, rows) -> Table:  # noqa: ANN001
    _ = visit._
    labels = _status_labels(visit)
    framework = visit.ctx.framework
    body = []
    for occurrence, task, place in rows:
        dimension = framework.dimensions.get(task.dimension)
        body.append(
            [
                place.name,
                task.title,
                dimension.short if dimension else task.dimension,
                occurrence.period,
                _local(occurrence.due_at, visit),
                labels[outcome_of(occurrence.status)],
                _local(occurrence.done_at, visit),
            ]
        )
    return Table(
        title=title,
        subtitle=[unit.name, _("Exported on {day}").format(day=visit.today.strftime("%d/%m/%Y"))],
        headers=[
            _("Unit"),
            _("Task"),
            _("Dimension"),
            _("Period"),
            _("Due"),
            _("Status"),
            _("Done on"),
        ],
        rows=body,
        totals=[_("Total: {count}").format(count=len(body))],
    )


async def _people_table(visit: Visit, unit) -> Table:  # noqa: ANN001
    _ = visit._
    people = await queries.people(visit, unit)
    body = [
        [
            person.unit.name,
            person.user.name,
            visit.role_name(person.user.role),
            ", ".join(i.channel for i in person.identities),
            person.reachable.channel if person.reachable else _(person.why_unreachable),
        ]
        for person in people
    ]
    unreachable = sum(1 for person in people if person.reachable is None)
    return Table(
        title=_("People"),
        subtitle=[unit.name, _("Exported on {day}").format(day=visit.today.strftime("%d/%m/%Y"))],
        headers=[_("Unit"), _("Name"), _("Role"), _("Chats"), _("Reached on")],
        rows=body,
        totals=[
            _("Total: {count}").format(count=len(body)),
            "",
            "",
            "",
            _("Unreachable: {count}").format(count=unreachable),
        ],
    )


@resource
async def export(request: web.Request, visit: Visit) -> web.StreamResponse:
    unit = visit.unit(int_arg(request.match_info["unit_id"]))
    what, fmt = request.match_info["what"], request.match_info["fmt"]
    _ = visit._
    if what == "tasks":
        filters = queries.Filters.from_query(request, visit)
        rows, _total = await queries.occurrences(visit, unit, filters, limit=MAX_ROWS)
        table = await _occurrence_table(visit, unit, _("Tasks"), rows)
    elif what == "overdue":
        rows, _counts = await queries.overdue(visit, unit, limit=MAX_ROWS)
        table = await _occurrence_table(visit, unit, _("Overdue"), rows)
    elif what == "people":
        table = await _people_table(visit, unit)
    else:
        raise OutOfScope
    await audit(visit.session, "web.export", f"unit:{unit.id}", visit.user, what=what, fmt=fmt)
    name = f"papi-{what}-{unit.code}-{visit.today:%Y%m%d}.{fmt}"
    body, mime = (
        (xlsx_bytes(table), XLSX)
        if fmt == "xlsx"
        else (csv_bytes(table), "text/csv; charset=utf-8")
    )
    return web.Response(
        body=body,
        headers={
            "Content-Type": mime,
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
