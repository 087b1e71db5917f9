"""Demo people for trying papibot in the chat simulator (`papibot demo-seed`).

In the first commune of Thành phố Nha Trang (or the first commune by code when the sample is
not loaded, as in the two-tier 2025 tree: Phường Bắc Nha Trang): a village head of its first
village, a commune officer, the officer of the level above (the district; with no districts,
the province committee, where "UBND cấp huyện" supervision goes), each linked to a `web` chat,
and an unused invite code for the village head of its second village. Running it again finds
them and creates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.context import AppContext
from bot.core.models import Invite, Level, Unit, User, utcnow
from bot.core.services.people import add_user, create_invite, identity_for, link_identity
from bot.core.timeutil import from_db
from bot.core.unit_words import titled
from bot.web.sim_channel import CHANNEL, chat_for_user

DEMO_DISTRICT_NAME = "Thành phố Nha Trang"


class DemoSeedError(LookupError):
    """The database has no place to put the demo people (units not imported yet)."""


@dataclass(frozen=True)
class DemoPerson:
    name: str
    role: str


VILLAGE_HEAD = DemoPerson("Nguyễn Văn An (demo)", "village_head")
COMMUNE_OFFICER = DemoPerson("Trần Thị Bình (demo)", "commune_committee")
DISTRICT_OFFICER = DemoPerson("Lê Văn Cường (demo)", "district_committee")
PROVINCE_OFFICER = DemoPerson("Lê Văn Cường (demo)", "province_committee")  # two-tier


async def _demo_commune(session: AsyncSession) -> Unit:
    district = (
        await session.exec(
            select(Unit)
            .where(Unit.level == Level.district, Unit.name == DEMO_DISTRICT_NAME)
            .order_by(col(Unit.code))
        )
    ).first()
    query = select(Unit).where(Unit.level == Level.commune).order_by(col(Unit.code))
    if district is not None:
        commune = (await session.exec(query.where(Unit.parent_id == district.id))).first()
        if commune is not None:
            return commune
    commune = (await session.exec(query)).first()
    if commune is None:
        raise DemoSeedError(
            "no commune in the database: import units first, e.g. "
            "`papibot units import framework_data/units/khanh-hoa-2022.csv`"
        )
    return commune


async def _person(session: AsyncSession, who: DemoPerson, unit: Unit) -> tuple[User, bool]:
    """The demo user (found by unit, role and name) linked to `web-<id>`; True when created."""
    user = (
        await session.exec(
            select(User)
            .where(User.unit_id == unit.id, User.role == who.role, User.name == who.name)
            .order_by(col(User.id))
        )
    ).first()
    created = user is None
    if user is None:
        user = await add_user(session, unit, who.role, who.name)
    if await identity_for(session, CHANNEL, chat_for_user(user.id)) is None:
        await link_identity(session, user, CHANNEL, chat_for_user(user.id), who.name)
    return user, created


async def _open_invite(
    session: AsyncSession, ctx: AppContext, unit: Unit, created_by: User
) -> tuple[Invite, bool]:
    invite = (
        await session.exec(
            select(Invite)
            .where(
                Invite.unit_id == unit.id,
                Invite.role == VILLAGE_HEAD.role,
                Invite.created_by_user_id == created_by.id,
                col(Invite.user_id).is_(None),
                col(Invite.used_at).is_(None),
                col(Invite.expires_at) > utcnow() + timedelta(hours=1),
            )
            .order_by(col(Invite.id).desc())
        )
    ).first()
    if invite is not None:
        return invite, False
    ttl = timedelta(hours=ctx.settings.invite_ttl_hours)
    return await create_invite(session, unit, VILLAGE_HEAD.role, ttl, created_by=created_by), True


def simulator_url(ctx: AppContext) -> str:
    settings = ctx.settings
    base = settings.public_url.rstrip("/") or f"http://{settings.http_host}:{settings.http_port}"
    return f"{base}/sim"


async def seed_demo(ctx: AppContext) -> list[str]:
    """Create (or find) the demo people and invite; returns lines for the operator."""
    lines: list[str] = []
    created = invite_created = 0
    async with ctx.db.session() as session:
        commune = await _demo_commune(session)
        above = await session.get(Unit, commune.parent_id) if commune.parent_id else None
        villages = list(
            (
                await session.exec(
                    select(Unit)
                    .where(Unit.parent_id == commune.id, Unit.level == Level.village)
                    .order_by(col(Unit.code))
                )
            ).all()
        )
        people: list[tuple[User, Unit]] = []
        if villages:
            head, new = await _person(session, VILLAGE_HEAD, villages[0])
            people.append((head, villages[0]))
            created += new
        officer, new = await _person(session, COMMUNE_OFFICER, commune)
        people.append((officer, commune))
        created += new
        if above is not None and above.level in (Level.district, Level.province):
            who = DISTRICT_OFFICER if above.level == Level.district else PROVINCE_OFFICER
            supervisor, new = await _person(session, who, above)
            people.append((supervisor, above))
            created += new
        invite = None
        if len(villages) > 1:
            invite, invite_created = await _open_invite(session, ctx, villages[1], officer)
        await session.commit()

    lines.append(
        f"Demo people in {commune.name}"
        + (f", {above.name}" if above is not None else "")
        + f" ({created} new; {len(people) - created} already there):"
    )
    for user, unit in people:
        # In the unit's own words: "Tổ trưởng Tổ dân phố 1", "UBND phường Bắc Nha Trang".
        role = titled(ctx.framework, user.role, unit)
        lines.append(f"  {role}: {user.name}, user {user.id}, chat {chat_for_user(user.id)}")
    if not villages:
        lines.append(f"  (no village under {commune.name}: no village head was created)")
    if invite is not None:
        expires = from_db(invite.expires_at).astimezone(ctx.settings.tz)
        lines.append(
            f"{'New invite' if invite_created else 'Invite'} code for the village head of "
            f"{villages[1].name}: {invite.code} (valid until {expires:%d/%m/%Y %H:%M}, "
            f"{ctx.settings.timezone}; type it in the simulator as a guest)"
        )
    lines.append(f"Chat simulator: {simulator_url(ctx)}")
    return lines
