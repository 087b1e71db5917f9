"""Reporting a task done: photos (as photos or image files), an optional note, a confirmation.

Also: a photo sent with no task in progress ("which task is this for?") and free text such as
"xong" / "da xong" meaning done for the most recently reminded task, after one tap.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from sqlmodel import col, select

from bot.core.messages import Button
from bot.core.models import Evidence, Occurrence, Reminder, Report, TaskDefinition, utcnow
from bot.core.services.evidence import MAX_PHOTO_BYTES, EvidenceProblem, StoredPhoto, store_photo
from bot.core.services.occurrences import ACTIVE_STATUSES, mark_done, open_for_user
from bot.core.services.people import audit
from bot.core.timeutil import to_db
from handlers.common import load_occurrence
from handlers.conversation import Conversation

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
    buttons = [
        [Button(_("➡️ Continue"), f"next:{report_id}")],
        [Button(_("✖️ Cancel"), f"cancel:{report_id}")],
    ]
    if count == 0:
        text = _(
            "Please send one or more photos of the evidence (as photos or image files). "
            "When you have sent them all, tap Continue. No photo? Tap Continue."
        )
    else:
        text = _("Received photo {count}. Send more, or tap Continue.").format(count=count)
    return text, buttons


async def begin(convo: Conversation, raw_id: str) -> None:
    """✅ or 📷 on a task: open a draft report and wait for photos."""
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    if occurrence.status not in ACTIVE_STATUSES:
        await convo.reply(
            convo._("This task is already closed. Type /viec to see your open tasks.")
        )
        return
    report = Report(occurrence_id=occurrence.id, user_id=convo.user.id, kind="done")
    convo.session.add(report)
    await convo.session.flush()
    convo.set_state("awaiting_photos", report_id=report.id, photos=0)
    text, buttons = _photo_prompt(convo, report.id, 0)
    await convo.reply(f"{task.title}\n{text}", buttons)


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
    data = await file.fetch()
    try:
        return store_photo(data, convo.app.settings.data_dir)
    except EvidenceProblem as problem:
        if problem.reason == "too_large":
            await convo.reply(_("This file is larger than 20 MB. Please send a smaller photo."))
        else:
            await convo.reply(
                _("I can only take photos as evidence. Please send a picture (JPG or PNG).")
            )
        await audit(
            convo.session, f"evidence.{problem.reason}", convo.subject, convo.user, size=len(data)
        )
        return None


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


async def photo_in_report(convo: Conversation) -> None:
    photo = await _receive_photo(convo)
    if photo is None:
        return
    report_id = int(convo.state_data["report_id"])
    convo.session.add(_evidence_row(report_id, photo))
    count = int(convo.state_data.get("photos", 0)) + 1
    convo.set_state("awaiting_photos", report_id=report_id, photos=count)
    text, buttons = _photo_prompt(convo, report_id, count)
    await convo.reply(text, buttons)


async def photo_without_task(convo: Conversation) -> None:
    """Keep the photo, then ask which task it belongs to."""
    _ = convo._
    photo = await _receive_photo(convo)
    if photo is None:
        return
    pending = [*convo.state_data.get("pending_photos", []), photo.as_dict()]
    items = await open_for_user(
        convo.session, convo.app.framework, convo.user, to_db(datetime.now(UTC)), 8
    )
    if not items:
        convo.clear_state()
        await convo.reply(_("Thank you for the photo, but you have no open task to attach it to."))
        return
    convo.set_state("choosing_task", pending_photos=pending)
    buttons = [[Button(task.title[:60], f"pick:{occurrence.id}")] for occurrence, task in items]
    await convo.reply(_("Which task is this photo for?"), buttons)


async def pick_task(convo: Conversation, raw_id: str) -> None:
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    pending = [StoredPhoto.from_dict(item) for item in convo.state_data.get("pending_photos", [])]
    report = Report(occurrence_id=occurrence.id, user_id=convo.user.id, kind="done")
    convo.session.add(report)
    await convo.session.flush()
    for photo in pending:
        convo.session.add(_evidence_row(report.id, photo))
    convo.set_state("awaiting_photos", report_id=report.id, photos=len(pending))
    text, buttons = _photo_prompt(convo, report.id, len(pending))
    await convo.reply(f"{task.title}\n{text}", buttons)


async def _own_draft(convo: Conversation, raw_id: str) -> Report | None:
    report = await convo.session.get(Report, int(raw_id)) if raw_id.isdigit() else None
    if report is None or report.user_id != convo.user.id or report.status != "draft":
        await convo.reply(convo._("This report is no longer open. Type /viec to start again."))
        return None
    return report


async def ask_note(convo: Conversation, raw_id: str) -> None:
    report = await _own_draft(convo, raw_id)
    if report is None:
        return
    _ = convo._
    convo.set_state("awaiting_note", report_id=report.id)
    await convo.reply(
        _("Would you like to add a note? Type it now, or tap Skip."),
        [[Button(_("Skip"), f"skip:{report.id}")]],
    )


async def note_text(convo: Conversation) -> None:
    report = await convo.session.get(Report, int(convo.state_data["report_id"]))
    if report is None:
        convo.clear_state()
        return
    report.note = convo.incoming.text.strip()[:2000]
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
        _("Task: {title}").format(title=task.title),
        _("Photos: {count}").format(count=len(photos)),
        _("Note: {note}").format(note=report.note or "—"),
    ]
    await convo.reply(
        "\n".join(lines),
        [
            [
                Button(_("✅ Send report"), f"send:{report.id}"),
                Button(_("✖️ Cancel"), f"cancel:{report.id}"),
            ]
        ],
    )


async def submit(convo: Conversation, raw_id: str) -> None:
    report = await _own_draft(convo, raw_id)
    if report is None:
        return
    _ = convo._
    occurrence = await convo.session.get(Occurrence, report.occurrence_id)
    if occurrence.status not in ACTIVE_STATUSES:
        convo.clear_state()
        await convo.reply(_("This task was already closed. Nothing was changed."))
        return
    report.status = "submitted"
    report.submitted_at = utcnow()
    mark_done(occurrence, convo.user)
    convo.session.add_all([report, occurrence])
    await audit(
        convo.session,
        "report.submitted",
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
    )
    convo.clear_state()
    task = await convo.session.get(TaskDefinition, occurrence.task_key)
    await convo.reply(
        _("Recorded as done: {title}. Thank you!").format(title=task.title)
        + "\n"
        + _("Type /viec to see what is left.")
    )


async def cancel(convo: Conversation, raw_id: str) -> None:
    report = await convo.session.get(Report, int(raw_id)) if raw_id.isdigit() else None
    if report is not None and report.user_id == convo.user.id and report.status == "draft":
        report.status = "cancelled"
        convo.session.add(report)
    convo.clear_state()
    await convo.reply(convo._("Cancelled. Nothing was recorded. Type /viec to see your tasks."))


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
        _('Have you finished "{title}"?').format(title=task.title),
        [[Button(_("Yes, it is done"), f"qdone:{occurrence.id}"), Button(_("No"), "menu:viec")]],
    )


async def confirm_quick_done(convo: Conversation, raw_id: str) -> None:
    loaded = await load_occurrence(convo, raw_id)
    if loaded is None:
        return
    occurrence, task = loaded
    _ = convo._
    if occurrence.status not in ACTIVE_STATUSES:
        await convo.reply(_("This task was already closed. Nothing was changed."))
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
        _("Recorded as done: {title}. Thank you!").format(title=task.title)
        + "\n"
        + _("You can still send a photo of the evidence at any time."),
    )
