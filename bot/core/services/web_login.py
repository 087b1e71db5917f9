"""Dashboard sign-in without passwords: a one-time link sent in chat opens a browser session.

Only SHA-256 hashes of the link token and of the session token are stored, so a copy of the
database cannot sign anyone in. A link works once, for ten minutes, for the person it was sent
to. A session ends on logout, when ended from the sessions page, after `SESSION_IDLE` without a
request, and at `SESSION_ABSOLUTE` after sign-in whatever happens.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.config import Settings
from bot.core.models import User, WebLoginLink, WebSession, utcnow
from bot.core.timeutil import from_db

LINK_TTL = timedelta(minutes=10)
SESSION_IDLE = timedelta(hours=2)
SESSION_ABSOLUTE = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
LOGIN_PATH = "/dashboard/login/"


class LoginProblem(Exception):
    """Why a link is refused: `unknown`, `used` or `expired` (see `.reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def dashboard_base(settings: Settings) -> str:
    """Where people open the dashboard: the public URL, else the local server."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"http://{settings.http_host}:{settings.http_port}"


async def create_login_link(session: AsyncSession, user: User, settings: Settings) -> str:
    """A new one-time link for `user`; the caller commits (and audits)."""
    token = secrets.token_urlsafe(32)
    session.add(
        WebLoginLink(token_hash=token_hash(token), user_id=user.id, expires_at=utcnow() + LINK_TTL)
    )
    await session.flush()
    return f"{dashboard_base(settings)}{LOGIN_PATH}{token}"


async def redeem_login_link(
    session: AsyncSession, token: str, user_agent: str = ""
) -> tuple[WebSession, str]:
    """Use a link once: the new session and the cookie token. Raises LoginProblem."""
    if not token or len(token) > 200:
        raise LoginProblem("unknown")
    hashed = token_hash(token)
    link = (
        await session.exec(select(WebLoginLink).where(WebLoginLink.token_hash == hashed))
    ).first()
    if link is None:
        raise LoginProblem("unknown")
    now = utcnow()
    if link.used_at is not None:
        raise LoginProblem("used")
    if from_db(link.expires_at) < now:
        raise LoginProblem("expired")
    # Conditional update: of two browsers opening the same link at once, one wins.
    claimed = await session.exec(
        update(WebLoginLink)
        .where(col(WebLoginLink.id) == link.id, col(WebLoginLink.used_at).is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:
        raise LoginProblem("used")
    user = await session.get(User, link.user_id)
    if user is None or not user.active:
        raise LoginProblem("unknown")
    cookie = secrets.token_urlsafe(32)
    web_session = WebSession(
        token_hash=token_hash(cookie),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(24),
        user_agent=user_agent[:200],
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_ABSOLUTE,
    )
    session.add(web_session)
    await session.flush()
    return web_session, cookie


def is_live(web_session: WebSession, now: datetime) -> bool:
    return (
        web_session.ended_at is None
        and from_db(web_session.expires_at) > now
        and from_db(web_session.last_seen_at) + SESSION_IDLE > now
    )


async def session_for_cookie(session: AsyncSession, cookie: str) -> WebSession | None:
    """The live session a cookie names (its idle clock restarted), or None."""
    if not cookie or len(cookie) > 200:
        return None
    found = (
        await session.exec(select(WebSession).where(WebSession.token_hash == token_hash(cookie)))
    ).first()
    now = utcnow()
    if found is None or not is_live(found, now):
        return None
    if now - from_db(found.last_seen_at) >= TOUCH_EVERY:
        found.last_seen_at = now
        session.add(found)
    return found


def end_session(session: AsyncSession, web_session: WebSession, reason: str) -> None:
    web_session.ended_at = utcnow()
    web_session.ended_reason = reason
    session.add(web_session)


async def live_sessions(session: AsyncSession, user_id: int) -> list[WebSession]:
    rows = await session.exec(
        select(WebSession)
        .where(WebSession.user_id == user_id, col(WebSession.ended_at).is_(None))
        .order_by(col(WebSession.created_at).desc())
    )
    now = utcnow()
    return [row for row in rows.all() if is_live(row, now)]
