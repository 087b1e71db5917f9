"""Words from the unit's own kind, over every unit of both shipped structures: the 2022
three-tier sample of Khánh Hòa and the 2025 two-tier structure of every province."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
from vietnam_provinces import ProvinceCode

from bot.core.framework import Framework
from bot.core.models import Unit
from bot.core.unit_words import (
    adapt_text,
    collective,
    committee,
    head_title,
    head_word,
    kind_of,
    place,
    titled,
)
from bot.core.units import read_units_csv, vietnam_provinces_rows
from tests.helpers.world import SAMPLE_UNITS_CSV

KIND_WORDS = "xã|phường|thị trấn|đặc khu|huyện|thị xã|thành phố|quận|tỉnh|thôn|tổ dân phố"
# Two kind words in a row: "xã Phường …", "huyện Thành phố …", "Trưởng thôn Tổ dân phố …".
# ("xã Bản Bo" is a commune's name: bản, ấp… begin real names, so they are not in the list.)
DOUBLED = re.compile(rf"\b({KIND_WORDS})\s+({KIND_WORDS})\b", re.IGNORECASE)


def _units(rows) -> list[Unit]:  # noqa: ANN001
    by_code: dict[str, Unit] = {}
    for number, row in enumerate(rows, start=1):
        by_code[row.code] = Unit(id=number, code=row.code, name=row.name, level=row.level)
    for row in rows:
        if row.parent_code in by_code:
            by_code[row.code].parent_id = by_code[row.parent_code].id
    return list(by_code.values())


def three_tier() -> list[Unit]:
    return _units(read_units_csv(SAMPLE_UNITS_CSV))


def two_tier() -> list[Unit]:
    rows = []
    for code in ProvinceCode:
        rows += vietnam_provinces_rows(int(code))
    return _units(rows)


def rendered(framework: Framework, units: list[Unit]) -> list[str]:
    """Every title, place and collective a message can show for these units."""
    texts: list[str] = []
    children: dict[int | None, list[Unit]] = defaultdict(list)
    for unit in units:
        children[unit.parent_id].append(unit)
        texts += [place(unit), committee(unit)]
        for role in framework.roles:
            if framework.role_level(role) == unit.level:
                texts.append(titled(framework, role, unit))
        if unit.level == "village":
            texts += [head_title(unit), f"mời {head_word(unit)} của {kind_of(unit).word}"]
            texts.append(adapt_text("Ảnh thông báo niêm yết tại trụ sở thôn", unit))
    by_id = {unit.id: unit for unit in units}
    for parent_id, below in children.items():
        parent = by_id.get(parent_id)
        for level in ("village", "commune"):
            if parent is not None and any(unit.level == level for unit in below):
                texts.append(f"các {collective(below, level)} thuộc {place(parent)}")
    return texts


@pytest.mark.parametrize("structure", [three_tier, two_tier], ids=["2022", "2025"])
def test_no_title_doubles_a_kind_word_in_either_structure(framework: Framework, structure) -> None:  # noqa: ANN001
    units = structure()
    assert len(units) > 500  # the whole structure, not a sample of it
    texts = rendered(framework, units)
    doubled = sorted({text for text in texts if DOUBLED.search(text)})
    assert doubled == []


def test_titles_read_as_the_review_asks(framework: Framework) -> None:
    units = {(unit.name, unit.level): unit for unit in three_tier()}
    tdp = units[("Tổ dân phố 1", "village")]
    ward = units[("Phường Vĩnh Hòa", "commune")]
    city = units[("Thành phố Nha Trang", "district")]
    town = units[("Thị xã Ninh Hòa", "district")]
    assert titled(framework, "village_head", tdp) == "Tổ trưởng Tổ dân phố 1"
    assert titled(framework, "commune_committee", ward) == "UBND phường Vĩnh Hòa"
    assert titled(framework, "district_committee", city) == "UBND thành phố Nha Trang"
    assert titled(framework, "district_committee", town) == "UBND thị xã Ninh Hòa"
    assert titled(framework, "commune_radio", ward) == "Đài Truyền thanh phường Vĩnh Hòa"
    village = next(u for u in units.values() if u.name == "Thôn 1")
    assert titled(framework, "village_head", village) == "Trưởng thôn 1"
    communes = [u for u in three_tier() if u.parent_id == city.id]
    assert f"các {collective(communes, 'commune')} thuộc {place(city)}" == (
        "các xã, phường thuộc thành phố Nha Trang"
    )
    assert collective([tdp], "village") == "tổ dân phố"
    assert collective([], "village") == "thôn, tổ dân phố"
    assert adapt_text("Ảnh niêm yết tại trụ sở thôn", tdp) == (
        "Ảnh niêm yết tại nhà văn hóa tổ dân phố"
    )
    assert adapt_text("Ảnh niêm yết tại trụ sở thôn", None) == (
        "Ảnh niêm yết tại nhà văn hóa thôn/tổ dân phố"
    )


def test_the_2025_kinds_are_read_from_the_names() -> None:
    units = two_tier()
    kinds = {kind_of(unit).key for unit in units if unit.level == "commune"}
    assert kinds == {"xa", "phuong", "dac_khu"}
    special = next(unit for unit in units if unit.name == "Đặc khu Trường Sa")
    assert committee(special) == "UBND đặc khu Trường Sa"
    hanoi = next(unit for unit in units if unit.level == "province" and "Hà Nội" in unit.name)
    assert committee(hanoi) == "UBND thành phố Hà Nội"


def test_english_titles_keep_the_name_and_translate_the_kind(framework: Framework) -> None:
    ward = Unit(code="x", name="Phường Vĩnh Hòa", level="commune")
    assert titled(framework, "commune_committee", ward, "en") == (
        "Ward People's Committee, Phường Vĩnh Hòa"
    )
    mixed = [ward, Unit(code="y", name="Xã Ninh Sim", level="commune")]
    assert collective(mixed, "commune", "en") == "communes and wards"
