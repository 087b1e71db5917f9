"""Dashboard pages at scale: server time per page (median and worst of `repeats` requests),
for a province officer, a district officer and a commune officer, on a generated dataset.

    python -m bench.run --scale province --only dashboard --database sqlite

Server time is measured inside the app (a middleware around the handler, so it includes the
session check, the scope, the queries and the rendering, not the client). The target is
≤ 200 ms per page at province scale with 24 months of history."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import col, select

TARGET_SECONDS = 0.2


async def _people(ctx) -> dict[str, Any]:  # noqa: ANN001
    """One signed-in user per level (created for the run, removed after), and what to open."""
    from bot.core.models import Level, Occurrence, Unit
    from bot.core.services.people import add_user
    from bot.core.services.web_login import create_login_link, redeem_login_link

    async with ctx.db.session() as session:
        province = (
            await session.exec(
                select(Unit).where(Unit.level == Level.province).order_by(col(Unit.id))
            )
        ).first()
        district = (
            await session.exec(
                select(Unit)
                .where(Unit.level == Level.district, Unit.parent_id == province.id)
                .order_by(col(Unit.id))
            )
        ).first()
        commune = (
            await session.exec(
                select(Unit)
                .where(Unit.level == Level.commune, Unit.parent_id == district.id)
                .order_by(col(Unit.id))
            )
        ).first()
        occurrence = (
            await session.exec(
                select(Occurrence)
                .where(Occurrence.unit_id == commune.id)
                .order_by(col(Occurrence.due_at).desc())
            )
        ).first()
        users = {
            "province": await add_user(session, province, "province_committee", "bench"),
            "district": await add_user(session, district, "district_committee", "bench"),
            "commune": await add_user(session, commune, "commune_committee", "bench"),
        }
        cookies = {}
        for level, user in users.items():
            url = await create_login_link(session, user, ctx.settings)
            _web_session, cookie = await redeem_login_link(session, url.rsplit("/", 1)[1])
            cookies[level] = cookie
        await session.commit()
    return {
        "cookies": cookies,
        "users": users,
        "province": province,
        "district": district,
        "commune": commune,
        "occurrence": occurrence,
    }


def _pages(found: dict[str, Any]) -> list[tuple[str, str]]:
    p, d, c = found["province"].id, found["district"].id, found["commune"].id
    occurrence = found["occurrence"].id
    return [
        ("province", "/dashboard/?p=quarter"),
        ("province", "/dashboard/?p=year"),
        ("province", f"/dashboard/u/{p}/overdue"),
        ("province", f"/dashboard/u/{p}/tasks"),
        ("district", "/dashboard/?p=quarter"),
        ("district", "/dashboard/?p=year"),
        ("district", f"/dashboard/u/{d}/tasks?status=overdue"),
        ("district", f"/dashboard/u/{d}/overdue"),
        ("district", f"/dashboard/u/{d}/photos"),
        ("district", f"/dashboard/u/{d}/people"),
        ("district", f"/dashboard/u/{d}/overdue.xlsx"),
        ("commune", "/dashboard/?p=year"),
        ("commune", f"/dashboard/u/{c}/tasks"),
        ("commune", f"/dashboard/u/{c}/tasks.xlsx?p=year"),
        ("commune", f"/dashboard/o/{occurrence}"),
    ]


async def _cleanup(ctx, found: dict[str, Any]) -> None:  # noqa: ANN001
    from sqlmodel import delete

    from bot.core.models import AuditLog, User, WebLoginLink, WebSession

    ids = [user.id for user in found["users"].values()]
    async with ctx.db.session() as session:
        for model in (WebSession, WebLoginLink):
            await session.exec(delete(model).where(col(model.user_id).in_(ids)))
        await session.exec(delete(AuditLog).where(col(AuditLog.actor_user_id).in_(ids)))
        await session.exec(delete(User).where(col(User.id).in_(ids)))
        await session.commit()


async def bench_dashboard(out, database: str, url: str, repeats: int) -> None:  # noqa: ANN001
    from bench.run import context_for
    from bot.app.runtime import build_runtime
    from bot.app.server import build_app
    from bot.web.dashboard.visit import COOKIE

    with tempfile.TemporaryDirectory() as folder:
        ctx = context_for(url, Path(folder), scheduler_enabled=False)
        found = await _people(ctx)
        timings: dict[str, list[float]] = {}

        @web.middleware
        async def timer(request: web.Request, handler):  # noqa: ANN001, ANN202
            started = time.perf_counter()
            try:
                return await handler(request)
            finally:
                timings.setdefault(request.path_qs, []).append(time.perf_counter() - started)

        app = build_app(build_runtime(ctx))
        app.middlewares.append(timer)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            for level, path in _pages(found):
                headers = {"Cookie": f"{COOKIE}={found['cookies'][level]}"}
                for _ in range(repeats + 1):  # the first warms the caches; not counted
                    response = await client.get(path, headers=headers, allow_redirects=False)
                    await response.read()
                    assert response.status == 200, (path, response.status)
                measured = timings[path][1:]
                timings[path] = []
                median = statistics.median(measured)
                out.emit(
                    "dashboard",
                    database,
                    "page_ms",
                    round(median * 1000, 1),
                    "ms",
                    page=path,
                    user=level,
                    worst_ms=round(max(measured) * 1000, 1),
                    target=f"<= {TARGET_SECONDS * 1000:.0f}",
                    met=max(measured) <= TARGET_SECONDS,
                )
        finally:
            await client.close()
            await _cleanup(ctx, found)
            await ctx.db.dispose()
