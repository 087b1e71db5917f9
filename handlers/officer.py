"""The commune officer: the state of every village, invitations, and declaring events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from bot.core.messages import Button
from bot.core.models import Event, Occurrence, TaskDefinition, Unit
from bot.core.services.occurrences import RECENT_WINDOW, may_act_on, tallies
from bot.core.services.people import audit, create_invite
from bot.core.timeutil import to_db
from handlers.common import due_text
from handlers.conversation import Conversation
from handlers.extension import parse_day
from scheduler.planner import plan

STATUS_LABELS = {"open": "⏳", "overdue": "⚠️", "escalated": "🔺", "done": "✅", "excused": "➖"}


async def _villages(convo: Conversation) -> list[Unit]:
    rows = await convo.session.exec(
        select(Unit)
        .where(Unit.parent_id == convo.user.unit_id, Unit.level == "village")
        .order_by(Unit.name)
    )
    return list(rows.all())


async def village_overview(convo: Conversation) -> None:
    _ = convo._
    villages = await _villages(convo)
    if not villages:
        await convo.reply(_("No villages are recorded under your commune yet."))
        return
    now = datetime.now(UTC)
    rows = await tallies(convo.session, villages, to_db(now - RECENT_WINDOW), to_db(now))
    rows.sort(key=lambda t: (-t.overdue, t.rate, t.unit.name))
    lines = [
        _("Villages of {unit} (last 3 months): done / open / overdue").format(unit=convo.unit.name)
    ]
    lines += [f"• {t.unit.name}: {t.done} / {t.open} / {t.overdue}" for t in rows]
    buttons = [[Button(t.unit.name[:40], f"vil:{t.unit.id}")] for t in rows[:20]]
    await convo.reply("\n".join(lines), buttons)


async def village_detail(convo: Conversation, raw_id: str) -> None:
    _ = convo._
    village = await convo.session.get(Unit, int(raw_id)) if raw_id.isdigit() else None
    if village is None or convo.user.unit_id not in (village.parent_id, village.id):
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(_("This village is not under your commune."))
        return
    now = datetime.now(UTC)
    rows = await convo.session.exec(
        select(Occurrence, TaskDefinition)
        .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
        .where(
            Occurrence.unit_id == village.id,
            col(Occurrence.due_at) >= to_db(now - RECENT_WINDOW),
            col(Occurrence.window_start) <= to_db(now),
        )
        .order_by(col(Occurrence.due_at))
    )
    lines = [village.name]
    for occurrence, task in rows.all():
        lines.append(
            f"{STATUS_LABELS.get(occurrence.status, '')} {task.title} — {due_text(convo, occurrence)}"
        )
    if len(lines) == 1:
        lines.append(_("No tasks in the last 3 months."))
    await convo.reply("\n".join(lines))


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
