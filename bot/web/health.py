"""`GET /healthz`: ok only when papibot can do its work: the database answers and takes writes,
the data directory takes files, and the disk is not nearly full. A refusal gives a short reason,
never an exception's text (it may name paths, hosts or users)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from aiohttp import web
from sqlalchemy import text

from bot.core.config import Settings
from bot.core.db import Database
from bot.web.keys import CTX_KEY

log = logging.getLogger(__name__)

DATABASE_TIMEOUT_SECONDS = 5.0


async def _database_problem(db: Database) -> str:
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
            async with db.session() as session:
                await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
                if db.engine.dialect.name == "postgresql":
                    result = await session.exec(text("SHOW transaction_read_only"))  # type: ignore[call-overload]
                    if str(result.scalar()).lower() == "on":
                        return "database is read-only"
    except Exception as error:  # noqa: BLE001  (health must answer, not raise)
        log.warning("healthz: database check failed: %s", type(error).__name__)
        return "database unavailable"
    name = db.engine.url.database if db.engine.dialect.name == "sqlite" else None
    if name and name != ":memory:":
        database = Path(name)
        for path in (database, database.parent):
            if path.exists() and not os.access(path, os.W_OK):
                return "database is not writable"
    return ""


def _data_dir_problem(settings: Settings) -> str:
    data_dir = Path(settings.data_dir)
    probe = data_dir / f".healthz-{os.getpid()}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError:
        return "data directory is not writable"
    try:
        free = shutil.disk_usage(data_dir).free
    except OSError:
        return "data directory is not writable"
    if free < settings.min_free_disk_mb * 1024 * 1024:
        return "disk nearly full"
    return ""


async def health_problem(settings: Settings, db: Database) -> str:
    """Why papibot cannot work right now, in a few words; empty when it can."""
    return await _database_problem(db) or await asyncio.to_thread(_data_dir_problem, settings)


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    reason = await health_problem(ctx.settings, ctx.db)
    if reason:
        return web.json_response({"status": "error", "reason": reason}, status=503)
    return web.json_response({"status": "ok"})
