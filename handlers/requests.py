"""Requests that go one level up for a decision (more time, "cannot do"): who decides, and
the reason asked of the person who declines."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import col, select

from bot.core.messages import Button, tap
from bot.core.models import Occurrence, Report, Unit, User, utcnow
from bot.core.services.occurrences import may_act_on
from bot.core.services.people import audit
from bot.core.timeutil import from_db
from handlers.common import person
from handlers.conversation import Conversation

DECISION_REASON_STATE = "awaiting_decision_reason"


def oversees(convo: Conversation, role: str, other_role: str) -> bool:
    found = convo.app.framework.roles.get(role)
    return found is not None and other_role in found.oversees


async def approvers_for(convo: Conversation, occurrence: Occurrence, requester: User) -> list[User]:
    """The people whose role oversees the requester's role, each at the unit of its own level
    on the way up: the commune above a village head; the commune itself for its radio or its
    health station (two-tier), the district or the province above a commune committee."""
    framework = convo.app.framework
    overseeing = [name for name, role in framework.roles.items() if requester.role in role.oversees]
    unit = await convo.session.get(Unit, occurrence.unit_id)
    wanted: list[tuple[int, list[str]]] = []
    while unit is not None and overseeing:
        here = [name for name in overseeing if framework.role_level(name) == unit.level]
        if here:
            wanted.append((unit.id, here))
            overseeing = [name for name in overseeing if name not in here]
        unit = await convo.session.get(Unit, unit.parent_id) if unit.parent_id else None
    found: list[User] = []
    for unit_id, roles in wanted:
        rows = await convo.session.exec(
            select(User).where(
                User.unit_id == unit_id,
                col(User.role).in_(roles),
                col(User.active).is_(True),
                User.id != requester.id,
            )
        )
        found += rows.all()
    return found


async def load_request(
    convo: Conversation, raw_id: str, kind: str
) -> tuple[Report, Occurrence, User] | None:
    """The request a decision button names, if this person may decide it and it is still
    waiting; otherwise answered (and audited when not theirs)."""
    _ = convo._
    report = await convo.session.get(Report, int(raw_id)) if raw_id.isdigit() else None
    occurrence = await convo.session.get(Occurrence, report.occurrence_id) if report else None
    if report is None or report.kind != kind or occurrence is None:
        await convo.reply(_("This request no longer exists."), in_place=True)
        return None
    requester = await convo.session.get(User, report.user_id)
    allowed = (
        requester is not None
        and convo.user.id != report.user_id
        and await may_act_on(convo.session, convo.user, occurrence)
        and oversees(convo, convo.user.role, requester.role)
    )
    if not allowed:
        await audit(convo.session, "forbidden", convo.subject, convo.user, data=convo.incoming.data)
        await convo.reply(_("Only the level above may decide on this request."))
        return None
    if report.status != "submitted":
        await convo.reply(_("This request was already decided."), in_place=True)
        return None
    return report, occurrence, requester


async def ask_decision_reason(
    convo: Conversation, report: Report, action: str, optional: bool
) -> None:
    """Ask why; `action` is what the typed reason (or "no reason") then does."""
    _ = convo._
    convo.set_state(DECISION_REASON_STATE, report_id=report.id, action=action)
    if optional:
        label, data = _("➖ No reason"), f"{action}:{report.id}"
        await convo.reply(
            _("Please write briefly why (the requester will read it), or {action}.").format(
                action=tap(_, label, data)
            ),
            [[Button(label, data)]],
            in_place=True,
        )
    else:
        await convo.reply(
            _("Please write briefly why (the requester will read it)."), in_place=True
        )


async def who_asked(
    convo: Conversation, report: Report, occurrence: Occurrence, requester: User
) -> str:
    """What a decided card keeps of the request it replaces: who asked, and their reason. An
    officer deciding several requests in a row can tell the answered cards apart."""
    unit = await convo.session.get(Unit, occurrence.unit_id)
    return convo._("Asked by {who}.\nTheir reason: {reason}").format(
        who=person(convo, requester, unit), reason=report.note or "—"
    )


def is_past(occurrence: Occurrence) -> bool:
    return from_db(occurrence.due_at) <= datetime.now(UTC)


async def record_decline(
    convo: Conversation, report: Report, occurrence: Occurrence, action: str, reason: str
) -> None:
    """A request (more time, "cannot do") turned down by the person deciding, with the reason
    on record and audited as `action`; the dialog is over."""
    convo.clear_state()
    report.status = "declined"
    report.decided_by_user_id = convo.user.id
    report.decided_at = utcnow()
    report.decision_note = reason[:2000]
    convo.session.add(report)
    await audit(
        convo.session,
        action,
        f"occurrence:{occurrence.id}",
        convo.user,
        report_id=report.id,
        reason=report.decision_note,
    )
