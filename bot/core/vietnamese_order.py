"""Vietnamese alphabetical order: "Phước Hải" before "Phước Hòa", "Vạn Thạnh" before "Vĩnh …".

Code points put every accented letter after z. The Vietnamese alphabet orders letters first
(a ă â b c d đ e ê g h i k l m n o ô ơ p q r s t u ư v x y), then tones as dictionaries do
(none, huyền, hỏi, ngã, sắc, nặng), then case; numbers compare by value ("Tổ 2" before "Tổ 10").
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from typing import TypeVar

ALPHABET = "aăâbcdđeêfghijklmnoôơpqrstuưvwxyz"
LETTER_RANK = {letter: rank for rank, letter in enumerate(ALPHABET)}
# Marks that make another letter (ă â ê ô ơ ư) and marks that are tones.
LETTER_MARKS = {"\u0306", "\u0302", "\u031b"}
TONE_RANK = {"\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0301": 4, "\u0323": 5}

T = TypeVar("T")


def sort_key(text: str) -> tuple:
    """A key for sorted(): letters by the alphabet, then tones, then case, then the text."""
    letters: list[tuple[int, int]] = []
    tones: list[int] = []
    cases: list[int] = []
    digits = ""
    for char in unicodedata.normalize("NFD", text):
        if char.isdigit():
            digits += char
            continue
        if digits:
            letters.append((0, int(digits)))
            digits = ""
        if char in TONE_RANK:
            if tones:
                tones[-1] = TONE_RANK[char]
            continue
        if char in LETTER_MARKS:
            if letters and letters[-1][0] == 2:
                base = ALPHABET[letters[-1][1]]
                letters[-1] = (2, LETTER_RANK.get(unicodedata.normalize("NFC", base + char), 0))
            continue
        lower = char.lower()
        if lower in LETTER_RANK:
            letters.append((2, LETTER_RANK[lower]))
            tones.append(0)
            cases.append(0 if char == lower else 1)
        elif char.isspace():
            letters.append((-1, 0))
        elif unicodedata.category(char) != "Mn":
            letters.append((1, ord(lower)))
    if digits:
        letters.append((0, int(digits)))
    return (tuple(letters), tuple(tones), tuple(cases), text)


def sorted_vi(items: Iterable[T], key: Callable[[T], str]) -> list[T]:
    """`items` in Vietnamese alphabetical order of `key(item)`."""
    return sorted(items, key=lambda item: sort_key(key(item)))
