"""The aiohttp server: health, landing page, webhooks, media, the simulator; `papibot run`, and
`papibot worker` (the same work without the server: inbox, sweeps, outbox)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from bot.app.runtime import Runtime, add_channel_routes, build_runtime, worker_channels
from bot.core import logsafe
from bot.core.context import AppContext
from bot.web.keys import CTX_KEY, SENDER_KEY
from bot.web.media import add_media_routes
from bot.web.sim import add_routes as add_simulator_routes
from bot.web.sim_channel import WebChannel

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # webhooks carry JSON; a photo upload in the simulator is checked apart
STOP_SECONDS = 5.0  # a clean stop waits this long for the webhooks and the batch in hand


def body_deadline(seconds: float):  # noqa: ANN201
    """A request's body must have arrived `seconds` after it began: a slow (or stalled) sender
    gets 408 and the connection is closed, instead of holding a handler. A client that goes
    away mid-body is not our error: logged at DEBUG, no traceback."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:  # noqa: ANN001
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        task = asyncio.ensure_future(handler(request))
        try:
            done, _pending = await asyncio.wait({task}, timeout=seconds)
            if not done and not request.content.is_eof():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                log.info("%s %s: request body too slow; answered 408", request.method, request.path)
                response = web.Response(status=408, text="request body too slow")
                response.force_close()
                return response
            return await task
        except (ConnectionResetError, aiohttp.ClientPayloadError) as error:
            if request.content.exception() is None:
                raise  # not this request's body: a call the handler made failed
            log.debug("%s %s: client went away (%s)", request.method, request.path, error)
            response = web.Response(status=400, text="incomplete request")
            response.force_close()
            return response
        finally:
            if not task.done():
                task.cancel()

    return middleware


def build_app(runtime: Runtime) -> web.Application:
    from bot.web.dashboard import add_dashboard_routes
    from bot.web.health import healthz
    from bot.web.status_page import add_routes as add_landing_routes

    settings = runtime.ctx.settings
    app = web.Application(
        client_max_size=MAX_BODY, middlewares=[body_deadline(settings.http_body_timeout_seconds)]
    )
    app[CTX_KEY] = runtime.ctx
    app[SENDER_KEY] = runtime.sender
    app.router.add_get("/healthz", healthz)
    add_landing_routes(app, simulator="web" in runtime.channels)
    add_dashboard_routes(app, runtime.ctx)
    add_channel_routes(runtime, app)
    simulator = runtime.channels.get("web")
    if isinstance(simulator, WebChannel):
        add_simulator_routes(app, simulator)
    if settings.public_url:  # signed links to charts, evidence, exports need a public URL
        add_media_routes(app, runtime.ctx)
    return app


def served(app: web.Application) -> list[str]:
    """What the app answers, for the start-up banner (the simulator and the dashboard as one
    entry each)."""
    entries: list[str] = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith(("/sim", "/dashboard")):
            path, method = "/" + path.split("/")[1], "GET"
        else:
            method = route.method
        entry = path if method == "GET" else f"{method} {path}"
        if entry not in entries:
            entries.append(entry)
    return entries


async def start_runtime(runtime: Runtime, receive: bool = True) -> list[asyncio.Task]:
    """Channels, sender and scheduler as background tasks; returns them for stopping.
    `receive` False (a worker): the channels are not started, so no webhook is set and no
    polling begins; they send and download only."""
    if receive:
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
            runtime_scheduler = start_scheduler(runtime.ctx, wake_sender=runtime.sender.wake)
            tasks.append(asyncio.create_task(_hold(runtime_scheduler), name="scheduler"))
    return tasks


async def _hold(scheduler) -> None:  # noqa: ANN001
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.shutdown(wait=False)


async def stop_runtime(runtime: Runtime, tasks: list[asyncio.Task]) -> None:
    """A clean stop, in the order that leaves nothing half done: the inbox's worker finishes
    the update in hand (no new replies after it), the sender finishes the batch in hand (every
    message the platform accepted is marked sent, so the next start repeats none), and only
    then do the channels close their clients; the scheduler goes last. A batch that takes
    longer than STOP_SECONDS is left to its lease: the next start sends what was not marked."""
    await runtime.dispatcher.inbox.stop()
    runtime.sender.stop()
    sender = [task for task in tasks if task.get_name() == "sender"]
    if sender:
        await asyncio.wait(sender, timeout=STOP_SECONDS)
    for channel in runtime.channels.values():
        with contextlib.suppress(Exception):
            await channel.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class ZonedFormatter(logging.Formatter):
    """Log times in the deployment's zone, with the zone: `2026-12-01 09:30:00 +07`."""

    def __init__(self, tz: ZoneInfo) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, self.tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def configure_logging(tz: ZoneInfo) -> None:
    """What an operator wants to read: our INFO lines, the libraries' warnings, and no access
    line per request (the simulator polls every second)."""
    handler = logging.StreamHandler()
    handler.setFormatter(ZonedFormatter(tz))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for noisy in ("aiohttp.access", "httpx", "apscheduler", "telegram"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")


async def run_worker(ctx: AppContext) -> None:
    """Handle the inbox, run the sweeps and drain the outbox, with no HTTP server, until
    SIGTERM or SIGINT. Any number of them may run beside `papibot run` on one PostgreSQL."""
    configure_logging(ctx.settings.tz)
    logsafe.install(ctx.settings)
    runtime = build_runtime(ctx, make_channels=worker_channels)
    tasks = await start_runtime(runtime, receive=False)
    jobs = "sweeps, " if ctx.settings.scheduler_enabled else ""
    print(
        f"papibot worker is running (pid {os.getpid()}): inbox, {jobs}outbox for "
        f"{', '.join(runtime.channels) or 'no channel'}",
        flush=True,
    )
    await _until_stopped()
    await stop_runtime(runtime, tasks)


async def run_forever(ctx: AppContext) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly."""
    configure_logging(ctx.settings.tz)
    logsafe.install(ctx.settings)  # after the handlers exist: it guards each of them
    runtime = build_runtime(ctx)
    app = build_app(runtime)
    runner = web.AppRunner(app, shutdown_timeout=STOP_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, ctx.settings.http_host, ctx.settings.http_port)
    await site.start()
    tasks = await start_runtime(runtime)
    base = f"http://{ctx.settings.http_host}:{ctx.settings.http_port}"
    print(f"papibot is running at {base}/ — serving {', '.join(served(app))}", flush=True)
    await _until_stopped()
    # No new webhooks first: those in flight finish recording (the platform gets its 200),
    # then the runtime stops behind them.
    await runner.cleanup()
    await stop_runtime(runtime, tasks)
