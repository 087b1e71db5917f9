"""Lists in Vietnamese alphabetical order, and numbers as the locale writes them."""

from __future__ import annotations

from bot.core.i18n import format_number, format_percent
from bot.core.vietnamese_order import sort_key


def test_names_sort_by_the_vietnamese_alphabet_then_tones() -> None:
    names = [
        "Phường Phước Hòa",
        "Phường Phước Hải",
        "Phước Tiến",
        "Phước Tân",
        "Vĩnh Trường",
        "Vạn Thạnh",
        "Tổ dân phố 10",
        "Tổ dân phố 2",
        "Đà Lạt",
        "Dương",
        "ba",
        "bạ",
        "bá",
        "bà",
    ]
    assert sorted(names, key=sort_key) == [
        "ba",
        "bà",
        "bá",
        "bạ",
        "Dương",
        "Đà Lạt",
        "Phước Tân",
        "Phước Tiến",
        "Phường Phước Hải",
        "Phường Phước Hòa",
        "Tổ dân phố 2",
        "Tổ dân phố 10",
        "Vạn Thạnh",
        "Vĩnh Trường",
    ]


def test_letters_with_marks_are_letters_of_their_own() -> None:
    assert sorted(["ơ", "ô", "o", "ư", "u", "â", "ă", "a", "đ", "d"], key=sort_key) == [
        "a",
        "ă",
        "â",
        "d",
        "đ",
        "o",
        "ô",
        "ơ",
        "u",
        "ư",
    ]


def test_numbers_and_percentages_follow_the_locale() -> None:
    assert format_number(1498, "vi") == "1.498"
    assert format_number(1498, "en") == "1,498"
    assert format_percent(0.75, "vi") == "75%"
