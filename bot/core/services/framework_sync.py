"""Copy the framework's task records into `task_definitions`, keyed by task key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.framework import Framework, TaskRecord
from bot.core.models import TaskDefinition


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.retired)

    def summary(self) -> str:
        return (
            f"tasks: {len(self.created)} new, {len(self.updated)} updated, "
            f"{len(self.retired)} retired"
        )


def _content_hash(record: TaskRecord) -> str:
    text = json.dumps(record.model_dump(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _apply(definition: TaskDefinition, record: TaskRecord, digest: str) -> None:
    definition.dimension = record.dimension
    definition.sub_dimension = record.sub_dimension
    definition.title = record.title
    definition.schedule = record.schedule
    definition.roles = list(record.roles)
    definition.evidence = record.evidence
    definition.supervisor = record.supervisor
    definition.record = record.model_dump()
    definition.active = True
    definition.content_hash = digest


async def sync_task_definitions(session: AsyncSession, framework: Framework) -> SyncReport:
    """Idempotent: a second call with the same YAML changes nothing. Caller commits."""
    report = SyncReport()
    existing = {row.key: row for row in (await session.exec(select(TaskDefinition))).all()}
    for key, record in framework.tasks.items():
        digest = _content_hash(record)
        row = existing.get(key)
        if row is None:
            row = TaskDefinition(
                key=key, title=record.title, dimension=record.dimension, schedule=record.schedule
            )
            _apply(row, record, digest)
            session.add(row)
            report.created.append(key)
        elif row.content_hash != digest or not row.active:
            _apply(row, record, digest)
            session.add(row)
            report.updated.append(key)
    for key, row in existing.items():
        if key not in framework.tasks and row.active:
            # Kept, not deleted: past occurrences still point at it.
            row.active = False
            session.add(row)
            report.retired.append(key)
    return report
