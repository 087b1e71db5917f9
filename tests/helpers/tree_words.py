"""What a two-tier deployment must never say: there are no districts since 1 July 2025, so no
"huyện" in any message, and a ward is a "phường", never "xã Phường …"."""

from __future__ import annotations

import re

from sqlmodel import col, select

from bot.core.db import Database
from bot.core.models import Outbox

DISTRICT_WORD = re.compile(r"\bhuyện\b", re.IGNORECASE)
WARD_AS_COMMUNE = re.compile(r"\bxã phường\b", re.IGNORECASE)


def wrong_words(text: str) -> list[str]:
    return [
        m.group(0) for pattern in (DISTRICT_WORD, WARD_AS_COMMUNE) for m in pattern.finditer(text)
    ]


async def assert_no_district_words(db: Database) -> int:
    """Every queued message (text, button labels, captions) reads right for the two-tier tree;
    returns how many were read, so a caller can tell the check saw something."""
    async with db.session() as session:
        rows = (await session.exec(select(Outbox).order_by(col(Outbox.id)))).all()
    for row in rows:
        payload = row.payload or {}
        parts = [payload.get("text") or "", payload.get("caption") or ""]
        parts += [b.get("label", "") for line in payload.get("buttons") or [] for b in line]
        found = wrong_words("\n".join(parts))
        assert not found, f"outbox {row.id} to user {row.user_id} says {found}: {payload}"
    return len(rows)
