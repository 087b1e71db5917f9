"""The APScheduler wiring: a handful of periodic jobs, each only reading and writing the
database (no job per reminder), so a restart or a second worker loses and repeats nothing.

- plan     at start and daily at 00:05 local: occurrences of the planning horizon
- sweep    every minute: overdue statuses, escalations, reminders
- digests  daily at the digest time (07:30 local), and once shortly after start so that a
           morning spent down still gets today's digests (each is sent once per person and day)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.app.runtime import Runtime
from scheduler.commands import run_digest, run_plan, run_sweep
from scheduler.policy import load_policies

log = logging.getLogger(__name__)

JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 600}


def _job(
    runtime: Runtime, name: str, action: Callable[..., Awaitable[object]]
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            result = await action(runtime.ctx, datetime.now(UTC))
        except Exception:  # noqa: BLE001  (one failed pass must not stop the scheduler)
            log.exception("scheduler job %s failed", name)
            return
        log.info("%s: %s", name, result)
        runtime.sender.wake()

    run.__name__ = f"papibot_{name}"
    return run


def start_scheduler(runtime: Runtime) -> AsyncIOScheduler:
    """Build and start the scheduler on the running event loop; the caller shuts it down."""
    settings = runtime.ctx.settings
    tz = settings.tz
    digest_at = load_policies(settings).escalation.digests.at
    now = datetime.now(tz)
    scheduler = AsyncIOScheduler(timezone=tz, job_defaults=JOB_DEFAULTS)
    scheduler.add_job(
        _job(runtime, "plan", run_plan),
        CronTrigger(hour=0, minute=5, timezone=tz),
        id="plan",
        next_run_time=now,
    )
    scheduler.add_job(
        _job(runtime, "sweep", run_sweep),
        IntervalTrigger(minutes=1, timezone=tz),
        id="sweep",
        next_run_time=now + timedelta(seconds=20),
    )
    scheduler.add_job(
        _job(runtime, "digest", run_digest),
        CronTrigger(hour=digest_at.hour, minute=digest_at.minute, timezone=tz),
        id="digest",
        next_run_time=now + timedelta(seconds=40),
    )
    scheduler.start()
    return scheduler


__all__ = ["start_scheduler"]
