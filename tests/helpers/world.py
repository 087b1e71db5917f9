"""A small seeded world on a real database: the Khánh Hòa sample units, the framework, people.

`World` is what journey tests talk about: "the village head of Thôn 1", "the commune officer".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlmodel import select

from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework import Framework
from bot.core.models import Invite, Unit, User
from bot.core.services.framework_sync import sync_task_definitions
from bot.core.services.people import add_user, create_invite, link_identity
from bot.core.units import UnitRow, read_units_csv, upsert_units
from scheduler.planner import plan

SAMPLE_UNITS_CSV = Settings().framework_dir / "units" / "khanh-hoa-2022.csv"


@dataclass
class World:
    app: AppContext
    district: Unit
    commune: Unit
    villages: list[Unit]
    users: dict[str, User] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.app.db

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
    """Units of the sample CSV, the framework synced, occurrences planned from `today`."""
    app = AppContext(settings=settings, db=db, framework=framework)
    async with db.session() as session:
        await upsert_units(session, sample_subset(read_units_csv(SAMPLE_UNITS_CSV)))
        await sync_task_definitions(session, framework)
        await session.commit()
        commune = (
            await session.exec(select(Unit).where(Unit.level == "commune").order_by(Unit.code))
        ).first()
        district = await session.get(Unit, commune.parent_id)
        villages = list(
            (
                await session.exec(
                    select(Unit).where(Unit.parent_id == commune.id).order_by(Unit.code)
                )
            ).all()
        )
        await plan(session, framework, settings, today or date.today())
        await session.commit()
    return World(app=app, district=district, commune=commune, villages=villages)
