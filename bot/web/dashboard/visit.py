"""One dashboard request by a signed-in person: the session check, the scope, CSRF, rendering.

Every page handler is wrapped by `page` (HTML: no session → the login page) or `resource`
(exports and photos: no session → 401). A POST without the session's CSRF token is refused
with 403 and changes nothing."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.i18n import Translator, translator
from bot.core.models import User, WebSession
from bot.core.services.people import audit
from bot.core.services.web_login import session_for_cookie
from bot.core.timeutil import from_db
from bot.core.unit_words import titled
from bot.web.dashboard.scope import Scope, scope_for

CTX = web.AppKey("dashboard_ctx", AppContext)
JINJA = web.AppKey("dashboard_jinja", object)  # aiohttp_jinja2's environment, our own key
COOKIE = "papibot_dashboard"
PREFIX = "/dashboard"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a login link must never leave in a Referer
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
}


class OutOfScope(Exception):
    """Not there, or not this person's to see: both answer 404."""


@dataclass
class Visit:
    ctx: AppContext
    session: AsyncSession
    web_session: WebSession
    user: User
    scope: Scope
    request: web.Request

    @property
    def locale(self) -> str:
        return self.user.locale

    @property
    def _(self) -> Translator:
        return translator(self.locale)

    def render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        base = {
            "_": self._,
            "user": self.user,
            "scope": self.scope,
            "csrf": self.web_session.csrf_token,
            "locale": self.locale,
            "role_name": self.role_name(self.user.role),
            "user_title": self.user_title(),
            "prefix": PREFIX,
            "path": self.request.path_qs,
            "role_names": self.role_name,
            "channel_names": {
                "telegram": "Telegram",
                "zalo_bot": "Zalo Bot",
                "zalo_oa": "Zalo OA",
                "web": self._("chat simulator"),
            },
        }
        return render(self.request, template, {**base, **context}, status=status)

    def user_title(self) -> str:
        """The signed-in person's role at their unit, in the unit's own words."""
        try:
            return titled(self.ctx.framework, self.user.role, self.scope.unit, self.locale)
        except KeyError:
            return f"{self.role_name(self.user.role)} · {self.scope.unit.name}"

    def role_name(self, role: str) -> str:
        try:
            return self.ctx.framework.role_name(role, self.locale)
        except KeyError:
            return role

    def unit(self, unit_id: int) -> Any:
        if not self.scope.has_unit(unit_id):
            raise OutOfScope
        return self.scope.units[unit_id]

    @property
    def today(self) -> date:
        return datetime.now(self.ctx.settings.tz).date()


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    response = aiohttp_jinja2.render_template(
        template, request, context, app_key=JINJA, status=status
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def local_day(value: datetime | date | None, ctx: AppContext) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = from_db(value).astimezone(ctx.settings.tz).date()
    return value.strftime("%d/%m/%Y")


def local_moment(value: datetime | None, ctx: AppContext) -> str:
    if value is None:
        return ""
    return from_db(value).astimezone(ctx.settings.tz).strftime("%d/%m/%Y %H:%M")


Handler = Callable[[web.Request, Visit], Awaitable[web.StreamResponse]]


def _wrap(handler: Handler, html: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CTX]
        async with ctx.db.session() as session:
            web_session = await session_for_cookie(session, request.cookies.get(COOKIE, ""))
            user = await session.get(User, web_session.user_id) if web_session else None
            scope = await scope_for(session, ctx.framework, user) if user else None
            if web_session is None or user is None or scope is None:
                await session.rollback()
                if html and request.method == "GET":
                    raise web.HTTPSeeOther(f"{PREFIX}/login")
                return web.Response(status=401, text="401: sign in again", headers=SECURITY_HEADERS)
            visit = Visit(ctx, session, web_session, user, scope, request)
            if request.method == "POST":
                form = await request.post()
                given = str(form.get("csrf", ""))
                if not hmac.compare_digest(given.encode(), web_session.csrf_token.encode()):
                    await audit(session, "web.csrf_refused", request.path, user)
                    async with ctx.db.writer():
                        await session.commit()
                    return web.Response(status=403, text="403: form expired, reload the page")
            try:
                response = await handler(request, visit)
            except OutOfScope:
                await audit(session, "web.out_of_scope", request.path[:120], user)
                response = (
                    visit.render("not_found.html", status=404)
                    if html
                    else web.Response(status=404, text="404", headers=SECURITY_HEADERS)
                )
            if session.new or session.dirty or session.deleted:
                async with ctx.db.writer():
                    await session.commit()
            return response

    return wrapped


def page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    return _wrap(handler, html=True)


def resource(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    return _wrap(handler, html=False)


def int_arg(value: str | None, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if not value.isdigit() or len(value) > 12:
        raise OutOfScope
    return int(value)
