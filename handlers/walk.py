"""A reminder's tasks one at a time ("📋 Trả lời từng việc"), when not all of them are done.

From the message listing several tasks (or its "all done" confirmation) the person gets one
card per open task, each with five answers: ✅ done (photos sent while the card shows are kept
with it), ⏰ more time and ❌ cannot do (the usual questions, handlers/extension.py and
handlers/cannot.py, then the next card), ⏭️ skip, 🏁 stop. The last answer, or stop, brings a
summary of what was answered and what is still open.

Five buttons a card, so Zalo OA shows them as buttons; on Zalo Bot they are a numbered menu,
and words ("xong", "bỏ qua", "dừng", "gia hạn", "không làm được") work on every channel.
Which tasks belong to the walk is read back from the day's reminders (handlers/checklist.py),
followed by the person's other open tasks due that month, so every button carries that
day: a card tapped again later, or on another device, still knows where it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import select

from bot.core.i18n import Translator, format_day
from bot.core.messages import Button, tap, tap_any
from bot.core.models import (
    Evidence,
    Occurrence,
    OccurrenceStatus,
    Report,
    TaskDefinition,
    utcnow,
)
from bot.core.services.occurrences import ACTIVE_STATUSES, open_for_user
from bot.core.task_text import asks_for_photo, task_evidence, task_title
from bot.core.timeutil import to_db
from handlers import cannot, extension, report
from handlers.checklist import parse_day, pending_requests, reminded_items
from handlers.common import (
    dimension_label,
    due_text,
    load_occurrence,
    local_due,
    more_tasks_button,
)
from handlers.conversation import Conversation

WALKING = "walking"  # a card is showing: its answers, typed words, photos for its draft
# The usual questions, renamed while in the walk so that their answer leads to the next card.
WALK_STATES = {
    "awaiting_cannot_reason": "walk_cannot_reason",
    "awaiting_extension_date": "walk_extension_date",
    "awaiting_extension_reason": "walk_extension_reason",
}
LISTED = 10  # open or requested tasks named in the summary; more are counted
PERIOD_LIMIT = 200  # open tasks looked at for the rest of the period (a commune has ~60)

# Typed instead of tapped (folded: lower case, no diacritics), for channels without buttons.
WORDS = {
    "done": {"xong", "da xong", "done", "hoan thanh", "da thuc hien", "ok"},
    "skip": {"bo qua", "qua", "tiep", "skip", "next", "de sau"},
    "stop": {"dung", "thoi", "stop", "tom tat", "ket thuc"},
    "more": {"gia han", "xin gia han", "them thoi gian", "more time"},
    "cant": {"khong lam duoc", "khong thuc hien duoc", "khong duoc", "cannot"},
}


@dataclass(frozen=True)
class Item:
    occurrence: Occurrence
    task: TaskDefinition
    answer: str  # "open", "done", "excused", "cannot", "extension"
    reminded: bool  # on the day's reminder ("all done" covers those), else later that period


async def _items(convo: Conversation, day: date) -> list[Item]:
    """Every task reminded that day, in the reminder's order, then the person's other open
    tasks due later in the reminder's month (not yet reminded: due days are spread over the
    month, and periods differ), so the month is answered in one sitting."""
    reminded = await reminded_items(convo, day, open_only=False)
    # The reminder's own order (scheduler/reminders.compose): due day, then title.
    reminded.sort(key=lambda item: _order(convo, *item))
    if not reminded:
        return []  # no reminder that day (an old or typed day): nothing to walk
    month = (day.year, day.month)  # the month being answered: the reminder's own
    seen = {occurrence.id for occurrence, _task in reminded}
    later = [
        (occurrence, task)
        for occurrence, task in await open_for_user(
            convo.session, convo.app.framework, convo.user, to_db(utcnow()), PERIOD_LIMIT
        )
        if _month(convo, occurrence) == month and occurrence.id not in seen
    ]
    later.sort(key=lambda item: _order(convo, *item))
    found = reminded + later
    asked = await pending_requests(convo, [occurrence.id for occurrence, _task in found])
    items = []
    for occurrence, task in found:
        if occurrence.status not in ACTIVE_STATUSES:
            answer = "excused" if occurrence.status == OccurrenceStatus.excused else "done"
        else:
            answer = asked.get(occurrence.id, "open")
        items.append(Item(occurrence, task, answer, occurrence.id in seen))
    return items


def _month(convo: Conversation, occurrence: Occurrence) -> tuple[int, int]:
    due = local_due(convo, occurrence).date()
    return due.year, due.month


def _order(convo: Conversation, occurrence: Occurrence, task: TaskDefinition) -> tuple:
    return (local_due(convo, occurrence).date(), task.title, occurrence.id)


def _labels(_: Translator) -> dict[str, str]:
    return {
        "done": _("✅ Done"),
        "more": _("⏰ Ask for more time"),
        "cant": _("❌ Cannot do"),
        "skip": _("⏭️ Skip"),
        "stop": _("🏁 Stop here"),
    }


def _card_buttons(_: Translator, day: str, occurrence_id: int) -> list[list[Button]]:
    label = _labels(_)
    at = f"{day}:{occurrence_id}"
    return [
        [Button(label["done"], f"wkd:{at}")],
        [Button(label["more"], f"wke:{at}"), Button(label["cant"], f"wkc:{at}")],
        [Button(label["skip"], f"wks:{at}"), Button(label["stop"], f"wkq:{day}")],
    ]


async def _unreadable(convo: Conversation) -> None:
    """A walk button that names no day or task we can read (typed or forged): nothing done."""
    _ = convo._
    await convo.reply(
        _("I could not read that choice, so nothing was changed. Type /viec to see your tasks."),
        more_tasks_button(_),
    )


def _split(arg: str) -> tuple[str, str] | None:
    """`YYYYMMDD:occurrence` → its two parts, if the day is a date."""
    day, _sep, rest = arg.partition(":")
    return (day, rest) if parse_day(day) is not None and rest else None


async def _cancel_draft(convo: Conversation) -> None:
    """The card's draft (photos sent for a task then skipped) is kept as cancelled."""
    if convo.state.state != WALKING:
        return
    draft = await convo.session.get(Report, int(convo.state_data.get("report_id") or 0))
    if draft is not None and draft.user_id == convo.user.id and draft.status == "draft":
        draft.status = "cancelled"
        convo.session.add(draft)


async def start(convo: Conversation, raw_day: str) -> None:
    """📋 under a reminder listing several tasks: the first open one."""
    day = parse_day(raw_day)
    if day is None:
        await _unreadable(convo)
        return
    await _cancel_draft(convo)
    await _next(convo, raw_day, after=None, before="")


async def _next(convo: Conversation, raw_day: str, after: int | None, before: str) -> None:
    """The card of the first open task after `after` (None: from the start), else the summary.
    `before`: a line saying what the last answer recorded."""
    items = await _items(convo, parse_day(raw_day))
    ids = [item.occurrence.id for item in items]
    start_at = ids.index(after) + 1 if after in ids else 0
    upcoming = [item for item in items[start_at:] if item.answer == "open"]
    if not upcoming:
        await _summary(convo, raw_day, items, before)
        return
    item = upcoming[0]
    await _card(convo, raw_day, item, ids.index(item.occurrence.id) + 1, len(items), before)


async def _card(
    convo: Conversation, raw_day: str, item: Item, number: int, total: int, before: str
) -> None:
    _ = convo._
    occurrence, task = item.occurrence, item.task
    draft = Report(occurrence_id=occurrence.id, user_id=convo.user.id, kind="done")
    convo.session.add(draft)
    await convo.session.flush()
    buttons = _card_buttons(_, raw_day, occurrence.id)
    done = buttons[0][0]
    evidence = task_evidence(task, convo.locale, convo.unit) or "—"
    lines = [before] if before else []
    lines += [
        _("Task {number} of {total}: [{dimension}] {title}").format(
            number=number,
            total=total,
            dimension=dimension_label(convo, task),
            title=task_title(task, convo.locale),
        ),
        "   " + _("Due: {due}").format(due=due_text(convo, occurrence)),
        "   " + _("Evidence: {evidence}").format(evidence=evidence),
    ]
    action = tap(_, done.label, done.data)
    if asks_for_photo(task):
        lines.append(
            _(
                "Done? Send the photo(s) here, then {action}. No photo at hand? Also {action}."
            ).format(action=action)
        )
    else:
        lines.append(_("Done? {action}; no photo is needed.").format(action=action))
    lines.append(_("Not done? {action}.").format(action=tap_any(_)))
    convo.set_state(
        WALKING,
        walk=raw_day,
        occurrence_id=occurrence.id,
        **report.collecting_photos(convo, draft.id, [[done], buttons[2]]),
    )
    await convo.reply("\n".join(lines), buttons)


async def _summary(convo: Conversation, raw_day: str, items: list[Item], before: str) -> None:
    _ = convo._
    convo.clear_state()
    if not items:
        await convo.reply(
            _("Nothing from that reminder is still open. Type /viec to see your tasks."),
            more_tasks_button(_),
        )
        return
    by_answer: dict[str, list[Item]] = {}
    for item in items:
        by_answer.setdefault(item.answer, []).append(item)
    lines = [before] if before else []
    lines.append(
        _("Summary of the {count} task(s) of this period (reminder of {day}):").format(
            count=len(items), day=format_day(parse_day(raw_day), convo.locale)
        )
    )
    heads = {
        "done": _("✅ Done: {count}"),
        "excused": _("☑️ Accepted as not doable: {count}"),
        "extension": _("⏰ More time asked, waiting for the answer: {count}"),
        "cannot": _("❌ Cannot do, waiting for the answer: {count}"),
        "open": _("⏳ Still open: {count}"),
    }
    named = 0
    for answer, head in heads.items():
        group = by_answer.get(answer, [])
        if not group:
            continue
        lines.append(head.format(count=len(group)))
        if answer in ("done", "excused"):
            continue  # counted: the titles that matter are those still waiting
        for item in group:
            if named < LISTED:
                lines.append(f"   • {task_title(item.task, convo.locale)}")
            named += 1
    if named > LISTED:
        lines.append(_("… and {count} more.").format(count=named - LISTED))
    still_open = by_answer.get("open", [])
    if not still_open:
        lines.append(_("Everything on that reminder is answered. Thank you!"))
        await convo.reply("\n".join(lines), more_tasks_button(_))
        return
    lines.append(_("The open ones stay on your list (/viec) and in the next reminders."))
    buttons = [[Button(_("📋 The open ones again"), f"one:{raw_day}")]]
    on_reminder = len([item for item in still_open if item.reminded])
    if on_reminder:  # what handlers/checklist.py would mark done: the reminder's own
        label = _("✅ All done ({count})").format(count=on_reminder)
        buttons.append([Button(label, f"all:{raw_day}")])
    await convo.reply("\n".join(lines), buttons)


# --------------------------------------------------------------------------- the answers


async def _loaded(convo: Conversation, arg: str) -> tuple[str, Occurrence, TaskDefinition] | None:
    parts = _split(arg)
    if parts is None:
        await _unreadable(convo)
        return None
    loaded = await load_occurrence(convo, parts[1])
    return (parts[0], *loaded) if loaded is not None else None


async def done(convo: Conversation, arg: str) -> None:
    """✅: the card's draft, with the photos sent meanwhile, is filed; then the next card."""
    loaded = await _loaded(convo, arg)
    if loaded is None:
        return
    raw_day, occurrence, task = loaded
    _ = convo._
    title = task_title(task, convo.locale)
    if occurrence.status not in ACTIVE_STATUSES:
        await _cancel_draft(convo)
        before = _("Already closed, nothing changed: {title}.").format(title=title)
        await _next(convo, raw_day, occurrence.id, before)
        return
    draft = None
    if convo.state.state == WALKING and convo.state_data.get("occurrence_id") == occurrence.id:
        draft = await convo.session.get(Report, int(convo.state_data.get("report_id") or 0))
    if draft is None or draft.user_id != convo.user.id or draft.status != "draft":
        await _cancel_draft(convo)  # an older card tapped: its task, without photos
        draft = Report(occurrence_id=occurrence.id, user_id=convo.user.id, kind="done")
        convo.session.add(draft)
        await convo.session.flush()
    photos = await count_photos(convo, draft.id)
    await report.file_done(convo, draft, occurrence)
    before = (
        _("✅ Recorded as done with {count} photo(s): {title}.").format(count=photos, title=title)
        if photos
        else _("✅ Recorded as done: {title}.").format(title=title)
    )
    await _next(convo, raw_day, occurrence.id, before)


async def count_photos(convo: Conversation, report_id: int) -> int:
    rows = await convo.session.exec(select(Evidence.id).where(Evidence.report_id == report_id))
    return len(rows.all())


async def skip(convo: Conversation, arg: str) -> None:
    """⏭️: nothing recorded for this task; the next card."""
    parts = _split(arg)
    if parts is None or not parts[1].isdigit():
        await _unreadable(convo)
        return
    await _cancel_draft(convo)
    await _next(convo, parts[0], int(parts[1]), convo._("⏭️ Skipped for now."))


async def stop(convo: Conversation, raw_day: str) -> None:
    """🏁: the summary now."""
    if parse_day(raw_day) is None:
        await _unreadable(convo)
        return
    await _cancel_draft(convo)
    await _summary(convo, raw_day, await _items(convo, parse_day(raw_day)), "")


def _keep_walking(convo: Conversation, raw_day: str) -> None:
    """The usual question just asked (or asked again) is answered inside the walk."""
    renamed = WALK_STATES.get(convo.state.state)
    if renamed is not None:
        convo.set_state(renamed, **{**convo.state_data, "walk": raw_day})


async def cannot_do(convo: Conversation, arg: str) -> None:
    """❌: why, as handlers/cannot.py asks it; the reason leads to the next card."""
    parts = _split(arg)
    if parts is None:
        await _unreadable(convo)
        return
    await _cancel_draft(convo)
    await cannot.ask_cannot(convo, parts[1])
    _keep_walking(convo, parts[0])


async def cannot_reason(convo: Conversation) -> None:
    raw_day = convo.state_data["walk"]
    occurrence_id = int(convo.state_data["occurrence_id"])
    await cannot.cannot_reason(convo)
    await _next(convo, raw_day, occurrence_id, "")


async def more_time(convo: Conversation, arg: str) -> None:
    """⏰: until when and why, as handlers/extension.py asks; then the next card."""
    parts = _split(arg)
    if parts is None:
        await _unreadable(convo)
        return
    await _cancel_draft(convo)
    await extension.ask_extension(convo, parts[1], choice=f"wkx:{parts[0]}")
    _keep_walking(convo, parts[0])


async def more_time_days(convo: Conversation, arg: str) -> None:
    """+N days tapped: `YYYYMMDD:occurrence:days`."""
    parts = _split(arg)
    if parts is None:
        await _unreadable(convo)
        return
    await extension.extension_days(convo, parts[1])
    _keep_walking(convo, parts[0])


async def typed_date(convo: Conversation) -> None:
    raw_day = convo.state_data["walk"]
    await extension.typed_extension_date(convo)
    _keep_walking(convo, raw_day)


async def more_time_reason(convo: Conversation) -> None:
    raw_day = convo.state_data["walk"]
    occurrence_id = int(convo.state_data["occurrence_id"])
    await extension.extension_reason(convo)
    if convo.state.state == "idle":  # recorded (a reason too long is asked again)
        await _next(convo, raw_day, occurrence_id, "")


async def typed(convo: Conversation) -> None:
    """Words typed while a card shows: its answers by name, else the way forward."""
    raw_day = convo.state_data["walk"]
    at = f"{raw_day}:{convo.state_data['occurrence_id']}"
    word = report.fold(convo.incoming.text)
    answer = next((name for name, words in WORDS.items() if word in words), None)
    if answer == "done":
        await done(convo, at)
    elif answer == "skip":
        await skip(convo, at)
    elif answer == "stop":
        await stop(convo, raw_day)
    elif answer == "more":
        await more_time(convo, at)
    elif answer == "cant":
        await cannot_do(convo, at)
    else:
        _ = convo._
        await convo.reply(
            _(
                "I did not understand that answer, so nothing was changed. For this task, "
                "{action}, or type xong, bỏ qua or dừng. A note can be added to a report "
                "from /viec."
            ).format(action=tap_any(_)),
            _card_buttons(_, raw_day, int(convo.state_data["occurrence_id"])),
        )
