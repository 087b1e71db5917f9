"""Reporting a task done: photos (as photos or image files), an optional note, a confirmation.

Also: a photo sent with no task in progress ("which task is this for?") and free text such as
"xong" / "da xong" meaning done for the most recently reminded task, after one tap.
"""

from __future__ import annotations

import logging
import unicodedata
from datetime import UTC, datetime

from sqlmodel import col, select

from bot.core.i18n import format_number
from bot.core.messages import Button
from bot.core.models import Evidence, Occurrence, Reminder, Report, TaskDefinition, Unit, utcnow
from bot.core.services.evidence import (
    MAX_PHOTO_BYTES,
    EvidenceProblem,
    StoredPhoto,
    UploadLimits,
    check_quota,
    keep_report_evidence,
    record_received,
    store_photo,
)
from bot.core.services.evidence_checks import (
    FlagContext,
    check_report,
    find_flags,
    flag_sentences,
)
from bot.core.services.occurrences import ACTIVE_STATUSES, mark_done, open_for_user
from bot.core.services.people import audit
from bot.core.task_text import task_title
from bot.core.timeutil import to_db
from handlers.cannot import on_behalf, village_heads
from handlers.common import load_occurrence, more_tasks_button, tap
from handlers.conversation import Conversation

log = logging.getLogger(__name__)

NOTE_LIMIT = 2000  # Report.note's column
# State data of a question that takes photos for its draft besides its own answers (the
# router sends photos outside "awaiting_photos" to photo_without_task, which looks for it).
PHOTO_BUTTONS = "photo_buttons"

DONE_WORDS = {
    "xong",
    "da xong",
    "da lam",
    "hoan thanh",
    "da hoan thanh",
    "done",
    "ok xong",
    "lam xong",
    "da thuc hien",
}


def fold(text: str) -> str:
    """Lower case without diacritics: "Đã xong" → "da xong" (many type without accents)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text.lower())
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return " ".join(stripped.replace(".", " ").replace("!", " ").split())


def means_done(text: str) -> bool:
    return fold(text) in DONE_WORDS


def _photo_prompt(
    convo: Conversation, report_id: int, count: int
) -> tuple[str, list[list[Button]]]:
    _ = convo._
    label = _("➡️ Continue")
    buttons = [
        [Button(label, f"next:{report_id}")],
        [Button(_("✖️ Cancel"), f"cancel:{report_id}")],
    ]
    go_on = tap(_, label, f"next:{report_id}")
    if count == 0:
        text = _(
            "Please send one or more photos of the evidence (as photos or image files); "
            "a caption you write under a photo is kept as the note. When you have sent them "
            "all, {action}. No photo? Also {action}."
        ).format(action=go_on)
    else:
        text = _("Received photo {count}. Send more, or {action}.").format(
            count=count, action=go_on
        )
    return text, buttons


async def begin(convo: Conversation, raw_id: str) -> None:
    """✅ or 📷 on a task: open a draft report and wait for photos."""
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    if occurrence.status not in ACTIVE_STATUSES:
        await convo.reply(
            convo._("This task is already closed. Type /viec to see your open tasks."),
            more_tasks_button(convo._),
            in_place=True,
        )
        return
    report = Report(occurrence_id=occurrence.id, user_id=convo.user.id, kind="done")
    convo.session.add(report)
    await convo.session.flush()
    convo.set_state("awaiting_photos", report_id=report.id, photos=0)
    text, buttons = _photo_prompt(convo, report.id, 0)
    await convo.reply(f"{task_title(task, convo.locale)}\n{text}", buttons, in_place=True)


async def _receive_photo(convo: Conversation) -> StoredPhoto | None:
    _ = convo._
    file = convo.incoming.file
    if file is None or file.fetch is None:
        return None
    if file.size is not None and file.size > MAX_PHOTO_BYTES:
        await convo.reply(_("This file is larger than 20 MB. Please send a smaller photo."))
        await audit(convo.session, "evidence.too_large", convo.subject, convo.user, size=file.size)
        return None
    if convo.incoming.kind == "document" and file.mime and not file.mime.startswith("image/"):
        await convo.reply(
            _("I can only take photos as evidence. Please send a picture (JPG or PNG).")
        )
        await audit(convo.session, "evidence.not_image", convo.subject, convo.user, mime=file.mime)
        return None
    limits = UploadLimits.of(convo.app.settings)
    now = datetime.now(UTC)
    size = file.size or 0
    try:
        await check_quota(convo.session, convo.user, limits, now, size)  # before downloading
        data = await file.fetch()
        if len(data) > MAX_PHOTO_BYTES:
            size = len(data)
            raise EvidenceProblem("too_large")
        if len(data) > size:  # the platform did not say, or said less
            size = len(data)
            await check_quota(convo.session, convo.user, limits, now, size)
        photo = store_photo(data, convo.app.settings.data_dir, limits.max_pixels)
    except EvidenceProblem as problem:
        if problem.reason == "no_space":
            log.warning("evidence not stored: the data directory's disk is full")
        await convo.reply(_refusal(convo, problem.reason, limits))
        await audit(
            convo.session, f"evidence.{problem.reason}", convo.subject, convo.user, size=size
        )
        return None
    await record_received(convo.session, convo.user, convo.subject, photo, now)
    return photo


def _refusal(convo: Conversation, reason: str, limits: UploadLimits) -> str:
    _ = convo._
    if reason == "too_large":
        return _("This file is larger than 20 MB. Please send a smaller photo.")
    if reason == "too_many_pixels":
        return _(
            "This picture is too big to keep (more than {limit} megapixels). "
            "Please send an ordinary photo taken with your phone."
        ).format(limit=limits.max_pixels // 1_000_000)
    if reason == "quota_files":
        return _(
            "You have sent {count} photos in the last hour, the most that can be received. "
            "Please wait a while, then send the rest. The photos already received are kept."
        ).format(count=limits.files_per_hour)
    if reason == "no_space":
        return _(
            "The server has no room to store photos right now, so this photo was not "
            "received. Please send it again later; your report is kept."
        )
    if reason == "quota_bytes":
        return _(
            "You have sent {size} MB of photos in the last 24 hours, the most that can be "
            "received. Please send the rest tomorrow. The photos already received are kept."
        ).format(size=limits.bytes_per_day // (1024 * 1024))
    return _("I can only take photos as evidence. Please send a picture (JPG or PNG).")


def _evidence_row(report_id: int, photo: StoredPhoto) -> Evidence:
    return Evidence(
        report_id=report_id,
        sha256=photo.sha256,
        path=photo.path,
        size=photo.size,
        mime=photo.mime,
        width=photo.width,
        height=photo.height,
        taken_at=photo.taken_at,
        gps_lat=photo.gps_lat,
        gps_lon=photo.gps_lon,
    )


def _with_caption(note: str, caption: str) -> str:
    """A photo's caption is the note (several captions: one line each)."""
    caption = caption.strip()
    if not caption or caption in note.splitlines():
        return note
    return f"{note}\n{caption}" if note else caption


async def too_long(convo: Conversation, text: str) -> bool:
    """A note (or a reason) longer than the record holds is refused whole, never cut."""
    if len(text) <= NOTE_LIMIT:
        return False
    await convo.reply(
        convo._(
            "This text has {length} characters; at most {limit} can be kept. Nothing was "
            "saved or cut: please send a shorter one (the main points are enough)."
        ).format(
            length=format_number(len(text), convo.locale),
            limit=format_number(NOTE_LIMIT, convo.locale),
        )
    )
    return True


async def photo_in_report(convo: Conversation) -> None:
    report_id = int(convo.state_data["report_id"])
    report = await convo.session.get(Report, report_id)
    caption = convo.incoming.text.strip()
    note = _with_caption(report.note, caption) if report is not None else ""
    if caption and await too_long(convo, note):
        return  # the photo waits for a shorter caption: nothing half-kept
    photo = await _receive_photo(convo)
    if photo is None:
        return
    convo.session.add(_evidence_row(report_id, photo))
    if report is not None and note != report.note:
        report.note = note
        convo.session.add(report)
    count = int(convo.state_data.get("photos", 0)) + 1
    own = convo.state_data.get(PHOTO_BUTTONS)
    if own:  # the walk's card: it stays, with its own buttons
        convo.set_state(convo.state.state, **{**convo.state_data, "photos": count})
        text, buttons = _own_photo_prompt(convo, own, count)
    else:
        convo.set_state("awaiting_photos", report_id=report_id, photos=count)
        text, buttons = _photo_prompt(convo, report_id, count)
    if caption:
        text = convo._("Kept as the note: {caption}").format(caption=caption) + "\n" + text
    await convo.reply(text, buttons)


def collecting_photos(
    convo: Conversation, report_id: int, buttons: list[list[Button]]
) -> dict[str, object]:
    """State data for a question that also takes photos for the draft `report_id` (the walk's
    card, handlers/walk.py): after each photo, `buttons` are offered again."""
    rows = [[{"label": b.label, "data": b.data} for b in row] for row in buttons]
    return {"report_id": report_id, "photos": 0, PHOTO_BUTTONS: rows}


def _own_photo_prompt(
    convo: Conversation, rows: list[list[dict]], count: int
) -> tuple[str, list[list[Button]]]:
    _ = convo._
    buttons = [[Button(b["label"], b["data"]) for b in row] for row in rows]
    first = buttons[0][0]
    text = _("Received photo {count}. Send more, or {action}.").format(
        count=count, action=tap(_, first.label, first.data)
    )
    return text, buttons


async def photo_without_task(convo: Conversation) -> None:
    """Keep the photo, then ask which task it belongs to (unless a question takes photos)."""
    _ = convo._
    if convo.state_data.get(PHOTO_BUTTONS) and convo.state_data.get("report_id"):
        await photo_in_report(convo)
        return
    photo = await _receive_photo(convo)
    if photo is None:
        return
    pending = [*convo.state_data.get("pending_photos", []), photo.as_dict()]
    caption = _with_caption(convo.state_data.get("pending_note", ""), convo.incoming.text)
    items = await open_for_user(
        convo.session, convo.app.framework, convo.user, to_db(datetime.now(UTC)), 8
    )
    if not items:
        convo.clear_state()
        await convo.reply(_("Thank you for the photo, but you have no open task to attach it to."))
        return
    convo.set_state("choosing_task", pending_photos=pending, pending_note=caption[:NOTE_LIMIT])
    buttons = [
        [Button(task_title(task, convo.locale)[:60], f"pick:{occurrence.id}")]
        for occurrence, task in items
    ]
    await convo.reply(_("Which task is this photo for?"), buttons)


async def pick_task(convo: Conversation, raw_id: str) -> None:
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    pending = [StoredPhoto.from_dict(item) for item in convo.state_data.get("pending_photos", [])]
    report = Report(
        occurrence_id=occurrence.id,
        user_id=convo.user.id,
        kind="done",
        note=convo.state_data.get("pending_note", ""),
    )
    convo.session.add(report)
    await convo.session.flush()
    for photo in pending:
        convo.session.add(_evidence_row(report.id, photo))
    convo.set_state("awaiting_photos", report_id=report.id, photos=len(pending))
    text, buttons = _photo_prompt(convo, report.id, len(pending))
    await convo.reply(f"{task_title(task, convo.locale)}\n{text}", buttons, in_place=True)


async def _own_draft(convo: Conversation, raw_id: str) -> Report | None:
    report = await convo.session.get(Report, int(raw_id)) if raw_id.isdigit() else None
    if report is None or report.user_id != convo.user.id or report.status != "draft":
        await convo.reply(
            convo._("This report is no longer open. Type /viec to start again."),
            more_tasks_button(convo._),
            in_place=True,
        )
        return None
    return report


async def ask_note(convo: Conversation, raw_id: str) -> None:
    report = await _own_draft(convo, raw_id)
    if report is None:
        return
    _ = convo._
    convo.set_state("awaiting_note", report_id=report.id)
    label = _("⏭️ Skip")
    action = tap(_, label, f"skip:{report.id}")
    if report.note:
        text = _(
            "Note from your photo caption: {note}\nType another note to replace it, or {action} "
            "to keep it."
        ).format(note=report.note, action=action)
    else:
        text = _("Would you like to add a note? Type it now, or {action}.").format(action=action)
    await convo.reply(text, [[Button(label, f"skip:{report.id}")]], in_place=True)


async def note_text(convo: Conversation) -> None:
    report = await convo.session.get(Report, int(convo.state_data["report_id"]))
    if report is None:
        convo.clear_state()
        return
    note = convo.incoming.text.strip()
    if await too_long(convo, note):
        return  # still waiting for the note
    report.note = note
    convo.session.add(report)
    await show_summary(convo, str(report.id))


async def show_summary(convo: Conversation, raw_id: str) -> None:
    report = await _own_draft(convo, raw_id)
    if report is None:
        return
    _ = convo._
    occurrence = await convo.session.get(Occurrence, report.occurrence_id)
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    photos = (
        await convo.session.exec(select(Evidence.id).where(Evidence.report_id == report.id))
    ).all()
    convo.set_state("confirming", report_id=report.id)
    lines = [
        _("Please check your report:"),
        _("Task: {title}").format(title=task_title(task, convo.locale)),
        _("Photos: {count}").format(count=len(photos)),
        _("Note: {note}").format(note=report.note or "—"),
    ]
    buttons = [
        Button(_("✅ Send report"), f"send:{report.id}"),
        Button(_("✖️ Cancel"), f"cancel:{report.id}"),
    ]
    warnings = await _photo_warnings(convo, report, occurrence)
    if warnings:
        lines += ["", *(f"⚠️ {sentence}" for sentence in warnings)]
        lines.append(_("Do you have a newer photo? You can still send the report as it is."))
        buttons.insert(1, Button(_("📷 Add another photo"), f"more:{report.id}"))
    await convo.reply("\n".join(lines), [buttons], in_place=True)


async def _photo_warnings(convo: Conversation, report: Report, occurrence: Occurrence) -> list[str]:
    """What the evidence checks would flag in this draft's photos, as sentences."""
    unit = await convo.session.get(Unit, occurrence.unit_id)
    context = FlagContext(report, occurrence, unit, utcnow(), convo.app.settings.tz)
    flags, _prints = await find_flags(convo.session, convo.app.settings, context)
    return await flag_sentences(convo.session, flags, convo._, convo.app.settings.tz)


async def add_more_photos(convo: Conversation, raw_id: str) -> None:
    """📷 on the review card: back to collecting photos for the same draft."""
    report = await _own_draft(convo, raw_id)
    if report is None:
        return
    photos = (
        await convo.session.exec(select(Evidence.id).where(Evidence.report_id == report.id))
    ).all()
    convo.set_state("awaiting_photos", report_id=report.id, photos=len(photos))
    text, buttons = _photo_prompt(convo, report.id, len(photos))
    await convo.reply(text, buttons, in_place=True)


async def submit(convo: Conversation, raw_id: str) -> None:
    report = await _own_draft(convo, raw_id)
    if report is None:
        return
    _ = convo._
    occurrence = await convo.session.get(Occurrence, report.occurrence_id)
    if occurrence.status not in ACTIVE_STATUSES:
        convo.clear_state()
        await convo.reply(_("This task was already closed. Nothing was changed."), in_place=True)
        return
    behalf = await file_done(convo, report, occurrence)
    convo.clear_state()
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    if behalf:
        unit = await convo.session.get(Unit, occurrence.unit_id)
        await convo.reply(
            _("Recorded as done on behalf of {unit}: {title}.").format(
                unit=unit.name, title=task.title
            ),
            [[Button(f"📋 {unit.name}"[:40].rstrip(), f"vil:{unit.id}")]],
            in_place=True,
        )
        return
    await convo.reply(
        _("Recorded as done: {title}. Thank you!").format(title=task_title(task, convo.locale)),
        more_tasks_button(_),
        in_place=True,
    )


async def file_done(convo: Conversation, report: Report, occurrence: Occurrence) -> bool:
    """A draft becomes the record that the task is done: submitted, its photos kept and
    checked, the occurrence closed. True when an officer reported on a village's behalf."""
    report.status = "submitted"
    report.submitted_at = utcnow()
    await keep_report_evidence(convo.session, report.id, convo.app.settings.data_dir)
    behalf = on_behalf(convo, occurrence)
    if behalf:
        heads = await village_heads(convo, occurrence)
        report.on_behalf_of_user_id = heads[0].id if heads else None
    mark_done(occurrence, convo.user)
    convo.session.add_all([report, occurrence])
    unit = await convo.session.get(Unit, occurrence.unit_id)
    await check_report(
        convo.session,
        convo.app.settings,
        FlagContext(report, occurrence, unit, utcnow(), convo.app.settings.tz),
    )
    await audit(
        convo.session,
        "report.on_behalf" if behalf else "report.submitted",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
        on_behalf_of=report.on_behalf_of_user_id,
    )
    return behalf


async def cancel(convo: Conversation, raw_id: str) -> None:
    report = await convo.session.get(Report, int(raw_id)) if raw_id.isdigit() else None
    if report is not None and report.user_id == convo.user.id and report.status == "draft":
        report.status = "cancelled"
        convo.session.add(report)
    convo.clear_state()
    await convo.reply(
        convo._("Cancelled. Nothing was recorded. Type /viec to see your tasks."),
        more_tasks_button(convo._),
        in_place=True,
    )


async def latest_reminded(convo: Conversation) -> Occurrence | None:
    """The task most recently reminded to this person, else their soonest open task."""
    rows = await convo.session.exec(
        select(Occurrence)
        .join(Reminder, Reminder.occurrence_id == Occurrence.id)
        .where(
            Occurrence.unit_id == convo.user.unit_id,
            col(Occurrence.status).in_(ACTIVE_STATUSES),
            Reminder.outcome == "sent",  # folded and unreachable stages reached nobody
        )
        .order_by(col(Reminder.created_at).desc())
        .limit(1)
    )
    occurrence = rows.first()
    if occurrence is not None:
        return occurrence
    items = await open_for_user(
        convo.session, convo.app.framework, convo.user, to_db(datetime.now(UTC)), 1
    )
    return items[0][0] if items else None


async def quick_done(convo: Conversation) -> None:
    _ = convo._
    occurrence = await latest_reminded(convo)
    if occurrence is None:
        await convo.reply(_("You have no open tasks right now. Thank you!"))
        return
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    await convo.reply(
        _('Have you finished "{title}"?').format(title=task_title(task, convo.locale)),
        [[Button(_("Yes, it is done"), f"qdone:{occurrence.id}"), Button(_("No"), "menu:viec")]],
    )


async def confirm_quick_done(convo: Conversation, raw_id: str) -> None:
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    _ = convo._
    if occurrence.status not in ACTIVE_STATUSES:
        await convo.reply(_("This task was already closed. Nothing was changed."), in_place=True)
        return
    report = Report(
        occurrence_id=occurrence.id,
        user_id=convo.user.id,
        kind="done",
        status="submitted",
        submitted_at=utcnow(),
    )
    mark_done(occurrence, convo.user)
    convo.session.add_all([report, occurrence])
    await audit(convo.session, "report.quick_done", f"occurrence:{occurrence.id}", convo.user)
    await convo.reply(
        _("Recorded as done: {title}. Thank you!").format(title=task_title(task, convo.locale))
        + "\n"
        + _("You can still send a photo of the evidence at any time."),
        in_place=True,
    )
