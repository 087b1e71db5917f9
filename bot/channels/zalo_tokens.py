"""Zalo OA access tokens: stored in the database, refreshed once however many ask at once.

Zalo's refresh token is single use: each refresh returns a new access token *and* a new refresh
token, and the old refresh token stops working. Losing the new pair means re-authorising the OA
by hand, so the new pair is committed to the `platform_tokens` row before anyone uses it.

Two sends that see an expired token at the same moment must cause one refresh: an asyncio.Lock
serialises refreshes in this process, and after taking it the row is read again — if its
version moved on, someone else already refreshed and that token is used. On PostgreSQL the row
is also locked (SELECT … FOR UPDATE) for the refresh, which covers other worker processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.channels.base import DeliveryError
from bot.core.config import Settings
from bot.core.db import Database
from bot.core.models import PlatformToken, utcnow
from bot.core.sqlutil import dialect_name

log = logging.getLogger(__name__)

TOKEN_NAME = "zalo_oa"
ACCESS_TOKEN_LIFETIME = timedelta(hours=25)  # what Zalo documents for an OA access token
REFRESH_MARGIN = timedelta(minutes=10)  # refresh a token this close to expiry before using it
REFRESH_PATH = "/v4/oa/access_token"


@dataclass(frozen=True)
class Token:
    access_token: str
    version: int


class TokenRefreshError(DeliveryError):
    """Zalo refused the refresh (revoked or reused refresh token): the OA must be re-authorised."""


class ZaloTokenStore:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        http: Callable[[], aiohttp.ClientSession],
        name: str = TOKEN_NAME,
    ) -> None:
        self.db = db
        self.settings = settings
        self.http = http
        self.name = name
        self._lock = asyncio.Lock()
        self.refresh_count = 0  # refreshes this process made (for logs and tests)

    async def _row(self, session, lock: bool = False) -> PlatformToken | None:  # noqa: ANN001
        query = select(PlatformToken).where(PlatformToken.name == self.name)
        if lock and dialect_name(session) == "postgresql":
            query = query.with_for_update()
        return (await session.exec(query)).first()

    async def _initial(self) -> PlatformToken:
        """The row, created from the configured tokens the first time."""
        async with self.db.session() as session:
            row = await self._row(session)
            if row is not None:
                return row
            if not self.settings.zalo_oa_access_token and not self.settings.zalo_oa_refresh_token:
                raise DeliveryError("Zalo OA has no access token configured", permanent=True)
            row = PlatformToken(
                name=self.name,
                access_token=self.settings.zalo_oa_access_token,
                refresh_token=self.settings.zalo_oa_refresh_token,
                # Unknown when the configured token was issued: trust it until Zalo says no.
                expires_at=utcnow() + ACCESS_TOKEN_LIFETIME,
                version=1,
            )
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:  # another worker created it first
                await session.rollback()
                row = await self._row(session)
                assert row is not None
            return row

    async def current(self) -> Token:
        """The access token to use now (refreshed first when it is about to expire)."""
        row = await self._initial()
        if not row.access_token or row.expires_at - REFRESH_MARGIN <= utcnow():
            return await self.refresh(row.version)
        return Token(row.access_token, row.version)

    async def refresh(self, seen_version: int) -> Token:
        """Replace the token that had `seen_version`; a no-op when that already happened."""
        await self._initial()
        async with self._lock, self.db.session() as session:
            row = await self._row(session, lock=True)
            assert row is not None
            if row.version != seen_version:  # refreshed meanwhile, here or by another worker
                token = Token(row.access_token, row.version)
                await session.rollback()  # (expires `row`: read it before)
                return token
            return await self._refresh_locked(session, row)

    async def _refresh_locked(self, session, row: PlatformToken) -> Token:  # noqa: ANN001
        data = await self._call_oauth(row.refresh_token)
        access = str(data.get("access_token") or "")
        refresh = str(data.get("refresh_token") or "")
        if not access or not refresh:
            await session.rollback()
            raise TokenRefreshError(f"Zalo token refresh returned no token: {data!r:.200}")
        try:
            lifetime = timedelta(seconds=int(str(data.get("expires_in") or "90000")))
        except ValueError:
            lifetime = ACCESS_TOKEN_LIFETIME
        row.access_token = access
        row.refresh_token = refresh
        row.expires_at = utcnow() + lifetime
        row.version += 1
        row.updated_at = utcnow()
        session.add(row)
        await session.commit()  # the new pair is safe before anyone uses it
        self.refresh_count += 1
        log.info("Zalo OA access token refreshed (version %s)", row.version)
        return Token(access, row.version)

    async def _call_oauth(self, refresh_token: str) -> dict:
        url = self.settings.zalo_oauth_url.rstrip("/") + REFRESH_PATH
        form = {
            "refresh_token": refresh_token,
            "app_id": self.settings.zalo_oa_app_id,
            "grant_type": "refresh_token",
        }
        headers = {"secret_key": self.settings.zalo_oa_app_secret}
        try:
            async with self.http().post(
                url, data=form, headers=headers, timeout=aiohttp.ClientTimeout(total=20)
            ) as response:
                if response.status >= 500 or response.status == 429:
                    raise DeliveryError(f"Zalo OAuth HTTP {response.status}")
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise DeliveryError(f"Zalo OAuth unreachable: {type(error).__name__}") from error
        if not isinstance(data, dict):
            raise DeliveryError("Zalo OAuth answered something that is not an object")
        if data.get("error") not in (None, 0, "0"):
            log.error("Zalo OA token refresh refused: %s", data)
            raise TokenRefreshError(
                f"Zalo OAuth error {data.get('error')}: {data.get('error_description') or data.get('error_name')}"
            )
        return data
