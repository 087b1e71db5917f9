"""Pieces several journeys share: task lines, the main menu, loading a permitted occurrence."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select

from bot.core.commands import oversees_communes
from bot.core.i18n import Translator, format_day
from bot.core.messages import Button, tap, tap_any
from bot.core.models import Occurrence, TaskDefinition, Unit, User
from bot.core.services.occurrences import may_act_on
from bot.core.services.people import audit
from bot.core.timeutil import from_db
from bot.core.unit_words import named, titled
from handlers.conversation import Conversation


def local_due(convo: Conversation, occurrence: Occurrence) -> datetime:
    return from_db(occurrence.due_at).astimezone(convo.app.settings.tz)


def due_text(convo: Conversation, occurrence: Occurrence) -> str:
    return format_day(local_due(convo, occurrence).date(), convo.locale)


def dimension_label(convo: Conversation, task: TaskDefinition) -> str:
    dimension = convo.app.framework.dimensions.get(task.dimension)
    if dimension is None:
        return task.dimension
    return dimension.short if convo.locale == "vi" else dimension.short_en


def role_label(convo: Conversation, role: str) -> str:
    return convo.app.framework.role_name(role, convo.locale)


def title(convo: Conversation, role: str, unit: Unit, locale: str | None = None) -> str:
    """A role at a unit in the unit's own words: "Tổ trưởng Tổ dân phố 1", "UBND phường …"."""
    return titled(convo.app.framework, role, unit, locale or convo.locale)


def person(convo: Conversation, user: User, unit: Unit, locale: str | None = None) -> str:
    """Someone as an officer reads it: "Tổ trưởng Tổ dân phố 1 (Nguyễn Văn An)"."""
    return named(convo.app.framework, user.role, unit, user.name, locale or convo.locale)


def more_tasks_button(_: Translator) -> list[list[Button]]:
    """After a step, the way on is a button, not a command to type."""
    return [[Button(_("📋 See what is left"), "menu:viec")]]


def task_buttons(convo: Conversation, occurrence_id: int) -> list[list[Button]]:
    _ = convo._
    return [
        [
            Button(_("✅ Done"), f"done:{occurrence_id}"),
            Button(_("📷 Send photo"), f"photo:{occurrence_id}"),
        ],
        [
            Button(_("⏰ Ask for more time"), f"ext:{occurrence_id}"),
            Button(_("❌ Cannot do"), f"cant:{occurrence_id}"),
        ],
    ]


def main_menu(convo: Conversation) -> list[list[Button]]:
    _ = convo._
    rows = [[Button(_("📋 My tasks"), "menu:viec")]]
    role = convo.user.role if convo.user else ""
    if role == "commune_committee":
        rows.append([Button(_("📊 Villages"), "menu:tinhhinh"), Button(_("✉️ Invite"), "menu:moi")])
        rows.append([Button(_("📅 Declare an event"), "menu:sukien")])
    if oversees_communes(convo.app.framework, role):
        rows.append([Button(_("📊 Communes"), "menu:baocao")])
    rows.append([Button(_("❓ Help"), "menu:help")])
    return rows


async def load_occurrence(
    convo: Conversation, raw_id: str
) -> tuple[Occurrence, TaskDefinition] | None:
    """The occurrence a button names, if this person may act on it; refused and audited if not."""
    try:
        occurrence_id = int(raw_id)
    except ValueError:
        occurrence_id = -1
    occurrence = task = None
    if occurrence_id > 0:  # the occurrence and its task in one query
        found = (
            await convo.session.exec(
                select(Occurrence, TaskDefinition)
                .join(TaskDefinition, TaskDefinition.key == Occurrence.task_key)
                .where(Occurrence.id == occurrence_id)
            )
        ).first()
        occurrence, task = found if found is not None else (None, None)
    if (
        occurrence is None
        or convo.user is None
        or not await may_act_on(convo.session, convo.user, occurrence)
    ):
        await audit(
            convo.session,
            "forbidden",
            convo.subject,
            convo.user,
            data=convo.incoming.data,
            occurrence_id=occurrence_id,
        )
        await convo.reply(
            convo._(
                "This task is not one of yours, so I cannot change it. Type /viec to see your tasks."
            ),
            more_tasks_button(convo._),
        )
        return None
    assert task is not None  # foreign key
    return occurrence, task


__all__ = ["tap", "tap_any"]
