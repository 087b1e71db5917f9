"""Checks on a report's photos when it is submitted: reused, old, in the future, far away, or a
screenshot. Each finding is an `EvidenceFlag` row with what it was compared with; none blocks
the report. The rules are data: framework_data/evidence_checks.yaml (per task too).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.config import Settings
from bot.core.framework.loader import load_model_file
from bot.core.i18n import Translator
from bot.core.models import Evidence, EvidenceFlag, Occurrence, Report, TaskDefinition, Unit
from bot.core.services.fingerprints import (
    Fingerprint,
    fingerprint,
    near_duplicates,
    record_fingerprint,
)
from bot.core.timeutil import from_db

CHECKS = ("reused", "stale", "future", "far", "screenshot")
POLICY_FILE = "evidence_checks.yaml"
# Short sides of phone screens (px) and the long/short ratios of their screens.
PHONE_SHORT_SIDES = {640, 720, 750, 828, 1080, 1125, 1170, 1179, 1242, 1284, 1290, 1440}
PHONE_RATIO = (1.7, 2.4)
EARTH_KM = 6371.0


def _known_checks(names: list[str] | None) -> list[str] | None:
    for name in names or []:
        if name not in CHECKS:
            raise ValueError(f"unknown check `{name}` (known: {', '.join(CHECKS)})")
    return names


class TaskChecks(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checks: list[str] | None = None  # None: the general list
    allow_same_task_reuse: bool = False

    @field_validator("checks")
    @classmethod
    def _known(cls, names: list[str] | None) -> list[str] | None:
        return _known_checks(names)


class CheckPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checks: list[str] = Field(default_factory=lambda: list(CHECKS))
    reuse_max_distance: int = Field(default=7, ge=0, le=15)
    stale_days: int = Field(default=45, ge=1)
    stale_before_window: bool = True
    future_tolerance_hours: int = Field(default=24, ge=0)
    far_km: float = Field(default=15.0, gt=0)
    far_min_history: int = Field(default=3, ge=1)
    tasks: dict[str, TaskChecks] = Field(default_factory=dict)

    @field_validator("checks")
    @classmethod
    def _known(cls, names: list[str] | None) -> list[str] | None:
        return _known_checks(names)

    def for_task(self, task_key: str) -> tuple[set[str], bool]:
        """The checks that apply to this task, and whether its own earlier photos may return."""
        task = self.tasks.get(task_key, TaskChecks())
        return set(task.checks if task.checks is not None else self.checks), (
            task.allow_same_task_reuse
        )


@lru_cache(maxsize=8)
def _policy(base_dir: Path, override_dir: Path | None) -> CheckPolicy:
    return load_model_file(POLICY_FILE, CheckPolicy, base_dir, override_dir)


def load_check_policy(settings: Settings) -> CheckPolicy:
    """The checks for these settings (read once per process)."""
    overrides = settings.framework_overrides
    return _policy(
        Path(settings.framework_dir).resolve(), Path(overrides).resolve() if overrides else None
    )


@dataclass
class FlagContext:
    """What a check compares a photo with."""

    report: Report
    occurrence: Occurrence
    unit: Unit
    now: datetime  # aware
    tz: ZoneInfo


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(math.sqrt(a))


def looks_like_screenshot(print_: Fingerprint, evidence: Evidence) -> bool:
    """No camera in the EXIF, no capture time, and the shape of a phone's screen."""
    if print_.camera or evidence.taken_at is not None:
        return False
    short, long = sorted((print_.width, print_.height))
    return short in PHONE_SHORT_SIDES and PHONE_RATIO[0] <= long / short <= PHONE_RATIO[1]


async def _reused(
    session: AsyncSession,
    ctx: FlagContext,
    evidence: Evidence,
    print_: Fingerprint,
    policy: CheckPolicy,
    same_task_ok: bool,
    own_ids: set[int],
) -> dict[str, Any] | None:
    matches = await near_duplicates(session, print_.phash, policy.reuse_max_distance, own_ids)
    if not matches:
        return None
    by_id = dict(matches)
    rows = await session.exec(
        select(Evidence, Report, Occurrence, Unit)
        .join(Report, col(Report.id) == Evidence.report_id)
        .join(Occurrence, col(Occurrence.id) == Report.occurrence_id)
        .join(Unit, col(Unit.id) == Occurrence.unit_id)
        .where(col(Evidence.id).in_(list(by_id)), col(Report.status) != "draft")
        .where(col(Report.status) != "cancelled")
    )
    candidates = []
    for earlier, _report, occurrence, unit in rows.all():
        same_task = occurrence.task_key == ctx.occurrence.task_key
        if same_task and unit.id == ctx.unit.id and same_task_ok:
            continue
        if occurrence.id == ctx.occurrence.id:
            continue  # sent again for the same period (say, after it was returned): not a reuse
        relation = (
            "other_unit"
            if unit.id != ctx.unit.id
            else "earlier_period"
            if same_task
            else "other_task"
        )
        candidates.append((by_id[earlier.id], earlier, occurrence, unit, relation))
    if not candidates:
        return None
    bits, earlier, occurrence, unit, relation = min(candidates, key=lambda c: (c[0], -c[1].id))
    return {
        "relation": relation,
        "evidence_id": earlier.id,
        "occurrence_id": occurrence.id,
        "task_key": occurrence.task_key,
        "period": occurrence.period,
        "unit_id": unit.id,
        "unit_name": unit.name,
        "distance": bits,
    }


def _stale(ctx: FlagContext, evidence: Evidence, policy: CheckPolicy) -> dict[str, Any] | None:
    if evidence.taken_at is None:
        return None
    taken = evidence.taken_at.replace(tzinfo=ctx.tz)  # the camera's clock, in local time
    reported = from_db(ctx.report.submitted_at or ctx.now)
    opened = from_db(ctx.occurrence.window_start)
    if policy.stale_before_window and taken < opened:
        return {
            "taken_at": taken.isoformat(),
            "before": "window",
            "window_start": opened.isoformat(),
        }
    if reported - taken > timedelta(days=policy.stale_days):
        return {"taken_at": taken.isoformat(), "before": "days", "days": (reported - taken).days}
    return None


def _future(ctx: FlagContext, evidence: Evidence, policy: CheckPolicy) -> dict[str, Any] | None:
    if evidence.taken_at is None:
        return None
    taken = evidence.taken_at.replace(tzinfo=ctx.tz)
    if taken - from_db(ctx.now) > timedelta(hours=policy.future_tolerance_hours):
        return {"taken_at": taken.isoformat()}
    return None


async def _far(
    session: AsyncSession, ctx: FlagContext, evidence: Evidence, policy: CheckPolicy
) -> dict[str, Any] | None:
    if evidence.gps_lat is None or evidence.gps_lon is None:
        return None
    rows = await session.exec(
        select(Evidence.gps_lat, Evidence.gps_lon)
        .join(Report, col(Report.id) == Evidence.report_id)
        .join(Occurrence, col(Occurrence.id) == Report.occurrence_id)
        .where(
            Occurrence.unit_id == ctx.unit.id,
            Evidence.report_id != ctx.report.id,
            col(Evidence.gps_lat).is_not(None),
            col(Evidence.gps_lon).is_not(None),
            col(Report.status).not_in(["draft", "cancelled"]),
        )
        .order_by(col(Evidence.id).desc())
        .limit(200)  # where the unit photographs lately is what matters
    )
    history = rows.all()
    if len(history) < policy.far_min_history:
        return None
    center_lat = statistics.median(lat for lat, _ in history)
    center_lon = statistics.median(lon for _, lon in history)
    km = haversine_km(evidence.gps_lat, evidence.gps_lon, center_lat, center_lon)
    if km <= policy.far_km:
        return None
    return {"km": round(km, 1), "center": [round(center_lat, 5), round(center_lon, 5)]}


async def find_flags(
    session: AsyncSession, settings: Settings, ctx: FlagContext
) -> tuple[list[EvidenceFlag], list[tuple[Evidence, Fingerprint]]]:
    """What the checks find in the report's photos, written nowhere yet (the review card shows
    it before the person sends), with each photo's fingerprint."""
    policy = load_check_policy(settings)
    enabled, same_task_ok = policy.for_task(ctx.occurrence.task_key)
    photos = (await session.exec(select(Evidence).where(Evidence.report_id == ctx.report.id))).all()
    own_ids = {photo.id for photo in photos}
    prints: list[tuple[Evidence, Fingerprint]] = []
    for photo in photos:
        try:
            print_ = fingerprint((Path(settings.data_dir) / photo.path).read_bytes())
        except (OSError, ValueError, SyntaxError):
            continue  # a missing or unreadable file is not the person's fault
        prints.append((photo, print_))
    flags: list[EvidenceFlag] = []
    for photo, print_ in prints:
        found: dict[str, dict[str, Any] | None] = {}
        if "reused" in enabled:
            found["reused"] = await _reused(
                session, ctx, photo, print_, policy, same_task_ok, own_ids
            )
        if "stale" in enabled:
            found["stale"] = _stale(ctx, photo, policy)
        if "future" in enabled:
            found["future"] = _future(ctx, photo, policy)
        if "far" in enabled:
            found["far"] = await _far(session, ctx, photo, policy)
        if "screenshot" in enabled and looks_like_screenshot(print_, photo):
            found["screenshot"] = {"width": print_.width, "height": print_.height}
        flags.extend(
            EvidenceFlag(evidence_id=photo.id, report_id=ctx.report.id, kind=kind, detail=detail)
            for kind, detail in found.items()
            if detail is not None
        )
    return flags, prints


async def check_report(
    session: AsyncSession, settings: Settings, ctx: FlagContext
) -> list[EvidenceFlag]:
    """On submission: the flags recorded, and the photos' fingerprints stored (once) so later
    reports are compared with them."""
    flags, prints = await find_flags(session, settings, ctx)
    for photo, print_ in prints:
        record_fingerprint(session, photo.id, print_)
    session.add_all(flags)
    await session.flush()
    return flags


async def flags_of_reports(
    session: AsyncSession, report_ids: list[int]
) -> dict[int, list[EvidenceFlag]]:
    """The flags of these reports, by report id (for reviews, digests and pages)."""
    found: dict[int, list[EvidenceFlag]] = {report_id: [] for report_id in report_ids}
    if not report_ids:
        return found
    rows = await session.exec(
        select(EvidenceFlag)
        .where(col(EvidenceFlag.report_id).in_(report_ids))
        .order_by(col(EvidenceFlag.id))
    )
    for flag in rows.all():
        found[flag.report_id].append(flag)
    return found


def describe_flag(
    flag: EvidenceFlag, _: Translator, task_titles: dict[str, str], due_days: dict[int, str]
) -> str:
    """One sentence a person can act on. `task_titles` by task key, `due_days` (dd/mm/yyyy)
    by occurrence id, for the occurrence a reused photo was first sent for."""
    detail = flag.detail
    if flag.kind == "reused":
        title = task_titles.get(detail.get("task_key", ""), detail.get("task_key", ""))
        due = due_days.get(int(detail.get("occurrence_id", 0)), "")
        if detail.get("relation") == "other_unit":
            return _("This photo was already sent by {unit} for “{title}” (due {due}).").format(
                unit=detail.get("unit_name", ""), title=title, due=due
            )
        return _("This photo was already sent for “{title}” (due {due}).").format(
            title=title, due=due
        )
    if flag.kind == "stale":
        taken = datetime.fromisoformat(detail["taken_at"]).strftime("%d/%m/%Y")
        if detail.get("before") == "window":
            return _("This photo was taken on {day}, before this period began.").format(day=taken)
        return _("This photo was taken on {day}, {days} days before the report.").format(
            day=taken, days=detail.get("days", "")
        )
    if flag.kind == "future":
        taken = datetime.fromisoformat(detail["taken_at"]).strftime("%d/%m/%Y")
        return _(
            "The photo says it was taken on {day}, in the future: the camera's clock may be wrong."
        ).format(day=taken)
    if flag.kind == "far":
        return _(
            "This photo was taken about {km} km from where this unit's photos usually are."
        ).format(km=detail.get("km", ""))
    return _("This looks like a screenshot rather than a photo taken on the spot.")


async def flag_sentences(
    session: AsyncSession, flags: list[EvidenceFlag], _: Translator, tz: ZoneInfo
) -> list[str]:
    """`describe_flag` for each flag, with the titles and due dates it names, one sentence per
    finding (two photos of one report reused from the same place say it once)."""
    keys = {flag.detail.get("task_key") for flag in flags if flag.kind == "reused"}
    occurrence_ids = [int(flag.detail["occurrence_id"]) for flag in flags if flag.kind == "reused"]
    titles: dict[str, str] = {}
    if keys:
        rows = await session.exec(
            select(TaskDefinition.key, TaskDefinition.title).where(
                col(TaskDefinition.key).in_(sorted(k for k in keys if k))
            )
        )
        titles = dict(rows.all())
    dues: dict[int, str] = {}
    if occurrence_ids:
        rows = await session.exec(
            select(Occurrence.id, Occurrence.due_at).where(col(Occurrence.id).in_(occurrence_ids))
        )
        dues = {
            occurrence_id: from_db(due).astimezone(tz).strftime("%d/%m/%Y")
            for occurrence_id, due in rows.all()
        }
    sentences: list[str] = []
    for flag in flags:
        sentence = describe_flag(flag, _, titles, dues)
        if sentence not in sentences:
            sentences.append(sentence)
    return sentences


async def flagged_report_counts(
    session: AsyncSession, unit_ids: list[int], since: datetime
) -> dict[int, tuple[int, int]]:
    """For each unit, (reports sent since `since`, of which with at least one flag): the
    share digests and pages show next to each commune."""
    counts: dict[int, tuple[int, int]] = dict.fromkeys(unit_ids, (0, 0))
    if not unit_ids:
        return counts
    flagged = select(EvidenceFlag.report_id).distinct().subquery()
    rows = await session.exec(
        select(Occurrence.unit_id, Report.id, flagged.c.report_id)
        .join(Occurrence, col(Occurrence.id) == Report.occurrence_id)
        .outerjoin(flagged, flagged.c.report_id == Report.id)
        .where(
            col(Occurrence.unit_id).in_(unit_ids),
            col(Report.submitted_at).is_not(None),
            col(Report.submitted_at) >= since,
            col(Report.kind) == "done",
        )
    )
    for unit_id, _report_id, flag_report in rows.all():
        sent, with_flag = counts[unit_id]
        counts[unit_id] = (sent + 1, with_flag + (flag_report is not None))
    return counts
