"""A district's follow-up with a commune about its overdue work ("Đã đôn đốc").

One record, whether tapped under a digest in chat or clicked on the dashboard's overdue page,
so the next digest, the overdue page and an occurrence's history read the same fields.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.audit_actions import FOLLOWED_UP
from bot.core.models import User
from bot.core.services.people import audit


def follow_up_subject(commune_id: int) -> str:
    """The audit subject a follow-up with this commune is recorded (and looked up) under."""
    return f"unit:{commune_id}"


async def record_follow_up(
    session: AsyncSession, officer: User, commune_id: int, commune_name: str, via: str
) -> None:
    """`via`: where it was recorded ("chat" or "web"). Whether this officer supervises the
    commune is the caller's check (the chat and the dashboard each know their reader)."""
    await audit(
        session,
        FOLLOWED_UP,
        follow_up_subject(commune_id),
        officer,
        commune=commune_name,
        via=via,
    )
