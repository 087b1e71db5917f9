"""Translations (Babel gettext, read straight from the .po catalogs) and Vietnamese dates.

Message ids are English; `vi` is the default locale. Catalogs are compiled in memory at first
use, so there is no build step between editing a .po file and seeing the result.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).resolve().parents[1] / "locales"
LOCALES = ("vi", "en")
DEFAULT_LOCALE = "vi"

Translator = Callable[[str], str]


@cache
def translations(locale: str) -> NullTranslations:
    po_path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def translator(locale: str) -> Translator:
    chosen = locale if locale in LOCALES else DEFAULT_LOCALE
    return translations(chosen).gettext


def mark(message: str) -> str:
    """Marks a string for extraction where it is translated later (module-level labels)."""
    return message


def format_day(day: date, locale: str) -> str:
    """`Thứ Hai, 30/11/2026` in Vietnamese, `Monday, 30/11/2026` in English."""
    text = format_date(day, "EEEE, dd/MM/yyyy", locale=locale if locale in LOCALES else "vi")
    return text[:1].upper() + text[1:]


def format_short_day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()
