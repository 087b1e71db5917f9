"""What `papibot sweep|digest [--now ISO]` and the scheduler jobs run: one call each, returning
a report whose str() is a one-line summary for the operator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.core.context import AppContext
from scheduler.digests import DigestReport, run_digests
from scheduler.evidence_digest import EvidenceDigestReport, run_evidence_digests
from scheduler.planner import PlanReport, plan
from scheduler.reminders import SweepReport, sweep


@dataclass
class PlanRun:
    report: PlanReport

    def summary(self) -> str:
        return self.report.summary()

    def __str__(self) -> str:
        return self.summary()


def _aware(now: datetime, ctx: AppContext) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=ctx.settings.tz)


async def run_plan(ctx: AppContext, now: datetime) -> PlanRun:
    """Create the occurrences of the planning horizon (idempotent). On SQLite each (task,
    period) is committed on its own: one transaction for a national plan would hold the only
    writer lock for over a minute, and the sweep and the sender fail meanwhile. On PostgreSQL
    the rows go in on `plan_connections` connections side by side."""
    today = _aware(now, ctx).astimezone(ctx.settings.tz).date()
    async with ctx.db.session() as session:
        report = await plan(
            session,
            ctx.framework,
            ctx.settings,
            today,
            commit_each=ctx.db.is_sqlite,
            connections=ctx.settings.plan_connections,
        )
        await session.commit()
    return PlanRun(report)


async def run_sweep(ctx: AppContext, now: datetime) -> SweepReport:
    """Overdue statuses, escalations and reminders due at `now` (naive: local time)."""
    return await sweep(ctx.db, ctx, _aware(now, ctx))


async def run_digest(ctx: AppContext, now: datetime) -> DigestReport:
    """The digests due on `now`'s day, if its digest time has come (naive: local time)."""
    return await run_digests(ctx.db, ctx, _aware(now, ctx))


async def run_evidence_digest(ctx: AppContext, now: datetime) -> EvidenceDigestReport:
    """Each commune officer's message of the villages' new reports, once its time has come."""
    return await run_evidence_digests(ctx.db, ctx, _aware(now, ctx))


__all__ = ["run_digest", "run_evidence_digest", "run_plan", "run_sweep"]
