"""A small seeded world on a real database: the Khánh Hòa sample units, the framework, people.

`World` is what journey tests talk about: "the village head of Thôn 1", "the commune officer",
"the supervisor" (the district in the 2022 three-tier tree; the province in the 2025 two-tier
one, which has no districts). Each world is built for one structure (`settings.structure`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.core.config import DEFAULT_FRAMEWORK_DIR, Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework, load_framework
from bot.core.models import Invite, Unit, User
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.services.people import add_user, create_invite, link_identity
from bot.core.units import UnitRow, read_units_csv, upsert_units, vietnam_provinces_rows
from scheduler.planner import plan

SAMPLE_UNITS_CSV = Settings().framework_dir / "units" / "khanh-hoa-2022.csv"
SAMPLE_2025_CSV = DEFAULT_FRAMEWORK_DIR / "units" / "khanh-hoa-2025-sample.csv"
TWO_TIER = "two_tier"
_frameworks: dict[str, Framework] = {}

# A test whose mechanics do not depend on the unit tree runs under three-tier only (the
# `structure` fixture of tests/conftest.py runs the others under both).
structure_independent = pytest.mark.parametrize("structure", ["three_tier"], indirect=True)


def framework_for(structure: str) -> Framework:
    """The shipped framework under `structure`, loaded once per test run."""
    if structure not in _frameworks:
        _frameworks[structure] = load_framework(DEFAULT_FRAMEWORK_DIR, None, structure)
    return _frameworks[structure]


@dataclass
class World:
    app: AppContext
    district: Unit | None  # None in the two-tier structure
    commune: Unit
    villages: list[Unit]
    users: dict[str, User] = field(default_factory=dict)
    province: Unit | None = None

    @property
    def db(self) -> Database:
        return self.app.db

    @property
    def two_tier(self) -> bool:
        return self.app.settings.structure == TWO_TIER

    @property
    def supervisor(self) -> Unit:
        """Where a commune's "UBND cấp huyện" supervision lands: its district, or (two-tier,
        no PAPIBOT_DISTRICT_SUBSTITUTE) the province."""
        unit = self.province if self.two_tier else self.district
        assert unit is not None
        return unit

    @property
    def supervisor_role(self) -> str:
        return "province_committee" if self.two_tier else "district_committee"

    async def invite(self, unit: Unit, role: str, ttl: timedelta = timedelta(hours=72)) -> Invite:
        async with self.db.session() as session:
            invite = await create_invite(session, unit, role, ttl)
            await session.commit()
            return invite

    async def person(
        self, name: str, unit: Unit, role: str, channel: str | None = None, external_id: str = ""
    ) -> User:
        """A registered user, optionally already linked to a chat."""
        async with self.db.session() as session:
            user = await add_user(session, unit, role, name)
            if channel:
                await link_identity(session, user, channel, external_id, name)
            await session.commit()
        self.users[name] = user
        return user


def two_tier_rows(communes: int = 2) -> list[UnitRow]:
    """The 2025 tree: the province (vietnam-provinces), its agencies, and the first `communes`
    with sample villages (khanh-hoa-2025-sample.csv) with those villages."""
    sample = read_units_csv(SAMPLE_2025_CSV)
    with_villages = sorted({r.parent_code for r in sample if r.level == "village"})[:communes]
    tree = vietnam_provinces_rows(56)
    return [r for r in tree if r.level == "province" or r.code in with_villages] + [
        r for r in sample if r.level == "agency" or r.parent_code in with_villages
    ]


def write_small_units_csv(target: Path, structure: str) -> Path:
    """The province, (three-tier) one district, its first commune and that commune's villages:
    all a journey needs, without planning hundreds of other units. Two-tier: the province,
    its first ward with sample villages (Phường Bắc Nha Trang) and them."""
    if structure == TWO_TIER:
        rows = [r for r in two_tier_rows(1) if r.level != "agency"]
        with target.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["code", "name", "level", "parent_code", "sample"])
            writer.writerows([r.code, r.name, r.level, r.parent_code, ""] for r in rows)
        return target
    with SAMPLE_UNITS_CSV.open(encoding="utf-8") as f:
        found = list(csv.DictReader(f))
    commune = sorted((r for r in found if r["level"] == "commune"), key=lambda r: r["code"])[0]
    district = next(r for r in found if r["code"] == commune["parent_code"])
    province = next(r for r in found if r["code"] == district["parent_code"])
    villages = [r for r in found if r["parent_code"] == commune["code"]]
    with target.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(found[0]))
        writer.writeheader()
        writer.writerows([province, district, commune, *villages])
    return target


async def world_of(app: AppContext, session, commune: Unit) -> World:  # noqa: ANN001
    """The World around `commune`: its villages, its district (three-tier), the province."""
    villages = list(
        (
            await session.exec(
                select(Unit)
                .where(Unit.parent_id == commune.id, Unit.level == "village")
                .order_by(Unit.code)
            )
        ).all()
    )
    parent = await session.get(Unit, commune.parent_id) if commune.parent_id else None
    district = parent if parent is not None and parent.level == "district" else None
    province = parent if parent is not None and parent.level == "province" else None
    if district is not None and district.parent_id is not None:
        province = await session.get(Unit, district.parent_id)
    return World(app=app, district=district, commune=commune, villages=villages, province=province)


def sample_subset(rows: list[UnitRow], communes_per_district: int = 2) -> list[UnitRow]:
    """The province, its agencies, two districts, a few communes each and their villages.

    Small enough to plan in well under a second, real enough to cross every level.
    """
    districts = sorted(r.code for r in rows if r.level == "district")[:2]
    communes: list[str] = []
    for district in districts:
        children = sorted(
            r.code for r in rows if r.level == "commune" and r.parent_code == district
        )
        communes += children[:communes_per_district]
    keep = set(districts) | set(communes)
    return [
        r
        for r in rows
        if r.level in ("province", "agency") or r.code in keep or r.parent_code in communes
    ]


async def build_world(
    settings: Settings, db: Database, framework: Framework, today: date | None = None
) -> World:
    """Units of the sample CSV (the 2025 tree for a two-tier `settings.structure`), the
    framework synced, occurrences planned from `today`."""
    app = AppContext(settings=settings, db=db, framework=framework)
    two_tier = settings.structure == TWO_TIER
    rows = two_tier_rows() if two_tier else sample_subset(read_units_csv(SAMPLE_UNITS_CSV))
    async with db.session() as session:
        await upsert_units(session, rows)
        await sync_task_definitions(session, framework)
        await session.commit()
        commune = (
            await session.exec(select(Unit).where(Unit.level == "commune").order_by(Unit.code))
        ).first()
        world = await world_of(app, session, commune)
        await plan(session, framework, settings, today or date.today())
        await session.commit()
    return world
