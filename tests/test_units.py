"""Unit imports (the shipped 2022 CSV and the 2025 package data) and the tree helpers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func
from sqlmodel import select

from bot.core.config import DEFAULT_FRAMEWORK_DIR
from bot.core.db import Database
from bot.core.models import Unit
from bot.core.units import (
    UnitImportError,
    UnknownUnitError,
    ancestors,
    children,
    descendants_ids,
    import_units_csv,
    import_vietnam_provinces,
    list_units,
    unit_by_code,
)

SAMPLE_UNITS_CSV = DEFAULT_FRAMEWORK_DIR / "units" / "khanh-hoa-2022.csv"
DISTRICTS = 9
COMMUNES = 139  # 98 xã, 35 phường, 6 thị trấn (GSO list as of 2022–2024)
VILLAGES = 3 * COMMUNES  # sample data
HEADER = "code,name,level,parent_code,sample\n"


async def count_units(db: Database, level: str | None = None) -> int:
    statement = select(func.count()).select_from(Unit)
    if level is not None:
        statement = statement.where(Unit.level == level)
    async with db.session() as session:
        return (await session.exec(statement)).one()


async def get_unit(db: Database, code: str) -> Unit:
    async with db.session() as session:
        unit = await unit_by_code(session, code)
    assert unit is not None, code
    return unit


def shipped_rows() -> list[dict[str, str]]:
    with SAMPLE_UNITS_CSV.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(tmp_path: Path, body: str, name: str = "units.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


SMALL = "56,Tỉnh Khánh Hòa,province,,\n575,Huyện Khánh Sơn,district,56,\n"


async def test_shipped_csv_gives_the_2022_tree(db: Database) -> None:
    report = await import_units_csv(db, SAMPLE_UNITS_CSV)

    assert report.created == len(shipped_rows())
    assert (report.updated, report.unchanged) == (0, 0)
    assert report.summary() == f"created {report.created}, updated 0, unchanged 0"
    assert await count_units(db, "province") == 1
    assert await count_units(db, "district") == DISTRICTS
    assert await count_units(db, "commune") == COMMUNES
    assert await count_units(db, "village") == VILLAGES
    agencies = [row for row in shipped_rows() if row["level"] == "agency"]
    assert await count_units(db, "agency") == len(agencies) > 0
    province = await get_unit(db, "56")
    assert (province.name, province.parent_id, province.is_sample) == (
        "Tỉnh Khánh Hòa",
        None,
        False,
    )
    village = await get_unit(db, "22327-T1")
    assert village.is_sample and village.level == "village"
    assert (await get_unit(db, "22327")).is_sample is False


def test_shipped_agencies_match_roles_yaml() -> None:
    roles_path = DEFAULT_FRAMEWORK_DIR / "roles.yaml"
    if not roles_path.exists():
        pytest.skip("framework_data/roles.yaml not written yet")
    agencies = yaml.safe_load(roles_path.read_text(encoding="utf-8")).get("agencies") or {}
    keys = set(agencies) if isinstance(agencies, dict) else {a["key"] for a in agencies}
    shipped = {row["code"]: row for row in shipped_rows() if row["level"] == "agency"}
    assert set(shipped) == keys
    assert all(row["parent_code"] == "56" for row in shipped.values())


async def test_second_import_changes_nothing(db: Database) -> None:
    first = await import_units_csv(db, SAMPLE_UNITS_CSV)
    second = await import_units_csv(db, SAMPLE_UNITS_CSV)
    assert (second.created, second.updated, second.unchanged) == (0, 0, first.created)
    assert second.changes == []


async def test_renaming_one_unit_updates_exactly_one(db: Database, tmp_path: Path) -> None:
    await import_units_csv(db, SAMPLE_UNITS_CSV)
    text = SAMPLE_UNITS_CSV.read_text(encoding="utf-8")
    assert text.count(",Phường Vĩnh Hòa,") == 1
    edited = tmp_path / "edited.csv"
    edited.write_text(text.replace(",Phường Vĩnh Hòa,", ",Phường Vĩnh Hoà mới,"), encoding="utf-8")

    report = await import_units_csv(db, edited)

    assert (report.created, report.updated) == (0, 1)
    assert len(report.changes) == 1 and report.changes[0].startswith("updated 22327:")
    assert (await get_unit(db, "22327")).name == "Phường Vĩnh Hoà mới"


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ("22609,Xã Sơn Bình,commune\n", "units.csv:4: field `parent_code`: missing"),
        ("22609-T1,Thôn 1,thon,575,1\n", "units.csv:4: field `level`: unknown level `thon`"),
        (
            "22609,Xã Sơn Bình,commune,999,\n",
            "units.csv:4: field `parent_code`: unknown unit `999`",
        ),
        (",Xã Sơn Bình,commune,575,\n", "units.csv:4: field `code`: must not be empty"),
        ("22609,,commune,575,\n", "units.csv:4: field `name`: must not be empty"),
        ("22609,Xã Sơn Bình,commune,575,yes\n", "units.csv:4: field `sample`"),
        (
            "576,Again,district,56,\n",
            "units.csv:4: field `code`: `576` already used at units.csv:3",
        ),
    ],
)
async def test_a_bad_row_names_file_line_field_and_writes_nothing(
    db: Database, tmp_path: Path, bad_line: str, expected: str
) -> None:
    await import_units_csv(db, write_csv(tmp_path, SMALL, "first.csv"))
    before = await count_units(db)
    # Line 2 renames the province, line 3 is new: both must be rolled back with the bad line 4.
    path = write_csv(
        tmp_path, "56,Renamed,province,,\n576,Huyện Trường Sa,district,56,\n" + bad_line
    )

    with pytest.raises(UnitImportError) as raised:
        await import_units_csv(db, path)

    assert expected in str(raised.value)
    assert await count_units(db) == before
    assert (await get_unit(db, "56")).name == "Tỉnh Khánh Hòa"


async def test_a_parent_cycle_is_refused(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,A,agency,b,\nb,B,agency,a,\n")
    with pytest.raises(UnitImportError, match=r"units.csv:2: field `parent_code`: .*cycle"):
        await import_units_csv(db, path)
    assert await count_units(db) == 0


async def test_a_bad_header_is_refused(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("code,name,parent_code,level\n56,X,province,\n", encoding="utf-8")
    with pytest.raises(UnitImportError, match=r"units.csv:1: header"):
        await import_units_csv(db, path)


async def test_parents_may_come_after_children_or_from_the_database(
    db: Database, tmp_path: Path
) -> None:
    reversed_body = (
        "22609-T1,Thôn 1,village,22609,1\n"
        "22609,Xã Sơn Bình,commune,575,\n"
        "575,Huyện Khánh Sơn,district,56,\n"
        "56,Tỉnh Khánh Hòa,province,,\n"
    )
    report = await import_units_csv(db, write_csv(tmp_path, reversed_body))
    assert report.created == 4

    later = write_csv(tmp_path, "22612,Xã Sơn Hiệp,commune,575,\n", "later.csv")
    assert (await import_units_csv(db, later)).created == 1

    village = await get_unit(db, "22609-T1")
    async with db.session() as session:
        chain = [unit.code for unit in await ancestors(session, village)]
    assert chain == ["22609", "575", "56"]
    assert (await get_unit(db, "22612")).parent_id == (await get_unit(db, "575")).id


async def test_moving_a_unit_is_an_update(db: Database, tmp_path: Path) -> None:
    await import_units_csv(db, write_csv(tmp_path, SMALL + "576,Huyện Trường Sa,district,56,\n"))
    moved = write_csv(tmp_path, "22609,Xã Sơn Bình,commune,575,\n", "a.csv")
    await import_units_csv(db, moved)
    report = await import_units_csv(db, write_csv(tmp_path, "22609,Xã Sơn Bình,commune,576,\n"))
    assert report.updated == 1 and "parent 575 → 576" in report.changes[0]


async def test_import_vietnam_provinces_2025(db: Database) -> None:
    report = await import_vietnam_provinces(db, 56)

    communes = await count_units(db, "commune")
    assert communes > 40
    assert report.created == communes + 1
    province = await get_unit(db, "56")
    assert province.name == "Tỉnh Khánh Hòa"
    async with db.session() as session:
        rows = (await session.exec(select(Unit).where(Unit.level == "commune"))).all()
    assert {unit.parent_id for unit in rows} == {province.id}
    assert any(unit.name == "Đặc khu Trường Sa" for unit in rows)

    again = await import_vietnam_provinces(db, 56)
    assert (again.created, again.updated) == (0, 0)


async def test_import_vietnam_provinces_keeps_the_province_row(db: Database) -> None:
    await import_units_csv(db, SAMPLE_UNITS_CSV)
    report = await import_vietnam_provinces(db, 56)
    assert not any(change.startswith("updated 56:") for change in report.changes)


async def test_import_vietnam_provinces_unknown_code(db: Database) -> None:
    with pytest.raises(UnitImportError, match="999"):
        await import_vietnam_provinces(db, 999)
    assert await count_units(db) == 0


async def test_tree_helpers(db: Database) -> None:
    await import_units_csv(db, SAMPLE_UNITS_CSV)
    province = await get_unit(db, "56")
    khanh_son = await get_unit(db, "575")
    village = await get_unit(db, "22327-T2")
    assert province.id is not None and khanh_son.id is not None

    async with db.session() as session:
        districts = await children(session, province.id, level="district")
        chain = await ancestors(session, village)
        below_khanh_son = await descendants_ids(session, khanh_son.id)
        below_province = await descendants_ids(session, province.id)
        assert await ancestors(session, province) == []

    assert [unit.code for unit in districts] == [str(code) for code in range(568, 577)]
    assert [unit.code for unit in chain] == ["22327", "568", "56"]
    assert len(below_khanh_son) == 8 + 8 * 3  # 8 communes, 3 sample villages each
    assert khanh_son.id not in below_khanh_son
    assert len(below_province) == await count_units(db) - 1

    communes = await list_units(db, "575")
    assert len(communes) == 8 and {unit.level for unit in communes} == {"commune"}
    everything = await list_units(db)
    assert len(everything) == await count_units(db)
    assert everything[0].code == "56"
    with pytest.raises(UnknownUnitError):
        await list_units(db, "nope")
