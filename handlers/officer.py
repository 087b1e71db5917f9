"""The commune officer: the state of every village (its tasks, reports, reporting on its
behalf), invitations, and declaring events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from bot.core.i18n import format_number
from bot.core.messages import Button, tap_any
from bot.core.models import Event, Occurrence, OccurrenceStatus, Report, TaskDefinition, Unit
from bot.core.services.occurrences import ACTIVE_STATUSES, RECENT_WINDOW, ancestor_ids, may_act_on
from bot.core.services.people import audit, create_invite
from bot.core.services.status import StatusCounts, count_statuses
from bot.core.timeutil import to_db
from bot.core.unit_words import collective, head_title, head_word, place
from bot.core.vietnamese_order import sort_key
from handlers.common import due_text, load_occurrence, local_due
from handlers.conversation import Conversation
from handlers.extension import parse_day
from scheduler.planner import plan

# A declared event starts at most a little in the past (declared late) and within two years.
EVENT_PAST_DAYS = 30
EVENT_FUTURE_DAYS = 2 * 366
MAX_BUTTONS = 20
STATUS_LABELS = {"open": "⏳", "overdue": "⚠️", "escalated": "🔺", "done": "✅", "excused": "➖"}


async def _villages(convo: Conversation) -> list[Unit]:
    rows = await convo.session.exec(
        select(Unit).where(Unit.parent_id == convo.user.unit_id, Unit.level == "village")
    )
    return sorted(rows.all(), key=lambda unit: sort_key(unit.name))


def no_units_below(convo: Conversation, level: str) -> str:
    """ "Chưa có thôn, tổ dân phố nào thuộc phường Vĩnh Hòa trong hệ thống." """
    return convo._("No {children} are recorded under {unit} yet.").format(
        children=collective([], level, convo.locale), unit=place(convo.unit, convo.locale)
    )


def ranked_header(
    convo: Conversation, units: list[Unit], level: str, above: Unit | None = None
) -> str:
    """ "Các tổ dân phố thuộc phường Vĩnh Hòa (3 tháng gần đây), kém nhất trước:" (each line
    below names its own counts, excused included, so the header lists none of them)."""
    children = collective(units, level, convo.locale)
    return convo._("{children} of {unit} (last 3 months), worst first:").format(
        children=children[:1].upper() + children[1:] if convo.locale != "vi" else children,
        unit=place(above or convo.unit, convo.locale),
    )


def counts_line(convo: Conversation, counts: StatusCounts) -> str:
    def number(value: int) -> str:
        return format_number(value, convo.locale)

    return convo._("{done} done · {excused} excused · {open} open · {overdue} overdue").format(
        done=number(counts.done),
        excused=number(counts.excused),
        open=number(counts.open),
        overdue=number(counts.overdue),
    )


async def village_overview(convo: Conversation) -> None:
    villages = await _villages(convo)
    if not villages:
        await convo.reply(no_units_below(convo, "village"))
        return
    now = datetime.now(UTC)
    rows = await count_statuses(convo.session, villages, to_db(now - RECENT_WINDOW), to_db(now))
    rows.sort(key=lambda t: (-t.overdue, t.rate, sort_key(t.unit.name)))
    lines = [ranked_header(convo, villages, "village")]
    lines += [f"• {t.unit.name}: {counts_line(convo, t)}" for t in rows]
    lines.append(
        convo._("{action} to see a unit's tasks, open a report or report on its behalf.").format(
            action=tap_any(convo._, start=True)
        )
    )
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
        await convo.reply(
            _("This unit is not under {unit}.").format(unit=place(convo.unit, convo.locale))
        )
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
        await convo.reply(no_units_below(convo, "village"))
        return
    heads = list(dict.fromkeys(head_word(v, convo.locale) for v in villages))
    buttons = [[Button(v.name[:40], f"inv:{v.id}")] for v in villages[:30]]
    await convo.reply(
        _("Invite the {head} of which {kind}?").format(
            head=", ".join(heads), kind=collective(villages, "village", convo.locale)
        ),
        buttons,
    )


async def invite_village_head(convo: Conversation, raw_id: str) -> None:
    _ = convo._
    village = await convo.session.get(Unit, int(raw_id)) if raw_id.isdigit() else None
    if village is None or village.parent_id != convo.user.unit_id:
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(
            _("This unit is not under {unit}.").format(unit=place(convo.unit, convo.locale))
        )
        return
    ttl = timedelta(hours=convo.app.settings.invite_ttl_hours)
    invite = await create_invite(convo.session, village, "village_head", ttl, created_by=convo.user)
    await audit(convo.session, "invite.created", f"unit:{village.id}", convo.user, code=invite.code)
    settings = convo.app.settings
    expires = invite.expires_at.astimezone(settings.tz)
    text = _(
        "Registration code for {title}: {code}\n"
        "Valid until {time} on {day}, for one person. Please give the code to the {head}: they "
        "open papibot on Zalo or Telegram (links below) and type the code."
    ).format(
        title=head_title(village, convo.locale),
        code=invite.code,
        time=f"{expires:%H:%M}",
        day=f"{expires:%d/%m/%Y}",
        head=head_word(village, convo.locale),
    )
    if settings.zalo_oa_link:
        text += "\n" + _("Zalo: {link}").format(link=settings.zalo_oa_link)
    if settings.telegram_bot_username:
        text += "\n" + _("Telegram link: {link}").format(
            link=f"https://t.me/{settings.telegram_bot_username}?start={invite.code}"
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
    first = today - timedelta(days=EVENT_PAST_DAYS)
    last = today + timedelta(days=EVENT_FUTURE_DAYS)
    if not first <= starts <= last:
        await convo.reply(
            _("Please type a date from {first} to {last}, like 15/12/2026.").format(
                first=first.strftime("%d/%m/%Y"), last=last.strftime("%d/%m/%Y")
            )
        )
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
    villages = await _villages(convo)
    await convo.reply(
        _(
            "Recorded: {name} on {date}. {count} task(s) were created for {unit} and its {children}."
        ).format(
            name=event.name,
            date=starts.strftime("%d/%m/%Y"),
            count=format_number(report.inserted, convo.locale),
            unit=place(convo.unit, convo.locale),
            children=collective(villages, "village", convo.locale),
        )
    )


__all__ = ["may_act_on"]
