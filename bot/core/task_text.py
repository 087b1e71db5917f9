"""A task's title and evidence in the reader's language: the framework's English versions
(`title_en`, `evidence_en`, optional) for English readers, the decision's Vietnamese otherwise."""

from __future__ import annotations

from bot.core.models import TaskDefinition, Unit
from bot.core.unit_words import adapt_text


def task_title(task: TaskDefinition, locale: str) -> str:
    if locale == "en":
        return (task.record or {}).get("title_en") or task.title
    return task.title


def task_evidence(task: TaskDefinition, locale: str, unit: Unit | None = None) -> str:
    """The evidence asked for; in Vietnamese, the village hall in the unit's own words."""
    if locale == "en" and (english := (task.record or {}).get("evidence_en")):
        return english
    return adapt_text(task.evidence, unit)


# How the decision's evidence column says that a figure in the note is enough.
NO_PHOTO = "Không cần ảnh"


def asks_for_photo(task: TaskDefinition) -> bool:
    """Whether the task's evidence is something to photograph (most are: a notice posted, a
    meeting, minutes); "Không cần ảnh; ghi số …" asks for a figure in the note instead."""
    return bool(task.evidence.strip()) and not task.evidence.strip().startswith(NO_PHOTO)
