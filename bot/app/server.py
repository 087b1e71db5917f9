"""The aiohttp server: health, status page, webhooks, the simulator; and `papibot run`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web
from sqlalchemy import text

from bot.app.runtime import Runtime, add_channel_routes, build_runtime
from bot.core.context import AppContext

log = logging.getLogger(__name__)

CTX_KEY = web.AppKey("ctx", AppContext)
RUNTIME_KEY = web.AppKey("runtime", Runtime)
MAX_BODY = 1024 * 1024  # webhooks carry JSON; a photo upload in the simulator is checked apart


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    try:
        async with ctx.db.session() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception as exc:  # noqa: BLE001  (health must answer, not raise)
        return web.json_response({"status": "error", "database": str(exc)[:200]}, status=503)
    return web.json_response({"status": "ok"})


def build_app(runtime: Runtime) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[CTX_KEY] = runtime.ctx
    app[RUNTIME_KEY] = runtime
    app.router.add_get("/healthz", healthz)
    from bot.web.status_page import add_routes as add_status_routes

    add_status_routes(app)
    add_channel_routes(runtime, app)
    return app


async def start_runtime(runtime: Runtime) -> list[asyncio.Task]:
    """Channels, sender and scheduler as background tasks; returns them for stopping."""
    for channel in runtime.channels.values():
        await channel.start()
    runtime.dispatcher.inbox.start()  # first, what a previous run recorded and did not handle
    tasks = [asyncio.create_task(runtime.sender.run(), name="sender")]
    if runtime.ctx.settings.scheduler_enabled:
        try:
            from scheduler.jobs import start_scheduler
        except ImportError:
            log.warning("scheduler not available")
        else:
            runtime_scheduler = start_scheduler(runtime)
            tasks.append(asyncio.create_task(_hold(runtime_scheduler), name="scheduler"))
    return tasks


async def _hold(scheduler) -> None:  # noqa: ANN001
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.shutdown(wait=False)


async def stop_runtime(runtime: Runtime, tasks: list[asyncio.Task]) -> None:
    runtime.sender.stop()
    for channel in runtime.channels.values():
        with contextlib.suppress(Exception):
            await channel.stop()
    await runtime.dispatcher.inbox.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_forever(ctx: AppContext) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    runtime = build_runtime(ctx)
    app = build_app(runtime)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, ctx.settings.http_host, ctx.settings.http_port)
    await site.start()
    tasks = await start_runtime(runtime)
    base = f"http://{ctx.settings.http_host}:{ctx.settings.http_port}"
    print(f"papibot is running at {base}/ — chat simulator: {base}/sim", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await stop_runtime(runtime, tasks)
    await runner.cleanup()
