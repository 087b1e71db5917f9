"""Set (or correct) one translation in a catalog and clear its fuzzy flag.

Usage: .venv/bin/python scripts/set_translation.py vi "msgid" "msgstr"
"""

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).resolve().parent.parent / "bot" / "locales"


def main() -> None:
    locale, msgid, msgstr = sys.argv[1:4]
    path = LOCALES / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    message = catalog.get(msgid)
    if message is None:
        sys.exit(f"{path}: no msgid {msgid!r} (run scripts/update_catalogs.py first)")
    message.string = msgstr
    message.flags.discard("fuzzy")
    message.previous_id = []
    with path.open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False)


if __name__ == "__main__":
    main()
