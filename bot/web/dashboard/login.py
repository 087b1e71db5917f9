"""Signing in with the link sent in chat, signing out, and the list of one's sessions.

Opening the link shows a button rather than signing in at once: chat apps fetch links to draw
a preview, and that fetch must not use up the link."""

from __future__ import annotations

from aiohttp import web

from bot.core.i18n import translator
from bot.core.models import User, WebSession
from bot.core.services.people import audit
from bot.core.services.web_login import (
    SESSION_ABSOLUTE,
    LoginProblem,
    end_session,
    live_sessions,
    redeem_login_link,
)
from bot.web.dashboard.visit import COOKIE, CTX, PREFIX, OutOfScope, Visit, page, render


def _anonymous(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    ctx = request.app[CTX]
    locale = ctx.settings.locale
    return render(
        request,
        template,
        {"_": translator(locale), "locale": locale, "prefix": PREFIX, "user": None, **context},
        status=status,
    )


async def login_help(request: web.Request) -> web.Response:
    return _anonymous(request, "login.html")


async def login_confirm(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    return _anonymous(request, "login_confirm.html", token=token)


async def login(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    form = await request.post()
    token = str(form.get("token", ""))
    async with ctx.db.writer(), ctx.db.session() as session:
        try:
            web_session, cookie = await redeem_login_link(
                session, token, request.headers.get("User-Agent", "")
            )
        except LoginProblem as problem:
            await audit(session, "web.login_refused", request.remote or "", reason=problem.reason)
            await session.commit()
            return _anonymous(request, "login.html", status=403, refused=problem.reason)
        user = await session.get(User, web_session.user_id)
        await audit(
            session, "web.login", f"web_session:{web_session.id}", user, ip=request.remote or ""
        )
        await session.commit()
    response = web.HTTPSeeOther(f"{PREFIX}/")
    response.set_cookie(
        COOKIE,
        cookie,
        path=PREFIX,
        max_age=int(SESSION_ABSOLUTE.total_seconds()),
        httponly=True,
        secure=ctx.settings.public_url.startswith("https://"),
        samesite="Lax",
    )
    raise response


@page
async def logout(request: web.Request, visit: Visit) -> web.StreamResponse:
    end_session(visit.session, visit.web_session, "logout")
    await audit(visit.session, "web.logout", f"web_session:{visit.web_session.id}", visit.user)
    async with visit.ctx.db.writer():
        await visit.session.commit()
    response = web.HTTPSeeOther(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    raise response


@page
async def sessions_page(request: web.Request, visit: Visit) -> web.Response:
    rows = await live_sessions(visit.session, visit.user.id)
    return visit.render(
        "sessions.html",
        title=visit._("Signed-in browsers"),
        unit=visit.scope.unit,
        trail=[],
        rows=rows,
        current_id=visit.web_session.id,
    )


@page
async def end_session_view(request: web.Request, visit: Visit) -> web.StreamResponse:
    raw = request.match_info["session_id"]
    target = await visit.session.get(WebSession, int(raw)) if raw.isdigit() else None
    if target is None or target.user_id != visit.user.id:
        raise OutOfScope
    if target.ended_at is None:
        end_session(visit.session, target, "revoked")
        await audit(visit.session, "web.session_ended", f"web_session:{target.id}", visit.user)
    if target.id == visit.web_session.id:
        async with visit.ctx.db.writer():
            await visit.session.commit()
        response = web.HTTPSeeOther(f"{PREFIX}/login")
        response.del_cookie(COOKIE, path=PREFIX)
        raise response
    async with visit.ctx.db.writer():
        await visit.session.commit()
    raise web.HTTPSeeOther(f"{PREFIX}/sessions")
