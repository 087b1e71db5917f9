"""The list pages of a unit: its tasks (filtered, paginated), overdue items with "Đã đôn đốc",
its photos, its people."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlmodel import col, select

from bot.core.audit_actions import FOLLOWED_UP
from bot.core.models import AuditLog, Invite, Level, Unit
from bot.core.services.follow_ups import follow_up_subject, record_follow_up
from bot.core.services.people import audit, create_invite
from bot.core.services.rollup import BUCKETS
from bot.core.timeutil import from_db
from bot.web.dashboard import queries
from bot.web.dashboard.scope import vietnamese_key
from bot.web.dashboard.visit import OutOfScope, Visit, int_arg, page

OVERDUE_ROWS = 500  # oldest first; each commune shows ten and links to all of its own


def _unit(request: web.Request, visit: Visit):  # noqa: ANN202
    return visit.unit(int_arg(request.match_info["unit_id"]))


@page
async def tasks_page(request: web.Request, visit: Visit) -> web.Response:
    unit = _unit(request, visit)
    filters = queries.Filters.from_query(request, visit)
    rows, total = await queries.occurrences(visit, unit, filters)
    pages = max(1, -(-total // queries.PAGE_SIZE))
    framework = visit.ctx.framework
    tasks = sorted(
        (
            t
            for t in framework.tasks.values()
            if visit.scope.task_keys is None or t.key in visit.scope.task_keys
        ),
        key=lambda t: t.title,
    )
    return visit.render(
        "tasks.html",
        title=visit._("Tasks"),
        unit=unit,
        trail=visit.scope.trail(unit.id),
        rows=rows,
        total=total,
        filters=filters,
        pages=pages,
        buckets=BUCKETS,
        dimensions=sorted(framework.dimensions.values(), key=lambda d: d.number),
        tasks=tasks,
    )


def _supervises(visit: Visit, commune) -> bool:  # noqa: ANN001
    """The chat's rule (handlers/followup.py): a unit above the commune follows it up."""
    return visit.scope.has_unit(commune.id) and visit.user.unit_id != commune.id


async def _last_follow_ups(visit: Visit, commune_ids: list[int]) -> dict[int, AuditLog]:
    if not commune_ids:
        return {}
    rows = await visit.session.exec(
        select(AuditLog)
        .where(
            AuditLog.action == FOLLOWED_UP,
            col(AuditLog.subject).in_([follow_up_subject(cid) for cid in commune_ids]),
        )
        .order_by(col(AuditLog.at))
    )
    return {int(entry.subject.split(":")[1]): entry for entry in rows.all()}


@page
async def overdue_page(request: web.Request, visit: Visit) -> web.Response:
    unit = _unit(request, visit)
    rows, per_unit = await queries.overdue(visit, unit, limit=OVERDUE_ROWS)
    groups: dict[int, dict] = {}
    for unit_id, count in per_unit.items():
        place = visit.scope.units[unit_id]
        commune = visit.scope.owner_of(unit_id, Level.commune) or place
        group = groups.setdefault(commune.id, {"commune": commune, "rows": [], "count": 0})
        group["count"] += count
    for occurrence, task, place in rows:
        commune = visit.scope.owner_of(place.id, Level.commune) or place
        groups[commune.id]["rows"].append((occurrence, task, place))
    last = await _last_follow_ups(visit, list(groups))
    for commune_id, group in groups.items():
        commune = group["commune"]
        group["can_follow_up"] = commune.level == Level.commune and _supervises(visit, commune)
        group["last"] = last.get(commune_id)
    return visit.render(
        "overdue.html",
        title=visit._("Overdue"),
        unit=unit,
        trail=visit.scope.trail(unit.id),
        groups=sorted(
            groups.values(), key=lambda g: (-g["count"], vietnamese_key(g["commune"].name))
        ),
        total=sum(per_unit.values()),
        days_late=lambda occ: max((visit.today - local_date(occ.due_at, visit)).days, 0),
        noted=request.query.get("noted", ""),
    )


@page
async def follow_up(request: web.Request, visit: Visit) -> web.StreamResponse:
    unit = _unit(request, visit)
    form = await request.post()
    commune = visit.unit(int_arg(str(form.get("commune", ""))))
    if commune.level != Level.commune or not _supervises(visit, commune):
        raise OutOfScope
    # The same record as the chat's "Đã đôn đốc" button, so the next digest shows it.
    await record_follow_up(visit.session, visit.user, commune.id, commune.name, via="web")
    async with visit.ctx.db.writer():
        await visit.session.commit()
    raise web.HTTPSeeOther(f"/dashboard/u/{unit.id}/overdue?noted={commune.id}")


@page
async def photos_page(request: web.Request, visit: Visit) -> web.Response:
    unit = _unit(request, visit)
    raw = request.query.get("page", "1")
    number = int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1
    rows = await queries.photos(visit, unit, number)
    return visit.render(
        "photos.html",
        title=visit._("Evidence photos"),
        unit=unit,
        trail=visit.scope.trail(unit.id),
        rows=rows,
        page_number=number,
        more=len(rows) == 48,
    )


def _may_invite(visit: Visit, unit) -> bool:  # noqa: ANN001
    """The chat's rule (/moi): a commune officer invites the village heads of their commune."""
    return visit.user.role == "commune_committee" and unit.id == visit.user.unit_id


@page
async def invite(request: web.Request, visit: Visit) -> web.StreamResponse:
    unit = _unit(request, visit)
    form = await request.post()
    village = visit.unit(int_arg(str(form.get("village", ""))))
    if not _may_invite(visit, unit) or village.parent_id != unit.id:
        raise OutOfScope
    row = await visit.session.get(Unit, village.id)
    ttl = timedelta(hours=visit.ctx.settings.invite_ttl_hours)
    created = await create_invite(visit.session, row, "village_head", ttl, created_by=visit.user)
    await audit(
        visit.session,
        "invite.created",
        f"unit:{village.id}",
        visit.user,
        code=created.code,
        via="web",
    )
    async with visit.ctx.db.writer():
        await visit.session.commit()
    raise web.HTTPSeeOther(f"/dashboard/u/{unit.id}/people?invite={created.id}")


async def _shown_invite(request: web.Request, visit: Visit) -> dict | None:
    raw = request.query.get("invite", "")
    found = await visit.session.get(Invite, int(raw)) if raw.isdigit() and len(raw) < 12 else None
    if found is None or found.created_by_user_id != visit.user.id:
        return None
    username = visit.ctx.settings.telegram_bot_username
    return {
        "code": found.code,
        "village": visit.scope.units[found.unit_id].name,
        "expires_at": found.expires_at,
        "link": f"https://t.me/{username}?start={found.code}" if username else "",
    }


@page
async def people_page(request: web.Request, visit: Visit) -> web.Response:
    unit = _unit(request, visit)
    people = await queries.people(visit, unit)
    may_invite = _may_invite(visit, unit)
    return visit.render(
        "people.html",
        title=visit._("People"),
        unit=unit,
        trail=visit.scope.trail(unit.id),
        people=people,
        unreachable=sum(1 for person in people if person.reachable is None),
        villages=[v for v in visit.scope.child_units(unit.id) if v.level == Level.village]
        if may_invite
        else [],
        invite=await _shown_invite(request, visit) if may_invite else None,
    )


def local_date(moment, visit: Visit):  # noqa: ANN001, ANN201
    return from_db(moment).astimezone(visit.ctx.settings.tz).date()
