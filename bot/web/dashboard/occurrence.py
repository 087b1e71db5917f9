"""One occurrence: what happened to it in order (planned, reminders, reports, extensions and
decisions, escalations, follow-ups) and its evidence photos with their EXIF time and place.
Photos are served here by evidence id, only to someone whose scope holds the occurrence."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from aiohttp import web
from PIL import Image
from sqlmodel import col, select

from bot.core.audit_actions import FOLLOWED_UP
from bot.core.i18n import Translator, format_short_day
from bot.core.models import (
    AuditLog,
    Escalation,
    Evidence,
    Level,
    Occurrence,
    Reminder,
    Report,
    TaskDefinition,
    User,
)
from bot.core.services.evidence_checks import flag_sentences, flags_of_reports
from bot.core.task_text import task_evidence, task_title
from bot.core.timeutil import from_db
from bot.web.dashboard.visit import OutOfScope, Visit, int_arg, local_moment, page, resource
from bot.web.media import content_type

THUMB_SIZE = (320, 320)


def stage_in_words(_: Translator, key: str) -> str:
    """A stored reminder stage as an officer reads it: `before-7@20261125` → "7 ngày trước
    hạn (hạn 25/11/2026)"; the due date is part of the key because an extension starts a new
    ladder (scheduler/policy.py, Stage.key). An unknown name is shown as it is."""
    name, _at, day = key.partition("@")
    kind, _dash, count = name.partition("-")
    if kind == "before" and count.isdigit():
        words = _("{days} days before the due date").format(days=count)
    elif name == "due":
        words = _("on the due date")
    elif kind == "overdue" and count.isdigit():
        words = _("{days} days overdue").format(days=count)
    else:
        words = name
    try:
        due = date(int(day[:4]), int(day[4:6]), int(day[6:8])) if len(day) == 8 else None
    except ValueError:
        due = None
    if due is None:
        return words
    return _("{stage} (due {due})").format(stage=words, due=format_short_day(due))


@dataclass
class Step:
    at: datetime
    kind: str  # planned | reminder | report | decision | escalation | follow_up | done
    text: str
    note: str = ""


async def _names(visit: Visit, ids: set[int]) -> dict[int, str]:
    ids.discard(None)  # type: ignore[arg-type]
    if not ids:
        return {}
    rows = await visit.session.exec(select(User).where(col(User.id).in_(list(ids))))
    return {user.id: user.name or f"#{user.id}" for user in rows.all()}


async def _timeline(visit: Visit, occurrence: Occurrence) -> tuple[list[Step], list]:
    _ = visit._
    session = visit.session
    reports = list(
        (
            await session.exec(
                select(Report)
                .where(Report.occurrence_id == occurrence.id)
                .order_by(col(Report.created_at))
            )
        ).all()
    )
    reminders = (
        await session.exec(select(Reminder).where(Reminder.occurrence_id == occurrence.id))
    ).all()
    escalations = (
        await session.exec(select(Escalation).where(Escalation.occurrence_id == occurrence.id))
    ).all()
    commune = visit.scope.owner_of(occurrence.unit_id, Level.commune)
    follow_ups = []
    if commune is not None:
        follow_ups = (
            await session.exec(
                select(AuditLog).where(
                    AuditLog.action == FOLLOWED_UP,
                    AuditLog.subject == f"unit:{commune.id}",
                    col(AuditLog.at) >= occurrence.window_start,
                )
            )
        ).all()
    people = {r.user_id for r in reports} | {r.decided_by_user_id for r in reports}
    people |= {uid for r in reminders for uid in (r.user_ids or [])}
    people |= {f.actor_user_id for f in follow_ups} | {occurrence.done_by_user_id}
    names = await _names(visit, set(people))
    ctx = visit.ctx
    steps = [
        Step(
            occurrence.created_at,
            "planned",
            _("Planned: window opens {start}, due {due}").format(
                start=local_moment(occurrence.window_start, ctx),
                due=local_moment(occurrence.due_at, ctx),
            ),
        )
    ]
    outcomes = {
        "queued": _("waiting to be sent"),
        "sent": _("sent"),
        # A stage whose moment passed while the scheduler was not running is not sent late;
        # the task is named again in the next reminder (scheduler/reminders.py).
        "folded": _("not sent: its time had passed; the next reminder includes it"),
        "spaced": _("not sent: a reminder had gone out in the days before"),
        "unreachable": _("nobody could be reached"),
    }
    for reminder in reminders:
        who = ", ".join(names.get(uid, f"#{uid}") for uid in reminder.user_ids or [])
        steps.append(
            Step(
                reminder.created_at,
                "reminder",
                _("Reminder {stage}: {outcome}").format(
                    stage=stage_in_words(_, reminder.stage),
                    outcome=outcomes.get(reminder.outcome, reminder.outcome),
                ),
                who,
            )
        )
    kinds = {
        "done": _("Reported done"),
        "cannot": _("Reported it cannot be done"),
        "extension": _("Asked for more time"),
    }
    states = {
        "draft": _("draft, not sent"),
        "submitted": _("submitted"),
        "approved": _("approved"),
        "declined": _("declined"),
    }
    for report in reports:
        text = f"{kinds.get(report.kind, report.kind)} — {names.get(report.user_id, '')}"
        if report.requested_until:
            text += " — " + _("until {day}").format(day=f"{report.requested_until:%d/%m/%Y}")
        text += f" ({states.get(report.status, report.status)})"
        steps.append(Step(report.submitted_at or report.created_at, "report", text, report.note))
        if report.decided_by_user_id:
            steps.append(
                Step(
                    report.submitted_at or report.created_at,
                    "decision",
                    _("Decided by {name}: {state}").format(
                        name=names.get(report.decided_by_user_id, ""),
                        state=states.get(report.status, report.status),
                    ),
                )
            )
    step_names = {
        "commune": _("commune told"),
        "supervisor": _("escalated to the supervising unit"),
        "unreachable": _("cannot be reached"),
    }
    for escalation in escalations:
        target = visit.scope.units.get(escalation.target_unit_id)
        steps.append(
            Step(
                escalation.created_at,
                "escalation",
                _("Escalation: {step}").format(
                    step=step_names.get(escalation.step, escalation.step)
                ),
                target.name if target else "",
            )
        )
    for entry in follow_ups:
        steps.append(
            Step(
                entry.at,
                "follow_up",
                _("Followed up by {name}").format(name=names[entry.actor_user_id])
                if entry.actor_user_id in names
                else _("Followed up"),
            )
        )
    if occurrence.done_at:
        steps.append(
            Step(
                occurrence.done_at,
                "done",
                _("Marked done by {name}").format(name=names[occurrence.done_by_user_id])
                if occurrence.done_by_user_id in names
                else _("Marked done"),
            )
        )
    steps.sort(key=lambda step: from_db(step.at))
    evidence = []
    if reports:
        rows = await session.exec(
            select(Evidence)
            .where(col(Evidence.report_id).in_([r.id for r in reports]))
            .order_by(col(Evidence.created_at))
        )
        by_id = {r.id: r for r in reports}
        evidence = [
            (e, by_id[e.report_id], names.get(by_id[e.report_id].user_id, "")) for e in rows
        ]
    return steps, evidence


@page
async def occurrence_page(request: web.Request, visit: Visit) -> web.Response:
    occurrence = await visit.session.get(Occurrence, int_arg(request.match_info["occ_id"]))
    if occurrence is None or not visit.scope.has_occurrence(occurrence):
        raise OutOfScope
    task = await visit.session.get(TaskDefinition, occurrence.task_key)
    unit = visit.unit(occurrence.unit_id)
    steps, evidence = await _timeline(visit, occurrence)
    checks = await _flag_sentences(visit, [report.id for _e, report, _s in evidence])
    dimension = visit.ctx.framework.dimensions.get(task.dimension)
    return visit.render(
        "occurrence.html",
        title=task_title(task, visit.locale),
        unit=unit,
        trail=visit.scope.trail(unit.id),
        occurrence=occurrence,
        task=task,
        dimension=dimension,
        steps=steps,
        evidence=evidence,
        checks=checks,
        evidence_text=task_evidence(task, visit.locale, unit),
    )


async def _flag_sentences(visit: Visit, report_ids: list[int]) -> dict[int, list[str]]:
    """What the evidence checks found, as sentences, by evidence id (and who accepted it)."""
    found: dict[int, list[str]] = {}
    flags = await flags_of_reports(visit.session, sorted(set(report_ids)))
    for listed in flags.values():
        for flag in listed:
            (sentence,) = await flag_sentences(
                visit.session, [flag], visit._, visit.ctx.settings.tz
            )
            found.setdefault(flag.evidence_id, []).append(sentence)
    return found


async def _evidence_file(visit: Visit, raw: str) -> tuple[Evidence, Path]:
    evidence = await visit.session.get(Evidence, int_arg(raw))
    if evidence is None:
        raise OutOfScope
    report = await visit.session.get(Report, evidence.report_id)
    occurrence = await visit.session.get(Occurrence, report.occurrence_id) if report else None
    if occurrence is None or not visit.scope.has_occurrence(occurrence):
        raise OutOfScope
    path = await asyncio.to_thread(_stored_file, visit.ctx.settings.data_dir, evidence.path)
    if path is None:
        raise OutOfScope
    return evidence, path


def _stored_file(data_dir: Path, relative: str) -> Path | None:
    """The evidence file, only if it lies under the data directory and exists."""
    root = Path(data_dir).resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def _thumbnail(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail(THUMB_SIZE)
        partial = target.with_suffix(".part")
        image.save(partial, format="JPEG", quality=80)
    partial.replace(target)


@resource
async def photo(request: web.Request, visit: Visit) -> web.StreamResponse:
    _evidence, path = await _evidence_file(visit, request.match_info["evidence_id"])
    headers = {"Content-Type": content_type(path), "Cache-Control": "private, max-age=3600"}
    return web.FileResponse(path, headers={**headers, "X-Content-Type-Options": "nosniff"})


@resource
async def thumbnail(request: web.Request, visit: Visit) -> web.StreamResponse:
    evidence, path = await _evidence_file(visit, request.match_info["evidence_id"])
    target = Path(visit.ctx.settings.data_dir) / "thumbs" / f"{evidence.sha256}.jpg"
    if not await asyncio.to_thread(target.exists):
        await asyncio.to_thread(_thumbnail, path, target)
    return web.FileResponse(
        target, headers={"Content-Type": "image/jpeg", "Cache-Control": "private, max-age=3600"}
    )
