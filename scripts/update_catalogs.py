"""Extract the chat's messages into bot/locales/messages.pot and update the vi and en catalogs.

    .venv/bin/python scripts/update_catalogs.py            # extract, update the .po files
    .venv/bin/python scripts/update_catalogs.py --check    # ... then exit 1 listing the gaps
    .venv/bin/python scripts/update_catalogs.py --check --no-write   # only check (CI)

Messages are found with Python's own parser (not Babel's token scanner) in bot/, handlers/ and
scheduler/: every call to a name or attribute called `_`, `t`, `mark` or `gettext`, and every
`translator(locale)("…")`, whose first argument is a string literal (implicit concatenation
included). A `# Translators: …` comment just above such a call goes into the catalogs.
An f-string or a `+` / `%` expression as first argument is reported as a problem: it can never
match a catalog entry.

Updating keeps existing translations, adds new msgids with an empty msgstr (or a `fuzzy` guess
from a similar old msgid, which counts as untranslated until someone removes the flag), brings
back the translation of a msgid that had become obsolete, and keeps removed msgids as `#~`
obsolete entries. Files are only rewritten when something other than their dates changed.

The check (also called by tests/test_i18n.py) reports, for each locale, every extracted msgid
that is missing, untranslated or fuzzy, whose translation loses or invents a `{placeholder}`
(`.format()` would print the raw name or raise KeyError), changes the number of line breaks,
or drops an emoji of the msgid.
"""

from __future__ import annotations

import argparse
import ast
import string
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("bot", "handlers", "scheduler")
SKIP_PARTS = {"__pycache__", "migrations", "locales"}
LOCALES_DIR = ROOT / "bot" / "locales"
TEMPLATE_PATH = LOCALES_DIR / "messages.pot"
LOCALES = ("vi", "en")  # tests/test_i18n.py checks this equals bot.core.i18n.LOCALES
DOMAIN = "messages"

KEYWORDS = frozenset({"_", "t", "mark", "gettext"})
TRANSLATOR_FACTORIES = frozenset({"translator"})
COMMENT_TAG = "Translators:"
PO_WIDTH = 100
DATE_HEADERS = (b'"POT-Creation-Date:', b'"PO-Revision-Date:')

HEADER_COMMENTS = {
    "vi": (
        "# Vietnamese translations for papibot (PAPI tasks of decision 3012/QĐ-UBND, Khánh Hòa).\n"
        "#\n"
        "# Giọng văn: lịch sự, giản dị, như văn phòng UBND xã viết cho trưởng thôn (thường lớn\n"
        "# tuổi, đọc trên điện thoại): câu ngắn, từ quen thuộc, không dùng tiếng lóng.\n"
        "# Xưng hô: luôn gọi người dùng là “anh/chị” (không dùng “bạn”) để tôn trọng cán bộ;\n"
        "# bot tránh tự xưng, khi cần thì nói “hệ thống”.\n"
        "# Giữ nguyên mọi {placeholder}, biểu tượng cảm xúc (emoji), lệnh /viec, /lang … và\n"
        "# các dấu xuống dòng. Viết “{role} {unit}” (Trưởng thôn Thôn 3), không thêm “của”.\n"
        "# Ngày tháng đã được Babel định dạng sẵn (Thứ Hai, 30/11/2026).\n"
    ),
    "en": (
        "# English texts for papibot. The msgids are English already: every msgstr repeats its\n"
        "# msgid (tidied where the msgid reads awkwardly), so that an empty msgstr always means\n"
        "# a message nobody has looked at yet.\n"
    ),
}


LANGUAGE_TEAMS = {"vi": "Vietnamese", "en": "English"}


@dataclass(frozen=True)
class Found:
    msgid: str
    path: str  # relative to the repository, with forward slashes
    line: int
    comments: tuple[str, ...] = ()
    placeholders: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Problem:
    locale: str  # "" for a problem in the source code itself
    where: str
    msgid: str
    reason: str

    def __str__(self) -> str:
        label = self.locale or "source"
        return f"{label:6} {self.where:32} {self.reason}: {self.msgid!r}"


@dataclass
class Extraction:
    messages: list[Found] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def msgids(self) -> dict[str, Found]:
        """Each msgid once, at its first place in the code."""
        first: dict[str, Found] = {}
        for found in self.messages:
            first.setdefault(found.msgid, found)
        return first


# --- extraction ---------------------------------------------------------------------------


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _is_translation_call(call: ast.Call) -> bool:
    name = _called_name(call.func)
    if name in KEYWORDS:
        return True
    # translator(locale)("…")
    return isinstance(call.func, ast.Call) and _called_name(call.func.func) in TRANSLATOR_FACTORIES


def _translator_comments(lines: list[str], lineno: int) -> tuple[str, ...]:
    """The `# Translators: …` comment block right above line `lineno` (1-based)."""
    block: list[str] = []
    index = lineno - 2
    while index >= 0 and lines[index].strip().startswith("#"):
        block.insert(0, lines[index].strip().lstrip("#").strip())
        index -= 1
    for position, text in enumerate(block):
        if text.startswith(COMMENT_TAG):
            first = text[len(COMMENT_TAG) :].strip()
            return tuple(part for part in [first, *block[position + 1 :]] if part)
    return ()


def _has_placeholders(msgid: str) -> bool:
    try:
        return any(
            name is not None for _text, name, _spec, _conv in string.Formatter().parse(msgid)
        )
    except ValueError:
        return False


def extract_source(source: str, path: str) -> Extraction:
    result = Extraction()
    tree = ast.parse(source, filename=path)
    lines = source.splitlines()
    calls = [
        node for node in ast.walk(tree) if isinstance(node, ast.Call) and _is_translation_call(node)
    ]
    calls.sort(key=lambda node: (node.lineno, node.col_offset))
    for call in calls:
        if not call.args:
            continue
        first = call.args[0]
        where = f"{path}:{call.lineno}"
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            if not first.value:
                result.problems.append(Problem("", where, "", "empty msgid"))
                continue
            result.messages.append(
                Found(
                    first.value,
                    path,
                    first.lineno,
                    _translator_comments(lines, call.lineno),
                    _has_placeholders(first.value),
                )
            )
        elif isinstance(first, ast.JoinedStr):
            result.problems.append(
                Problem("", where, ast.unparse(first), "f-string can never be translated")
            )
        elif isinstance(first, ast.BinOp) and isinstance(first.op, ast.Add | ast.Mod):
            result.problems.append(
                Problem("", where, ast.unparse(first), "expression instead of a literal msgid")
            )
        # A plain name (`_(label)` of a string marked with mark()) is fine: nothing to extract.
    return result


def source_files(root: Path = ROOT) -> Iterator[Path]:
    for directory in SOURCE_DIRS:
        base = root / directory
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            if SKIP_PARTS.isdisjoint(path.relative_to(base).parts[:-1]):
                yield path


def extract(root: Path = ROOT) -> Extraction:
    result = Extraction()
    for path in source_files(root):
        relative = path.relative_to(root).as_posix()
        try:
            found = extract_source(path.read_text(encoding="utf-8"), relative)
        except SyntaxError as error:  # a file being written right now by someone else
            result.problems.append(Problem("", f"{relative}:{error.lineno}", "", "syntax error"))
            continue
        result.messages += found.messages
        result.problems += found.problems
    return result


# --- catalogs -----------------------------------------------------------------------------


def po_path(locale: str, locales_dir: Path = LOCALES_DIR) -> Path:
    return locales_dir / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def build_template(extraction: Extraction) -> Catalog:
    template = Catalog(project="papibot", version="0.1", copyright_holder="papibot", fuzzy=False)
    template.msgid_bugs_address = ""
    for found in extraction.messages:
        flags = ("python-brace-format",) if found.placeholders else ()
        template.add(
            found.msgid,
            locations=[(found.path, found.line)],
            auto_comments=found.comments,
            flags=flags,
        )
    return template


def read_catalog(path: Path, locale: str | None = None) -> Catalog | None:
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return read_po(handle, locale=locale, domain=DOMAIN)


def _render(catalog: Catalog) -> bytes:
    buffer = BytesIO()
    write_po(
        buffer, catalog, width=PO_WIDTH, sort_output=False, include_previous=True, omit_header=False
    )
    return buffer.getvalue()


def _without_dates(content: bytes) -> list[bytes]:
    return [line for line in content.splitlines() if not line.startswith(DATE_HEADERS)]


def write_if_changed(path: Path, catalog: Catalog) -> bool:
    content = _render(catalog)
    if path.exists() and _without_dates(path.read_bytes()) == _without_dates(content):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return True


def update_locale(
    template: Catalog, locale: str, locales_dir: Path = LOCALES_DIR, fuzzy_matching: bool = True
) -> Catalog:
    catalog = read_catalog(po_path(locale, locales_dir), locale)
    if catalog is None:
        catalog = Catalog(
            locale=locale,
            domain=DOMAIN,
            project="papibot",
            version="0.1",
            copyright_holder="papibot",
            fuzzy=False,
        )
        catalog.header_comment = HEADER_COMMENTS.get(locale, catalog.header_comment).rstrip("\n")
        catalog.language_team = LANGUAGE_TEAMS.get(locale, locale)
        catalog.last_translator = "papibot"
        catalog.msgid_bugs_address = ""
    # A msgid that comes back keeps the translation it had before it became obsolete.
    for message in template:
        if message.id and message.id not in catalog and message.id in catalog.obsolete:
            revived = catalog.obsolete.pop(message.id)
            catalog[message.id] = Message(
                message.id, revived.string, flags=revived.flags, user_comments=revived.user_comments
            )
    catalog.update(template, no_fuzzy_matching=not fuzzy_matching, update_header_comment=False)
    for message in template:
        if message.id:
            catalog.obsolete.pop(message.id, None)
    return catalog


def update(
    extraction: Extraction,
    locales: Iterable[str] = LOCALES,
    locales_dir: Path = LOCALES_DIR,
    write: bool = True,
    fuzzy_matching: bool = True,
) -> list[Path]:
    """Writes the template and the locales' catalogs; returns the files that changed."""
    template = build_template(extraction)
    changed: list[Path] = []
    template_path = locales_dir / TEMPLATE_PATH.name
    if write and write_if_changed(template_path, template):
        changed.append(template_path)
    for locale in locales:
        catalog = update_locale(template, locale, locales_dir, fuzzy_matching)
        path = po_path(locale, locales_dir)
        if write and write_if_changed(path, catalog):
            changed.append(path)
    return changed


# --- checking -----------------------------------------------------------------------------


def placeholders(text: str) -> set[str] | None:
    """The `{names}` of a str.format template; None when it is not a valid template."""
    try:
        return {
            name for _text, name, _spec, _conv in string.Formatter().parse(text) if name is not None
        }
    except ValueError:
        return None


EMOJI_MODIFIERS = {"\ufe0f", "\u200d"}


def emojis(text: str) -> list[str]:
    return [ch for ch in text if unicodedata.category(ch) == "So" and ch not in EMOJI_MODIFIERS]


def translation_problem(msgid: str, message: Message | None) -> str | None:
    if message is None:
        return "missing from the catalog (run scripts/update_catalogs.py)"
    if not message.string:
        return "untranslated"
    if message.fuzzy:
        return "fuzzy (check the guess, then remove the fuzzy flag)"
    translated = message.string
    if not isinstance(translated, str):
        return "plural forms where a single message is used"
    wanted, got = placeholders(msgid), placeholders(translated)
    if wanted is not None and wanted:
        if got is None:
            return "translation is not a valid {placeholder} template (stray brace?)"
        if wanted - got:
            return f"translation loses {', '.join('{' + n + '}' for n in sorted(wanted - got))}"
        if got - wanted:
            return f"translation invents {', '.join('{' + n + '}' for n in sorted(got - wanted))}"
    elif got:
        return "translation has {placeholders} the msgid does not have"
    if msgid.count("\n") != translated.count("\n"):
        return "translation changes the number of line breaks"
    lost = [ch for ch in emojis(msgid) if ch not in translated]
    if lost:
        return f"translation drops {''.join(lost)}"
    return None


def check(
    extraction: Extraction | None = None,
    locales: Iterable[str] = LOCALES,
    locales_dir: Path = LOCALES_DIR,
) -> list[Problem]:
    """Every problem that stops a message from being shown right in every locale."""
    extraction = extraction if extraction is not None else extract()
    problems = list(extraction.problems)
    msgids = extraction.msgids()
    for locale in locales:
        catalog = read_catalog(po_path(locale, locales_dir), locale)
        for msgid, found in msgids.items():
            message = catalog.get(msgid) if catalog is not None else None
            reason = translation_problem(msgid, message)
            if reason:
                problems.append(Problem(locale, found.where, msgid, reason))
    return problems


# --- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 listing every message not fully translated"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write any file")
    parser.add_argument(
        "--no-fuzzy-matching",
        action="store_true",
        help="do not guess translations of new msgids from similar old ones",
    )
    args = parser.parse_args(argv)

    extraction = extract()
    changed = update(extraction, write=not args.no_write, fuzzy_matching=not args.no_fuzzy_matching)
    unique = len(extraction.msgids())
    print(
        f"{unique} messages ({len(extraction.messages)} uses) in {', '.join(SOURCE_DIRS)}; "
        + (
            "updated " + ", ".join(str(p.relative_to(ROOT)) for p in changed)
            if changed
            else "catalogs unchanged"
        )
    )
    if not args.check:
        for problem in extraction.problems:
            print(problem, file=sys.stderr)
        return 0
    problems = check(extraction)
    if not problems:
        print(f"all {unique} messages are translated in {', '.join(LOCALES)}")
        return 0
    print(f"{len(problems)} problem(s):", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
