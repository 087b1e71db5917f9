"""The aiohttp server: health, status page, and (via bot.web) webhooks and the simulator."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from bot.context import AppContext

log = logging.getLogger(__name__)

CTX_KEY = web.AppKey("ctx", AppContext)


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    from sqlalchemy import text

    try:
        async with ctx.db.session() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception as exc:  # noqa: BLE001  (health must answer, not raise)
        return web.json_response({"status": "error", "database": str(exc)[:200]}, status=503)
    return web.json_response({"status": "ok"})


def build_app(ctx: AppContext) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[CTX_KEY] = ctx
    app.router.add_get("/healthz", healthz)
    from bot.web.status_page import add_routes as add_status_routes

    add_status_routes(app)
    return app


async def run_forever(ctx: AppContext) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = build_app(ctx)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, ctx.settings.http_host, ctx.settings.http_port)
    await site.start()
    url = f"http://{ctx.settings.http_host}:{ctx.settings.http_port}/"
    print(f"papibot is running at {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()
