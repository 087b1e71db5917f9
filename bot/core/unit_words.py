"""The words a unit's own type calls for: "phường", "Tổ trưởng", "các xã, phường".

A unit's kind comes from the word its name starts with ("Phường Vĩnh Hòa", "Tổ dân phố 1",
"Thành phố Nha Trang"), read at its level: "Thành phố" is a district-level city under a
province and a centrally-run city at province level. A name without a known word keeps the
level's general word ("xã", "thôn"). Every message that names a unit or a role asks here, so
a ward is never called "xã Phường …" and a residential group's head is never "Trưởng thôn".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.models import Unit


@dataclass(frozen=True)
class Kind:
    key: str
    level: str
    word: str  # Vietnamese, lower case, as in running text ("phường")
    word_en: str
    head: str = ""  # village level: the head's title ("Tổ trưởng", "Trưởng thôn")
    head_en: str = ""


KINDS: tuple[Kind, ...] = (
    # Village level ("thôn, tổ dân phố (gọi chung là thôn)" in the decision).
    Kind("to_dan_pho", "village", "tổ dân phố", "residential group", "Tổ trưởng", "Group leader"),
    Kind("khu_pho", "village", "khu phố", "quarter", "Trưởng khu phố", "Quarter head"),
    Kind("khu_dan_cu", "village", "khu dân cư", "residential area", "Trưởng khu dân cư", "Head"),
    Kind("thon", "village", "thôn", "village", "Trưởng thôn", "Village head"),
    Kind("ap", "village", "ấp", "hamlet", "Trưởng ấp", "Hamlet head"),
    Kind("ban", "village", "bản", "village", "Trưởng bản", "Village head"),
    Kind("buon", "village", "buôn", "village", "Trưởng buôn", "Village head"),
    Kind("lang", "village", "làng", "village", "Trưởng làng", "Village head"),
    Kind("xom", "village", "xóm", "hamlet", "Trưởng xóm", "Hamlet head"),
    Kind("khom", "village", "khóm", "hamlet", "Trưởng khóm", "Hamlet head"),
    Kind("khu", "village", "khu", "area", "Trưởng khu", "Area head"),
    Kind("to", "village", "tổ", "group", "Tổ trưởng", "Group leader"),
    # Commune level.
    Kind("xa", "commune", "xã", "commune"),
    Kind("phuong", "commune", "phường", "ward"),
    Kind("thi_tran", "commune", "thị trấn", "township"),
    Kind("dac_khu", "commune", "đặc khu", "special zone"),
    # District level.
    Kind("huyen", "district", "huyện", "district"),
    Kind("thi_xa", "district", "thị xã", "town"),
    Kind("thanh_pho", "district", "thành phố", "city"),
    Kind("quan", "district", "quận", "urban district"),
    Kind("dac_khu", "district", "đặc khu", "special zone"),
    # Province level.
    Kind("tinh", "province", "tỉnh", "province"),
    Kind("thanh_pho_tw", "province", "thành phố", "city"),
)
# A name without a known first word: the level's general word.
GENERAL = {
    "village": Kind("thon", "village", "thôn", "village", "Trưởng thôn", "Village head"),
    "commune": Kind("xa", "commune", "xã", "commune"),
    "district": Kind("huyen", "district", "huyện", "district"),
    "province": Kind("tinh", "province", "tỉnh", "province"),
}
# What a level is called when the kinds below it are not known (an empty commune).
FALLBACK_COLLECTIVE = {
    "village": ("thôn, tổ dân phố", "villages and residential groups"),
    "commune": ("xã, phường", "communes and wards"),
    "district": ("huyện, thị xã, thành phố", "districts, towns and cities"),
}
# The general word a role's name ends with ("UBND cấp xã", "Trạm Y tế xã", "Đài Truyền thanh
# huyện"), which gives way to the unit's own place.
ROLE_LEVEL_WORDS = {"village": "thôn", "commune": "xã", "district": "huyện", "province": "tỉnh"}
ROLE_LEVEL_WORDS_EN = {"commune": "Commune", "district": "District", "province": "Provincial"}


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def kind_of(unit: Unit) -> Kind | None:
    """The unit's kind from the first word(s) of its name at its level; None for an agency."""
    if unit.level not in GENERAL:
        return None
    lowered = _nfc(unit.name).lower()
    for kind in KINDS:
        if kind.level != unit.level:
            continue
        if lowered == kind.word or re.match(rf"{re.escape(kind.word)}(\s|$|\d)", lowered):
            return kind
    return GENERAL[unit.level]


def bare_name(unit: Unit) -> str:
    """The name without its kind word: "Phường Vĩnh Hòa" → "Vĩnh Hòa"; "Tổ dân phố 1" → "1"."""
    name = _nfc(unit.name)
    kind = kind_of(unit)
    if kind is not None and name.lower().startswith(kind.word):
        rest = name[len(kind.word) :].strip()
        if rest:
            return rest
    return name


def _has_word(unit: Unit) -> bool:
    kind = kind_of(unit)
    return kind is not None and _nfc(unit.name).lower().startswith(kind.word)


def place(unit: Unit, locale: str = "vi") -> str:
    """The unit as named in running text: "phường Vĩnh Hòa", "thành phố Nha Trang",
    "Tổ dân phố 1" (a numbered village keeps its capital: it is the whole name)."""
    name = _nfc(unit.name)
    kind = kind_of(unit)
    if locale != "vi" or kind is None:
        return name
    if not _has_word(unit):
        return f"{kind.word} {name}" if unit.level != "village" else name
    bare = bare_name(unit)
    if unit.level == "village":
        return name  # "Thôn 1", "Tổ dân phố 2": the number is no name without its word
    return f"{kind.word} {bare}"


def kind_word(unit: Unit, locale: str = "vi") -> str:
    """ "phường", "tổ dân phố" (English: "ward", "residential group"); an agency: its name."""
    kind = kind_of(unit)
    if kind is None:
        return unit.name
    return kind.word if locale == "vi" else kind.word_en


def committee(unit: Unit, locale: str = "vi") -> str:
    """ "UBND phường Vĩnh Hòa", "UBND thành phố Nha Trang"; an agency is its own name."""
    if kind_of(unit) is None:
        return _nfc(unit.name)
    if locale != "vi":
        return f"People's Committee of {_nfc(unit.name)}"
    return f"UBND {place(unit)}"


def head_title(unit: Unit, locale: str = "vi") -> str:
    """A village's head: "Tổ trưởng Tổ dân phố 1", "Trưởng thôn 1", "Trưởng ấp Phú Hòa"."""
    kind = kind_of(unit) or GENERAL["village"]
    name = _nfc(unit.name)
    if locale != "vi":
        return f"{kind.head_en or 'Head'}, {name}"
    if kind.head.lower().endswith(kind.word) and _has_word(unit):
        return f"{kind.head} {bare_name(unit)}"  # "Trưởng thôn" + "Thôn 1" → "Trưởng thôn 1"
    if not _has_word(unit) and unit.level == "village" and kind is GENERAL["village"]:
        return f"Trưởng {name}"  # an unknown kind of village: "Trưởng Khu tái định cư A"
    return f"{kind.head} {name}"


def head_word(unit: Unit, locale: str = "vi") -> str:
    """The head's title alone, lower case, for "mời tổ trưởng của …": "tổ trưởng", "trưởng thôn"."""
    kind = kind_of(unit) or GENERAL["village"]
    return (kind.head if locale == "vi" else kind.head_en).lower()


def role_title(role_name: str, level: str, unit: Unit, locale: str = "vi") -> str:
    """A role held at a unit, in the unit's own words.

    `role_name` is the framework's name for the role ("UBND cấp xã", "Trạm Y tế xã", "Trưởng thôn",
    "Ban Thanh tra Nhân dân"); its trailing general level word gives way to the unit's place.
    """
    if unit.level == "village" and level == "village":
        return head_title(unit, locale)
    if kind_of(unit) is None:  # an agency: its own name says it all
        return _nfc(unit.name) if locale == "vi" else f"{role_name}, {_nfc(unit.name)}"
    if locale != "vi":
        general = ROLE_LEVEL_WORDS_EN.get(level)
        kind = kind_of(unit)
        if general and role_name.startswith(general) and kind is not None:
            role_name = kind.word_en.capitalize() + role_name[len(general) :]
        return f"{role_name}, {_nfc(unit.name)}"
    general = ROLE_LEVEL_WORDS.get(level, "")
    base = role_name
    # "UBND cấp xã" (the decision's generic term) and "UBND xã" both become "UBND phường …".
    for ending in (f" cấp {general}", f" {general}") if general else ():
        if base.endswith(ending):
            base = base[: -len(ending)]
            break
    return f"{base} {place(unit)}"


# Canonical order of words in a collective: the common kinds first, as people say them.
_COLLECTIVE_ORDER = (
    "thon",
    "to_dan_pho",
    "ap",
    "ban",
    "buon",
    "lang",
    "xom",
    "khom",
    "khu_pho",
    "khu_dan_cu",
    "khu",
    "to",
    "xa",
    "phuong",
    "thi_tran",
    "dac_khu",
    "huyen",
    "thi_xa",
    "thanh_pho",
    "quan",
    "tinh",
    "thanh_pho_tw",
)


def collective(units: Iterable[Unit], level: str, locale: str = "vi") -> str:
    """The kinds present, in the order people say them: "xã, phường", "tổ dân phố",
    "thôn, tổ dân phố" (no "các"). Without units: the level's general collective."""
    found: dict[str, Kind] = {}
    for unit in units:
        kind = kind_of(unit)
        if kind is not None and kind.level == level:
            found.setdefault(kind.key, kind)
    if not found:
        vi, en = FALLBACK_COLLECTIVE.get(level, ("đơn vị", "units"))
        return vi if locale == "vi" else en
    ordered = sorted(found.values(), key=lambda k: _COLLECTIVE_ORDER.index(k.key))
    if locale == "vi":
        words: list[str] = []
        for kind in ordered:
            if kind.word not in words:
                words.append(kind.word)
        return ", ".join(words)
    plural = []
    for kind in ordered:
        word = kind.word_en[:-1] + "ies" if kind.word_en.endswith("y") else kind.word_en + "s"
        if word not in plural:
            plural.append(word)
    return " and ".join([", ".join(plural[:-1]), plural[-1]]) if len(plural) > 1 else plural[0]


# The decision says "thôn/tổ dân phố (gọi chung là thôn)": its texts say "thôn" for both.
_VILLAGE_PLACES = re.compile(r"\b(trụ sở thôn|nhà văn hóa thôn|nhà văn hoá thôn)\b")


def adapt_text(text: str, unit: Unit | None) -> str:
    """A framework text shown for one unit: the village's hall in the unit's own words
    ("nhà văn hóa tổ dân phố"); for no unit in particular, "nhà văn hóa thôn/tổ dân phố"."""
    if not text:
        return text
    if unit is not None and unit.level == "village":
        hall = f"nhà văn hóa {kind_word(unit)}"
    else:
        hall = "nhà văn hóa thôn/tổ dân phố"
    return _VILLAGE_PLACES.sub(hall, unicodedata.normalize("NFC", text))


def titled(framework, role: str, unit: Unit, locale: str = "vi") -> str:  # noqa: ANN001
    """`role` held at `unit`, with the framework's name for the role: "UBND phường Vĩnh Hòa"."""
    try:
        level = framework.role_level(role)
        name = framework.role_name(role, locale)
    except KeyError:
        return place(unit, locale)
    return role_title(name, level, unit, locale)


def named(framework, role: str, unit: Unit, person: str, locale: str = "vi") -> str:  # noqa: ANN001
    """The title and, when known, the person: "Tổ trưởng Tổ dân phố 1 (Nguyễn Văn An)"."""
    title = titled(framework, role, unit, locale)
    return f"{title} ({person.strip()})" if person and person.strip() else title
