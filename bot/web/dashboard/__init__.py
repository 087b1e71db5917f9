"""The dashboard: server-rendered pages for communes, districts, agencies and the province,
behind a one-time link sent in chat (`/web`). Mounted under /dashboard by bot/app/server.py."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.core.context import AppContext
from bot.web.dashboard import analysis, export, login, occurrence, overview, pages
from bot.web.dashboard.visit import CTX, JINJA, PREFIX, local_day, local_moment

HERE = Path(__file__).resolve().parent


def add_dashboard_routes(app: web.Application, ctx: AppContext) -> None:
    app[CTX] = ctx
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        app_key=JINJA,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        filters={
            "day": lambda value: local_day(value, ctx),
            "moment": lambda value: local_moment(value, ctx),
            "percent": lambda value: "—" if value is None else f"{value:.0%}",
        },
        default_helpers=False,
    )
    add = app.router
    add.add_get(f"{PREFIX}/login", login.login_help)
    add.add_get(f"{PREFIX}/login/{{token}}", login.login_confirm)
    add.add_post(f"{PREFIX}/login", login.login)
    add.add_post(f"{PREFIX}/logout", login.logout)
    add.add_get(f"{PREFIX}/sessions", login.sessions_page)
    add.add_post(f"{PREFIX}/sessions/{{session_id}}/end", login.end_session_view)
    add.add_get(f"{PREFIX}", overview.overview)
    add.add_get(f"{PREFIX}/", overview.overview)
    add.add_get(f"{PREFIX}/u/{{unit_id}}", overview.overview)
    add.add_get(f"{PREFIX}/u/{{unit_id}}/tasks", pages.tasks_page)
    add.add_get(f"{PREFIX}/u/{{unit_id}}/overdue", pages.overdue_page)
    add.add_post(f"{PREFIX}/u/{{unit_id}}/followup", pages.follow_up)
    add.add_get(f"{PREFIX}/u/{{unit_id}}/photos", pages.photos_page)
    add.add_get(f"{PREFIX}/u/{{unit_id}}/people", pages.people_page)
    add.add_post(f"{PREFIX}/u/{{unit_id}}/invite", pages.invite)
    add.add_get(
        f"{PREFIX}/u/{{unit_id}}/{{what:tasks|overdue|people}}.{{fmt:xlsx|csv}}", export.export
    )
    add.add_get(f"{PREFIX}/analysis", analysis.analysis_page)
    add.add_get(f"{PREFIX}/o/{{occ_id}}", occurrence.occurrence_page)
    add.add_get(f"{PREFIX}/photo/{{evidence_id}}", occurrence.photo)
    add.add_get(f"{PREFIX}/photo/{{evidence_id}}/thumb", occurrence.thumbnail)
    add.add_static(f"{PREFIX}/static", HERE / "static", append_version=False)
