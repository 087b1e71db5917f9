"""Which unit tree a database holds: three-tier (province › district › commune, 2022) or
two-tier (province › commune, since July 2025). One database holds one of them: importing the
other would rename and re-parent communes whose GSO codes the 2025 reform reused."""

from __future__ import annotations

from sqlalchemy.orm import aliased
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.models import Level, Unit
from bot.core.units import UnitRow

THREE_TIER, TWO_TIER = "three_tier", "two_tier"
LABELS = {THREE_TIER: "three-tier (with districts)", TWO_TIER: "two-tier (no districts)"}


class MixedTreeError(ValueError):
    """An import or a setting that would put the other structure's units in this database."""


def rows_tree(rows: list[UnitRow]) -> str | None:
    """The tree a file's rows belong to (None: no district or commune in them)."""
    if any(row.level == Level.district.value for row in rows):
        return THREE_TIER
    provinces = {row.code for row in rows if row.level == Level.province.value}
    communes = [row for row in rows if row.level == Level.commune.value]
    if any(row.parent_code in provinces for row in communes):
        return TWO_TIER
    return None


async def database_tree(session: AsyncSession) -> str | None:
    """The tree the database holds (None: no district or commune yet)."""
    if (await session.exec(select(Unit.id).where(Unit.level == Level.district).limit(1))).first():
        return THREE_TIER
    parent = aliased(Unit)
    under_province = (
        select(Unit.id)
        .join(parent, parent.id == Unit.parent_id)
        .where(Unit.level == Level.commune, parent.level == Level.province)
        .limit(1)
    )
    return TWO_TIER if (await session.exec(under_province)).first() else None


def check_same(held: str | None, wanted: str | None, what: str) -> None:
    if held and wanted and held != wanted:
        raise MixedTreeError(
            f"{what} is {LABELS[wanted]} but this database holds the {LABELS[held]} tree; "
            "use one structure per database (PAPIBOT_STRUCTURE, a new PAPIBOT_DATABASE_URL)"
        )


__all__ = ["THREE_TIER", "TWO_TIER", "MixedTreeError", "check_same", "database_tree", "rows_tree"]
