"""A plain status page for operations: what is due, and where."""

from __future__ import annotations

import html

from aiohttp import web

from bot.core.services.status import status_rows


async def status_page(request: web.Request) -> web.Response:
    from bot.app.server import CTX_KEY

    ctx = request.app[CTX_KEY]
    async with ctx.db.session() as session:
        rows = await status_rows(session, limit=200)
    tz = ctx.settings.tz
    body = "".join(
        f"<tr><td>{html.escape(r.unit_name)}</td><td>{html.escape(r.task_key)}</td>"
        f"<td>{html.escape(r.period)}</td><td>{r.due_at.astimezone(tz):%d/%m/%Y}</td>"
        f"<td>{html.escape(r.status)}</td></tr>"
        for r in rows
    )
    page = (
        "<!doctype html><html lang='vi'><meta charset='utf-8'><title>papibot</title>"
        "<body style='font-family:sans-serif'><h1>papibot</h1>"
        "<p><a href='/sim'>Mô phỏng trò chuyện (web)</a> · <a href='/healthz'>healthz</a></p>"
        "<h2>Việc sắp đến hạn (200 dòng đầu)</h2><table border=1 cellpadding=4>"
        "<tr><th>Đơn vị</th><th>Nhiệm vụ</th><th>Kỳ</th><th>Hạn</th><th>Trạng thái</th></tr>"
        f"{body}</table></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", status_page)
