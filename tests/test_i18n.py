"""Catalogs are complete (same check as `scripts/update_catalogs.py --check`), dates, fallbacks."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path

import pytest

from bot.core.i18n import DEFAULT_LOCALE, LOCALES, LOCALES_DIR, format_day, translator

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "update_catalogs.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("update_catalogs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


catalogs = _load_script()


@pytest.fixture(scope="module")
def extraction():
    return catalogs.extract()


def test_script_and_bot_agree_on_locales() -> None:
    assert tuple(catalogs.LOCALES) == LOCALES
    assert catalogs.LOCALES_DIR == LOCALES_DIR


def test_every_message_is_translated(extraction) -> None:
    assert extraction.msgids(), "no messages extracted: is the extractor broken?"
    problems = catalogs.check(extraction)
    report = "\n".join(str(problem) for problem in problems)
    assert not problems, (
        f"{len(problems)} translation problem(s); run "
        f"`.venv/bin/python scripts/update_catalogs.py` and translate:\n{report}"
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_format_with_the_msgid_placeholders(extraction, locale) -> None:
    """What the bot really loads (compiled in memory, fuzzy entries left out) formats cleanly."""
    _ = translator(locale)
    for msgid in extraction.msgids():
        names = catalogs.placeholders(msgid)
        if names:
            _(msgid).format(**dict.fromkeys(names, "X"))


def test_format_day() -> None:
    assert format_day(date(2026, 11, 30), "vi") == "Thứ Hai, 30/11/2026"
    assert format_day(date(2026, 11, 30), "en") == "Monday, 30/11/2026"


def test_vietnamese_is_the_translation() -> None:
    assert translator("vi")("✅ Done") == "✅ Đã thực hiện"
    assert translator("en")("✅ Done") == "✅ Done"


def test_unknown_locale_falls_back_to_vietnamese() -> None:
    assert DEFAULT_LOCALE == "vi"
    assert translator("fr")("✅ Done") == translator("vi")("✅ Done")
    assert translator("")("📷 Send photo") == "📷 Gửi ảnh"
    assert format_day(date(2026, 11, 30), "fr") == "Thứ Hai, 30/11/2026"


def test_extractor_finds_every_call_form() -> None:
    source = """
_ = convo._
a = convo._("dotted call")
b = _("implicit " "concatenation").format(x=1)
c = t(
    "multi"
    "line {name}"
).format(name="n")
d = translator(choice)("chained call")
# Translators: a button, keep it short
e = mark("marked")
f = self.translations.gettext("attribute gettext")
g = _(label)
h = _(f"never {translated}")
i = other("not a message")
"""
    result = catalogs.extract_source(source, "sample.py")
    assert [found.msgid for found in result.messages] == [
        "dotted call",
        "implicit concatenation",
        "multiline {name}",
        "chained call",
        "marked",
        "attribute gettext",
    ]
    assert result.messages[2].placeholders
    assert result.messages[4].comments == ("a button, keep it short",)
    assert [problem.reason for problem in result.problems] == ["f-string can never be translated"]


def test_check_catches_bad_translations() -> None:
    from babel.messages.catalog import Message

    problem = catalogs.translation_problem
    assert problem("Hi {name}", None).startswith("missing")
    assert problem("Hi {name}", Message("Hi {name}", "")) == "untranslated"
    assert problem("Hi {name}", Message("Hi {name}", "Chào", flags=["fuzzy"])).startswith("fuzzy")
    assert problem("Hi {name}", Message("Hi {name}", "Chào")) == "translation loses {name}"
    assert problem("Hi {name}", Message("Hi {name}", "Chào {ten}")).startswith("translation loses")
    assert problem("Hi", Message("Hi", "Chào {name}")).startswith("translation has")
    assert problem("A\nB", Message("A\nB", "A B")).endswith("line breaks")
    assert problem("✅ Done", Message("✅ Done", "Xong")) == "translation drops ✅"
    assert problem("✉️ Invite {x}", Message("✉️ Invite {x}", "✉️ Mời {x}")) is None


def test_update_keeps_adds_obsoletes_and_revives(tmp_path: Path) -> None:
    def extraction_of(*msgids: str):
        return catalogs.extract_source(
            "\n".join(f"_({msgid!r})" for msgid in msgids), "handlers/sample.py"
        )

    catalogs.update(extraction_of("Hello", "Goodbye"), ["vi"], tmp_path)
    po = catalogs.po_path("vi", tmp_path)
    vi = catalogs.read_catalog(po, "vi")
    vi.get("Hello").string = "Xin chào"
    vi.get("Goodbye").string = "Tạm biệt"
    catalogs.write_if_changed(po, vi)

    catalogs.update(extraction_of("Hello", "Thanks"), ["vi"], tmp_path, fuzzy_matching=False)
    vi = catalogs.read_catalog(po, "vi")
    assert vi.get("Hello").string == "Xin chào"
    assert vi.get("Thanks").string == ""
    assert "Goodbye" in vi.obsolete
    assert "#~ msgid" in po.read_text(encoding="utf-8")

    catalogs.update(extraction_of("Hello", "Goodbye"), ["vi"], tmp_path, fuzzy_matching=False)
    vi = catalogs.read_catalog(po, "vi")
    assert vi.get("Goodbye").string == "Tạm biệt"
    assert "Goodbye" not in vi.obsolete
    assert (tmp_path / "messages.pot").exists()

    before = po.read_bytes()
    assert catalogs.update(extraction_of("Hello", "Goodbye"), ["vi"], tmp_path) == []
    assert po.read_bytes() == before
