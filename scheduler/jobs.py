"""The APScheduler wiring: a handful of periodic jobs, each only reading and writing the
database (no job per reminder), so a restart or a second worker loses and repeats nothing.

- plan     at start and daily at 00:05 local: occurrences of the planning horizon
- sweep    every minute: overdue statuses, escalations, reminders
- digests  daily at the digest time (07:30 local), and once shortly after start so that a
           morning spent down still gets today's digests (each is sent once per person and day)
- uploads  at start and daily at 03:30 local: photos no submitted report claimed within a day
           leave the temporary area (files only; a restart loses nothing that matters)
- evidence daily at 16:30 local, and shortly after start: each commune officer's new reports
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.context import AppContext
from bot.core.services.evidence import purge_uploads
from scheduler.commands import run_digest, run_evidence_digest, run_plan, run_sweep
from scheduler.evidence_digest import SEND_AT as EVIDENCE_AT
from scheduler.policy import load_policies

log = logging.getLogger(__name__)

JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 600}


def _job(
    ctx: AppContext,
    wake_sender: Callable[[], None],
    name: str,
    action: Callable[..., Awaitable[object]],
    wake: bool = True,
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            result = await action(ctx, datetime.now(UTC))
        except Exception:  # noqa: BLE001  (one failed pass must not stop the scheduler)
            log.exception("scheduler job %s failed", name)
            return
        log.info("%s: %s", name, result)
        if wake:  # it may have queued messages
            wake_sender()

    run.__name__ = f"papibot_{name}"
    return run


async def run_purge_uploads(ctx: AppContext, now: datetime) -> str:
    purged = await asyncio.to_thread(purge_uploads, ctx.settings.data_dir, now)
    return f"{purged} unclaimed photos purged"


def start_scheduler(ctx: AppContext, wake_sender: Callable[[], None]) -> AsyncIOScheduler:
    """Build and start the scheduler on the running event loop; the caller shuts it down.
    `wake_sender` is called after each pass, so what it queued goes out at once."""
    settings = ctx.settings
    tz = settings.tz
    digest_at = load_policies(settings).escalation.digests.at
    now = datetime.now(tz)
    scheduler = AsyncIOScheduler(timezone=tz, job_defaults=JOB_DEFAULTS)
    scheduler.add_job(
        _job(ctx, wake_sender, "plan", run_plan),
        CronTrigger(hour=0, minute=5, timezone=tz),
        id="plan",
        next_run_time=now,
    )
    scheduler.add_job(
        _job(ctx, wake_sender, "sweep", run_sweep),
        IntervalTrigger(minutes=1, timezone=tz),
        id="sweep",
        next_run_time=now + timedelta(seconds=20),
    )
    scheduler.add_job(
        _job(ctx, wake_sender, "digest", run_digest),
        CronTrigger(hour=digest_at.hour, minute=digest_at.minute, timezone=tz),
        id="digest",
        next_run_time=now + timedelta(seconds=40),
    )
    scheduler.add_job(
        _job(ctx, wake_sender, "uploads", run_purge_uploads, wake=False),
        CronTrigger(hour=3, minute=30, timezone=tz),
        id="uploads",
        next_run_time=now,
    )
    scheduler.add_job(
        _job(ctx, wake_sender, "evidence", run_evidence_digest),
        CronTrigger(hour=EVIDENCE_AT.hour, minute=EVIDENCE_AT.minute, timezone=tz),
        id="evidence",
        next_run_time=now + timedelta(seconds=50),
    )
    scheduler.start()
    return scheduler


__all__ = ["start_scheduler"]
