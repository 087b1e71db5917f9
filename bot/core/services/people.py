"""Users, their channel identities, and invitations to register in chat."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.models import AuditLog, ChannelIdentity, Invite, Unit, User, utcnow

# No 0/O, 1/I/L: codes are read aloud over the phone and typed on small keyboards.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
WRONG_CODE_LIMIT = 5
WRONG_CODE_WINDOW = timedelta(hours=1)


class InviteProblem(Exception):
    """Why a code cannot be used: unknown, used, expired or too many tries (see `.reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Registration:
    user: User
    unit: Unit
    linked_existing: bool


def new_invite_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


async def create_invite(
    session: AsyncSession,
    unit: Unit,
    role: str,
    ttl: timedelta,
    created_by: User | None = None,
    for_user: User | None = None,
) -> Invite:
    invite = Invite(
        code=new_invite_code(),
        unit_id=unit.id,
        role=role,
        user_id=for_user.id if for_user else None,
        created_by_user_id=created_by.id if created_by else None,
        expires_at=utcnow() + ttl,
    )
    session.add(invite)
    await session.flush()
    return invite


async def add_user(session: AsyncSession, unit: Unit, role: str, name: str = "") -> User:
    user = User(name=name, role=role, unit_id=unit.id)
    session.add(user)
    await session.flush()
    return user


async def identity_for(
    session: AsyncSession, channel: str, external_id: str
) -> ChannelIdentity | None:
    return (
        await session.exec(
            select(ChannelIdentity).where(
                ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id
            )
        )
    ).first()


async def preferred_identities(
    session: AsyncSession, user_ids: list[int]
) -> dict[int, ChannelIdentity | None]:
    """For each person, in one query, the reachable chat they used last: never a blocked one,
    and a Zalo OA chat only within the 7 days Zalo allows writing to it."""
    from bot.channels.zalo_oa import within_window  # late: the channel module is heavier

    found: dict[int, ChannelIdentity | None] = dict.fromkeys(user_ids)
    if not user_ids:
        return found
    rows = await session.exec(
        select(ChannelIdentity)
        .where(col(ChannelIdentity.user_id).in_(user_ids), col(ChannelIdentity.blocked).is_(False))
        .order_by(
            col(ChannelIdentity.last_interaction_at).desc().nulls_last(),
            col(ChannelIdentity.id).desc(),
        )
    )
    now = utcnow()
    for identity in rows.all():
        if found[identity.user_id] is None and within_window(identity, now):
            found[identity.user_id] = identity
    return found


async def link_identity(
    session: AsyncSession, user: User, channel: str, external_id: str, display_name: str = ""
) -> ChannelIdentity:
    identity = await identity_for(session, channel, external_id)
    if identity is None:
        identity = ChannelIdentity(
            user_id=user.id, channel=channel, external_id=external_id, display_name=display_name
        )
    else:
        identity.user_id = user.id
        identity.blocked = False
    identity.last_interaction_at = utcnow()
    session.add(identity)
    await session.flush()
    return identity


async def wrong_codes_recently(session: AsyncSession, subject: str) -> int:
    since = utcnow() - WRONG_CODE_WINDOW
    result = await session.exec(
        select(func.count())
        .select_from(AuditLog)
        .where(
            AuditLog.action == "invite.wrong_code",
            AuditLog.subject == subject,
            col(AuditLog.at) >= since,
        )
    )
    return int(result.one())


async def redeem_invite(
    session: AsyncSession, code: str, channel: str, external_id: str, display_name: str = ""
) -> Registration:
    """Bind a chat to the invite's unit and role. Raises InviteProblem; the caller audits it."""
    subject = f"{channel}:{external_id}"
    if await wrong_codes_recently(session, subject) >= WRONG_CODE_LIMIT:
        raise InviteProblem("rate_limited")
    invite = (await session.exec(select(Invite).where(Invite.code == normalise_code(code)))).first()
    if invite is None:
        raise InviteProblem("unknown")
    if invite.used_at is not None:
        raise InviteProblem("used")
    if invite.expires_at < utcnow():
        raise InviteProblem("expired")
    unit = await session.get(Unit, invite.unit_id)
    assert unit is not None  # foreign key
    user = await session.get(User, invite.user_id) if invite.user_id else None
    linked_existing = user is not None
    if user is None:
        current = await identity_for(session, channel, external_id)
        existing = await session.get(User, current.user_id) if current else None
        if existing and existing.unit_id == invite.unit_id and existing.role == invite.role:
            user, linked_existing = existing, True
        else:
            user = await add_user(session, unit, invite.role, display_name)
    await link_identity(session, user, channel, external_id, display_name)
    invite.used_at = utcnow()
    invite.used_by_user_id = user.id
    session.add(invite)
    return Registration(user=user, unit=unit, linked_existing=linked_existing)


async def audit(
    session: AsyncSession,
    action: str,
    subject: str = "",
    actor: User | None = None,
    **detail: object,
) -> None:
    session.add(
        AuditLog(
            action=action, subject=subject, actor_user_id=actor.id if actor else None, detail=detail
        )
    )
