"""The administrative tree (province › district › commune › village, plus agencies).

Units are keyed by `code` (the GSO code for real divisions) so that imports can be re-run:
users, invites and occurrences point at unit ids, so a unit is updated in place, never
replaced, and units missing from a later import are left alone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.db import Database
from bot.core.models import Level, Unit

REQUIRED_COLUMNS = ("code", "name", "level", "parent_code")
OPTIONAL_COLUMNS = ("sample",)
LEVEL_ORDER = {level.value: rank for rank, level in enumerate(Level)}
CODE_MAX = 64
NAME_MAX = 200


class UnitImportError(ValueError):
    """A bad input row; raised before anything is written."""


class UnknownUnitError(LookupError):
    """A unit code that is not in the database."""


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}"


@dataclass(frozen=True)
class UnitRow:
    """One unit as an import wants it; `where` locates it in the source for error messages."""

    code: str
    name: str
    level: str
    parent_code: str
    is_sample: bool
    where: str


# --- reading and validating a CSV (no database) ---------------------------------------------


def _check_header(header: list[str] | None, source: str) -> list[str]:
    columns = [name.strip() for name in header or []]
    if tuple(columns[:4]) != REQUIRED_COLUMNS or any(
        name not in OPTIONAL_COLUMNS for name in columns[4:]
    ):
        expected = ",".join(REQUIRED_COLUMNS) + "[,sample]"
        raise UnitImportError(f"{source}:1: header must be `{expected}`, got `{','.join(columns)}`")
    return columns


def _parse_sample(value: str, where: str) -> bool:
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    raise UnitImportError(f"{where}: field `sample`: expected 1, 0 or empty, got `{value}`")


def _parse_row(values: list[str], columns: list[str], where: str) -> UnitRow:
    if len(values) < len(columns):
        raise UnitImportError(
            f"{where}: field `{columns[len(values)]}`: missing "
            f"(expected {len(columns)} columns {','.join(columns)}, got {len(values)})"
        )
    if len(values) > len(columns):
        raise UnitImportError(
            f"{where}: field `{columns[-1]}`: followed by {len(values) - len(columns)} extra "
            f"column(s) (expected {len(columns)} columns {','.join(columns)})"
        )
    fields = dict(zip(columns, (value.strip() for value in values), strict=True))
    for name in ("code", "name"):
        if not fields[name]:
            raise UnitImportError(f"{where}: field `{name}`: must not be empty")
    if len(fields["code"]) > CODE_MAX:
        raise UnitImportError(f"{where}: field `code`: longer than {CODE_MAX} characters")
    if len(fields["name"]) > NAME_MAX:
        raise UnitImportError(f"{where}: field `name`: longer than {NAME_MAX} characters")
    if fields["level"] not in LEVEL_ORDER:
        raise UnitImportError(
            f"{where}: field `level`: unknown level `{fields['level']}` "
            f"(expected one of {', '.join(LEVEL_ORDER)})"
        )
    if fields["parent_code"] == fields["code"]:
        raise UnitImportError(f"{where}: field `parent_code`: a unit cannot be its own parent")
    return UnitRow(
        code=fields["code"],
        name=fields["name"],
        level=fields["level"],
        parent_code=fields["parent_code"],
        is_sample=_parse_sample(fields.get("sample", ""), where),
        where=where,
    )


def read_units_csv(path: Path) -> list[UnitRow]:
    """Parse and check every row, so a bad line is reported before the database is touched."""
    source = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UnitImportError(f"{source}: cannot read: {error}") from error
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = _check_header(next(reader, None), source)
    rows: list[UnitRow] = []
    seen: dict[str, str] = {}
    for values in reader:
        if not any(value.strip() for value in values):
            continue  # blank line
        row = _parse_row(values, columns, f"{source}:{reader.line_num}")
        if row.code in seen:
            raise UnitImportError(
                f"{row.where}: field `code`: `{row.code}` already used at {seen[row.code]}"
            )
        seen[row.code] = row.where
        rows.append(row)
    return rows


# --- writing rows (one transaction) ----------------------------------------------------------


def _check_parents(rows: list[UnitRow], existing: dict[str, Unit]) -> None:
    """Every parent must exist in the rows or the database, and parents must not loop."""
    wanted = {row.code: row.parent_code for row in rows}
    by_id = {unit.id: unit.code for unit in existing.values()}
    parent_of = {code: by_id.get(unit.parent_id, "") for code, unit in existing.items()}
    parent_of.update(wanted)
    for row in rows:
        if row.parent_code and row.parent_code not in parent_of:
            raise UnitImportError(
                f"{row.where}: field `parent_code`: unknown unit `{row.parent_code}` "
                "(neither in the file nor in the database)"
            )
        seen = {row.code}
        code = row.parent_code
        while code:
            if code in seen:
                raise UnitImportError(
                    f"{row.where}: field `parent_code`: `{row.parent_code}` makes a cycle"
                )
            seen.add(code)
            code = parent_of.get(code, "")


def _differences(unit: Unit, row: UnitRow, parent_id: int | None, codes: dict[int, str]) -> str:
    wanted = {"name": row.name, "level": row.level, "is_sample": row.is_sample}
    parts = [
        f"{name} {getattr(unit, name)!r} → {value!r}"
        for name, value in wanted.items()
        if getattr(unit, name) != value
    ]
    if unit.parent_id != parent_id:
        old = codes.get(unit.parent_id, "") if unit.parent_id else ""
        parts.append(f"parent {old or '-'} → {row.parent_code or '-'}")
    return ", ".join(parts)


async def upsert_units(session: AsyncSession, rows: list[UnitRow]) -> ImportReport:
    """Create or update `rows` by code; validates parents first. The caller commits."""
    existing = {unit.code: unit for unit in (await session.exec(select(Unit))).all()}
    _check_parents(rows, existing)
    report = ImportReport()
    new_codes = {row.code for row in rows if row.code not in existing}
    for row in rows:
        if row.code in new_codes:
            unit = Unit(code=row.code, name=row.name, level=row.level, is_sample=row.is_sample)
            session.add(unit)
            existing[row.code] = unit
    await session.flush()  # ids for the new units, so children can point at them
    codes = {unit.id: code for code, unit in existing.items() if unit.id is not None}
    for row in rows:
        unit = existing[row.code]
        parent_id = existing[row.parent_code].id if row.parent_code else None
        if row.code in new_codes:
            report.created += 1
            report.changes.append(f"created {row.code} {row.name}")
        elif difference := _differences(unit, row, parent_id, codes):
            report.updated += 1
            report.changes.append(f"updated {row.code}: {difference}")
        else:
            report.unchanged += 1
            continue
        unit.name, unit.level, unit.is_sample = row.name, row.level, row.is_sample
        unit.parent_id = parent_id
        session.add(unit)
    await session.flush()
    return report


async def _import_rows(db: Database, rows: list[UnitRow]) -> ImportReport:
    """One transaction: on any error the session closes uncommitted and nothing is kept."""
    async with db.session() as session:
        report = await upsert_units(session, rows)
        await session.commit()
    return report


async def import_units_csv(db: Database, path: Path) -> ImportReport:
    """Import a `code,name,level,parent_code[,sample]` file; all or nothing."""
    return await _import_rows(db, read_units_csv(path))


# --- the current (2025) structure from the vietnam-provinces package -------------------------


def _province_full_name(name: str) -> str:
    """The 2025 package drops "Tỉnh"; keep the formal name so the province row stays stable."""
    return name if name.startswith(("Tỉnh ", "Thành phố ")) else f"Tỉnh {name}"


def vietnam_provinces_rows(province_code: int) -> list[UnitRow]:
    """Province › communes as in force since 1 July 2025 (no district level any more)."""
    # Imported here: its lookup tables are large and only this command needs them.
    from vietnam_provinces import Province, ProvinceCode, Ward

    source = f"vietnam-provinces province {province_code}"
    try:
        province = Province.from_code(ProvinceCode(province_code))
    except ValueError as error:
        raise UnitImportError(f"{source}: unknown province code") from error
    parent = str(int(province.code))
    rows = [
        UnitRow(parent, _province_full_name(province.name), Level.province.value, "", False, source)
    ]
    wards = sorted(Ward.iter_by_province(province.code), key=lambda ward: int(ward.code))
    rows += [
        UnitRow(str(int(ward.code)), ward.name, Level.commune.value, parent, False, source)
        for ward in wards
    ]
    return rows


async def import_vietnam_provinces(db: Database, province_code: int) -> ImportReport:
    """Import one province's 2025 communes under the province; all or nothing.

    Codes are GSO codes, and the 2025 reform reused some old commune codes for new, merged
    communes: on a database holding the 2022 structure those units are renamed and moved
    under the province (listed in the report's changes).
    """
    return await _import_rows(db, vietnam_provinces_rows(province_code))


# --- queries ---------------------------------------------------------------------------------


def _tree_order(units: Iterable[Unit]) -> list[Unit]:
    """Province first, then by level; numeric GSO codes in numeric order."""
    return sorted(units, key=lambda u: (LEVEL_ORDER.get(u.level, 99), len(u.code), u.code))


async def unit_by_code(session: AsyncSession, code: str) -> Unit | None:
    return (await session.exec(select(Unit).where(Unit.code == code))).first()


async def children(session: AsyncSession, unit_id: int, level: str | None = None) -> list[Unit]:
    """Direct children, optionally of one level (e.g. the communes of a district)."""
    statement = select(Unit).where(Unit.parent_id == unit_id)
    if level is not None:
        statement = statement.where(Unit.level == level)
    return _tree_order((await session.exec(statement)).all())


async def ancestors(session: AsyncSession, unit: Unit) -> list[Unit]:
    """Parent, grandparent, … up to the root (who supervises whom)."""
    chain: list[Unit] = []
    seen = {unit.id}
    parent_id = unit.parent_id
    while parent_id is not None and parent_id not in seen:
        parent = await session.get(Unit, parent_id)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent_id)
        parent_id = parent.parent_id
    return chain


async def descendants_ids(session: AsyncSession, unit_id: int) -> list[int]:
    """Ids of every unit below `unit_id` (not itself), for "everything under my unit" queries."""
    found: list[int] = []
    seen = {unit_id}
    frontier = [unit_id]
    while frontier:
        statement = select(Unit.id).where(col(Unit.parent_id).in_(frontier))
        frontier = [i for i in (await session.exec(statement)).all() if i not in seen]
        seen.update(frontier)
        found.extend(frontier)
    return found


async def list_units(db: Database, parent_code: str | None = None) -> list[Unit]:
    """All units in tree order, or the direct children of `parent_code`."""
    async with db.session() as session:
        if parent_code is None:
            return _tree_order((await session.exec(select(Unit))).all())
        parent = await unit_by_code(session, parent_code)
        if parent is None:
            raise UnknownUnitError(f"unknown unit `{parent_code}`")
        assert parent.id is not None
        return await children(session, parent.id)
