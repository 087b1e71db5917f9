"""What one dashboard user may see: their unit and everything below it; an agency, the tasks
it supervises across the province; the province committee and Sở Nội vụ, everything.

Anything outside answers 404 (the page does not say whether it exists)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.framework import Framework
from bot.core.models import Level, Occurrence, Unit, User

SEES_ALL_AGENCIES = frozenset({"so-noi-vu"})


@dataclass(frozen=True)
class Place:
    """A unit as the pages show it (plain, cheap to load by the thousand)."""

    id: int
    code: str
    name: str
    level: str
    parent_id: int | None


PLACE_COLUMNS = (Unit.id, Unit.code, Unit.name, Unit.level, Unit.parent_id)


def place(unit: Unit) -> Place:
    return Place(unit.id, unit.code, unit.name, unit.level, unit.parent_id)


@dataclass
class Scope:
    user: User
    unit: Place  # where the user works
    root: Place  # the top of what they see
    units: dict[int, Place]
    children: dict[int, list[int]] = field(default_factory=dict)
    task_keys: frozenset[str] | None = None  # an agency: only the tasks it supervises

    def has_unit(self, unit_id: int) -> bool:
        return unit_id in self.units

    def has_occurrence(self, occurrence: Occurrence) -> bool:
        return self.has_unit(occurrence.unit_id) and (
            self.task_keys is None or occurrence.task_key in self.task_keys
        )

    def subtree(self, unit_id: int) -> list[int]:
        found, frontier = [unit_id], [unit_id]
        while frontier:
            frontier = [child for parent in frontier for child in self.children.get(parent, [])]
            found += frontier
        return found

    def child_units(self, unit_id: int) -> list[Place]:
        return [self.units[child] for child in self.children.get(unit_id, [])]

    def trail(self, unit_id: int) -> list[Place]:
        """Breadcrumbs: from the scope's root down to the unit."""
        path: list[Place] = []
        current: int | None = unit_id
        while current is not None and current in self.units:
            path.insert(0, self.units[current])
            if current == self.root.id:
                break
            current = self.units[current].parent_id
        return path

    def owner_of(self, unit_id: int, level: str) -> Place | None:
        """The unit of `level` at or above `unit_id` (a village's commune)."""
        current: int | None = unit_id
        while current is not None and current in self.units:
            if self.units[current].level == level:
                return self.units[current]
            current = self.units[current].parent_id
        return None


async def _tree_below(session: AsyncSession, root: Place) -> tuple[dict[int, Place], dict]:
    units = {root.id: root}
    children: dict[int, list[int]] = {}
    frontier = [root.id]
    while frontier:
        rows = await session.exec(select(*PLACE_COLUMNS).where(col(Unit.parent_id).in_(frontier)))
        frontier = []
        for unit in (Place(*row) for row in rows.all()):
            if unit.id in units:
                continue
            units[unit.id] = unit
            children.setdefault(unit.parent_id, []).append(unit.id)
            frontier.append(unit.id)
    for ids in children.values():
        ids.sort(key=lambda unit_id: vietnamese_key(units[unit_id].name))
    return units, children


async def _all_units(session: AsyncSession) -> tuple[dict[int, Place], dict]:
    """The whole tree in one query (the province's view)."""
    rows = (await session.exec(select(*PLACE_COLUMNS))).all()
    units = {row[0]: Place(*row) for row in rows}
    children: dict[int, list[int]] = {}
    for unit in units.values():
        if unit.parent_id is not None and unit.parent_id in units:
            children.setdefault(unit.parent_id, []).append(unit.id)
    for ids in children.values():
        ids.sort(key=lambda unit_id: vietnamese_key(units[unit_id].name))
    return units, children


async def scope_for(session: AsyncSession, framework: Framework, user: User) -> Scope | None:
    found = await session.get(Unit, user.unit_id)
    if found is None or not user.active:
        return None
    unit = place(found)
    task_keys = None
    root = unit
    if unit.level == Level.agency:
        province = await session.get(Unit, unit.parent_id) if unit.parent_id else None
        root = place(province) if province else unit
        if unit.code not in SEES_ALL_AGENCIES:
            task_keys = framework.supervised_by(unit.code)
    if root.level == Level.province and root.parent_id is None:
        units, children = await _all_units(session)
    else:
        units, children = await _tree_below(session, root)
    return Scope(user, unit, root, units, children, task_keys)


# --- Vietnamese alphabetical order ---------------------------------------------------------

# a ă â b c d đ e ê g h i k l m n o ô ơ p q r s t u ư v x y; tones sort after the letters.
_LETTER_MARKS = {"\u0306": 1, "\u0302": 2, "\u031b": 3}  # breve, circumflex, horn
_TONES = {"\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0301": 4, "\u0323": 5}


@lru_cache(maxsize=65536)
def vietnamese_key(text: str) -> tuple:
    letters: list[tuple[str, int]] = []
    tones: list[int] = []
    for char in text.lower():
        if char == "đ":
            letters.append(("d", 1))
            continue
        decomposed = unicodedata.normalize("NFD", char)
        base, marks = decomposed[0], decomposed[1:]
        modifier = sum(_LETTER_MARKS.get(mark, 0) for mark in marks)
        tones.append(sum(_TONES.get(mark, 0) for mark in marks))
        letters.append((base, modifier))
    return (tuple(letters), tuple(tones))
