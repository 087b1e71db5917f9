"""The commune officer: the state of every village (its tasks, reports, reporting on its
behalf), invitations, and declaring events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from bot.core.messages import Button
from bot.core.models import Event, Occurrence, OccurrenceStatus, Report, TaskDefinition, Unit
from bot.core.services.occurrences import ACTIVE_STATUSES, RECENT_WINDOW, ancestor_ids, may_act_on
from bot.core.services.people import audit, create_invite
from bot.core.services.status import StatusCounts, count_statuses
from bot.core.timeutil import to_db
from handlers.common import due_text, load_occurrence, local_due
from handlers.conversation import Conversation
from handlers.extension import parse_day
from scheduler.planner import plan

MAX_BUTTONS = 20
STATUS_LABELS = {"open": "⏳", "overdue": "⚠️", "escalated": "🔺", "done": "✅", "excused": "➖"}


async def _villages(convo: Conversation) -> list[Unit]:
    rows = await convo.session.exec(
        select(Unit)
        .where(Unit.parent_id == convo.user.unit_id, Unit.level == "village")
        .order_by(Unit.name)
    )
    return list(rows.all())


def counts_line(convo: Conversation, counts: StatusCounts) -> str:
    return convo._("{done} done · {excused} excused · {open} open · {overdue} overdue").format(
        done=counts.done, excused=counts.excused, open=counts.open, overdue=counts.overdue
    )


async def village_overview(convo: Conversation) -> None:
    _ = convo._
    villages = await _villages(convo)
    if not villages:
        await convo.reply(_("No villages are recorded under your commune yet."))
        return
    now = datetime.now(UTC)
    rows = await count_statuses(convo.session, villages, to_db(now - RECENT_WINDOW), to_db(now))
    rows.sort(key=lambda t: (-t.overdue, t.rate, t.unit.name))
    lines = [
        _("Villages of {unit} (last 3 months), most overdue first:").format(unit=convo.unit.name)
    ]
    lines += [f"• {t.unit.name}: {counts_line(convo, t)}" for t in rows]
    lines.append(_("Tap a village to see its tasks, open a report or report on its behalf."))
    buttons = [[Button(t.unit.name[:40].rstrip(), f"vil:{t.unit.id}")] for t in rows[:20]]
    await convo.reply("\n".join(lines), buttons)


async def _done_reports(convo: Conversation, occurrence_ids: list[int]) -> dict[int, int]:
    """Occurrence id → its latest submitted done report."""
    if not occurrence_ids:
        return {}
    rows = await convo.session.exec(
        select(Report.occurrence_id, Report.id)
        .where(
            col(Report.occurrence_id).in_(occurrence_ids),
            Report.kind == "done",
            Report.status == "submitted",
        )
        .order_by(col(Report.id))
    )
    return dict(rows.all())


async def village_detail(convo: Conversation, raw_id: str) -> None:
    """A village's tasks of the last 3 months: open ones can be reported on its behalf, done
    ones opened (photos, note) and reviewed."""
    _ = convo._
    village = await convo.session.get(Unit, int(raw_id)) if raw_id.isdigit() else None
    if village is None or convo.user.unit_id not in await ancestor_ids(convo.session, village.id):
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(_("This village is not under your commune."))
        return
    now = datetime.now(UTC)
    rows = (
        await convo.session.exec(
            select(Occurrence, TaskDefinition)
            .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
            .where(
                Occurrence.unit_id == village.id,
                col(Occurrence.due_at) >= to_db(now - RECENT_WINDOW),
                col(Occurrence.window_start) <= to_db(now),
            )
            .order_by(col(Occurrence.due_at))
        )
    ).all()
    reports = await _done_reports(convo, [occurrence.id for occurrence, _task in rows])
    lines = [village.name]
    buttons: list[list[Button]] = []
    for occurrence, task in rows:
        line = f"{STATUS_LABELS.get(occurrence.status, '')} {task.title} — {due_text(convo, occurrence)}"
        if occurrence.status == OccurrenceStatus.excused and occurrence.note:
            line += "\n   " + _("Reason: {reason}").format(reason=occurrence.note)
        lines.append(line)
        if len(buttons) >= MAX_BUTTONS:
            continue
        # The due day first: the same task comes back every period.
        label = f"{local_due(convo, occurrence):%d/%m} {task.title}"
        if occurrence.status in ACTIVE_STATUSES:
            buttons.append([Button(f"📝 {label}"[:40].rstrip(), f"obh:{occurrence.id}")])
        elif occurrence.id in reports:
            button = Button(f"🔍 {label}"[:40].rstrip(), f"rv:{reports[occurrence.id]}")
            buttons.append([button])
    if len(lines) == 1:
        lines.append(_("No tasks in the last 3 months."))
    elif buttons:
        lines.append(_("📝 report on the village's behalf · 🔍 open a report"))
    await convo.reply("\n".join(lines), buttons)


async def behalf_card(convo: Conversation, raw_id: str) -> None:
    """One village task, for an officer to report it done or not doable for the village."""
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    _ = convo._
    if occurrence.status not in ACTIVE_STATUSES:
        await convo.reply(_("This task is already closed. Nothing was changed."))
        return
    unit = await convo.session.get(Unit, occurrence.unit_id)
    await convo.reply(
        _("{unit}: {title}\nDue: {due}\nReport it on behalf of {unit}:").format(
            unit=unit.name, title=task.title, due=due_text(convo, occurrence)
        ),
        [
            [Button(_("✅ Done (on their behalf)"), f"done:{occurrence.id}")],
            [Button(_("❌ Cannot do (on their behalf)"), f"cant:{occurrence.id}")],
        ],
    )


async def invite_menu(convo: Conversation) -> None:
    _ = convo._
    villages = await _villages(convo)
    if not villages:
        await convo.reply(_("No villages are recorded under your commune yet."))
        return
    buttons = [[Button(v.name[:40], f"inv:{v.id}")] for v in villages[:30]]
    await convo.reply(_("Invite the village head of which village?"), buttons)


async def invite_village_head(convo: Conversation, raw_id: str) -> None:
    _ = convo._
    village = await convo.session.get(Unit, int(raw_id)) if raw_id.isdigit() else None
    if village is None or village.parent_id != convo.user.unit_id:
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(_("This village is not under your commune."))
        return
    ttl = timedelta(hours=convo.app.settings.invite_ttl_hours)
    invite = await create_invite(convo.session, village, "village_head", ttl, created_by=convo.user)
    await audit(convo.session, "invite.created", f"unit:{village.id}", convo.user, code=invite.code)
    text = _(
        "Registration code for the village head of {village}: {code}\n"
        "Valid for {hours} hours, for one person. They open the bot on Zalo or Telegram and type the code."
    ).format(village=village.name, code=invite.code, hours=convo.app.settings.invite_ttl_hours)
    username = convo.app.settings.telegram_bot_username
    if username:
        text += "\n" + _("Telegram link: {link}").format(
            link=f"https://t.me/{username}?start={invite.code}"
        )
    await convo.reply(text)


async def event_menu(convo: Conversation) -> None:
    _ = convo._
    buttons = [
        [Button(label, f"evk:{kind}")] for kind, label in convo.app.framework.event_kinds.items()
    ]
    await convo.reply(_("Which event do you want to declare?"), buttons)


async def event_kind(convo: Conversation, kind: str) -> None:
    _ = convo._
    if kind not in convo.app.framework.event_kinds:
        await convo.reply(_("I do not know this kind of event."))
        return
    convo.set_state("awaiting_event_date", kind=kind)
    await convo.reply(_("On what date does it start? Type a date like 15/12/2026."))


async def event_date(convo: Conversation) -> None:
    _ = convo._
    today = datetime.now(convo.app.settings.tz).date()
    starts = parse_day(convo.incoming.text, today)
    if starts is None:
        await convo.reply(_("Please type a date like 15/12/2026."))
        return
    kind = convo.state_data["kind"]
    event = Event(
        unit_id=convo.user.unit_id,
        kind=kind,
        starts_on=starts,
        ends_on=starts,
        name=convo.app.framework.event_kinds[kind],
        created_by_user_id=convo.user.id,
    )
    convo.session.add(event)
    await convo.session.flush()
    report = await plan(convo.session, convo.app.framework, convo.app.settings, today)
    await audit(
        convo.session,
        "event.declared",
        f"unit:{convo.user.unit_id}",
        convo.user,
        event_id=event.id,
        kind=kind,
    )
    convo.clear_state()
    await convo.reply(
        _(
            "Recorded: {name} on {date}. {count} task(s) were created for your commune and its villages."
        ).format(name=event.name, date=starts.strftime("%d/%m/%Y"), count=report.inserted)
    )


__all__ = ["may_act_on"]
