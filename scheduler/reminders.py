"""The minute sweep: late tasks become overdue, due escalations happen, due reminders go out.

A sweep claims the occurrences that have something to do now, in batches of CLAIM_LIMIT, each
batch its own transaction (PostgreSQL: FOR UPDATE SKIP LOCKED, so a second worker takes other rows
or none), until nothing more is due or SWEEP_BUDGET_SECONDS are spent: at one batch a minute, the
742,000 reminders of a national morning would take over six hours and be folded unsent after
`fold_after_hours`. Each batch records each reminder stage once in `reminders` (ON CONFLICT DO
NOTHING: the unique (occurrence, stage) is the final guard) and queues one message per person:
several tasks due for the same village head arrive together, each with its buttons, on the chat
the person used last. What was escalated to a person (a village's late task, told to its
commune) comes in a message of its own, before the reminder of the person's own tasks.

A stage whose moment passed more than `fold_after_hours` ago is recorded as "folded" and not
sent, so a scheduler that was down does not wake people with a burst of stale reminders. Nothing
is sent in the quiet hours (21:00–07:00 by default); only statuses change then.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from functools import cache

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, exists, or_, tuple_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core.commands import overview_command
from bot.core.context import AppContext
from bot.core.db import Database
from bot.core.framework.schema import role_matches
from bot.core.i18n import format_day, format_number, format_short_day, mark, translator
from bot.core.messages import Button, Outgoing, tap, tap_any
from bot.core.models import (
    ChainStatus,
    Escalation,
    Occurrence,
    OccurrenceStatus,
    ReachChain,
    Reminder,
    TaskDefinition,
    Unit,
    User,
)
from bot.core.services.occurrences import ACTIVE_STATUSES, LATE_STATUSES
from bot.core.services.outbox import Queued, enqueue_many
from bot.core.services.reach import ZNS, identities_of, log_entry, phone_for, plan, zns_payload
from bot.core.services.reach_policy import KINDS, load_reach_policy
from bot.core.sqlutil import dialect_name, insert_new
from bot.core.task_text import task_evidence, task_title
from bot.core.timeutil import from_db, to_db
from bot.core.unit_words import collective, place
from bot.core.vietnamese_order import sort_key
from scheduler.escalation import Directory, Notice, escalate_due, escalate_unreachable
from scheduler.policy import Policies, Stage, load_policies
from scheduler.reach import follow_up, zns_on

log = logging.getLogger(__name__)

CLAIM_LIMIT = 2000  # occurrences per batch (one transaction each)
# A sweep claims batch after batch while it expects the next one to end within this budget; the
# rest waits for the next sweep (the job runs every minute and never twice at once).
SWEEP_BUDGET_SECONDS = 45.0
YIELD_EVERY = 25  # letters composed between two turns of the event loop
OVERDUE_BATCH = 1000  # occurrences marked overdue per statement
# A reminder is "queued" when its message is; the sender makes it "sent" once the platform
# accepted a message holding it, the reach follow-up "unreachable" when none could.
# "spaced": not sent because the person had a reminder message in the days just before
# (reminders.yaml `min_days_between`).
QUEUED, FOLDED, UNREACHABLE, SPACED = "queued", "folded", "unreachable", "spaced"
FOOTER_RESERVE = 160  # the "… and N more" and "All done?" lines after the last task
TASK_RESERVE = 330  # the reminder's header and one task with its due date and evidence


@dataclass
class SweepReport:
    overdue_marked: int = 0
    claimed: int = 0
    sent: int = 0  # (occurrence, stage) pairs queued to be sent
    folded: int = 0
    unreachable: int = 0
    spaced: int = 0  # stages held: the person had a reminder message in the days just before
    escalations: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    quiet: bool = False
    next_steps: int = 0  # reach chains given their next step (a failure, no receipt)
    flagged: int = 0  # reach chains that ended with the commune told

    def count_escalations(self, counts: dict[str, int]) -> None:
        for step, count in counts.items():
            self.escalations[step] = self.escalations.get(step, 0) + count

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        steps = ", ".join(f"{k} {v}" for k, v in sorted(self.escalations.items())) or "none"
        return (
            f"{self.overdue_marked} became overdue; {self.claimed} claimed; reminders: "
            f"{self.sent} queued, {self.folded} folded, {self.spaced} spaced, "
            f"{self.unreachable} unreachable; "
            f"escalations: {steps}; {self.messages} messages queued; reach: "
            f"{self.next_steps} next steps, {self.flagged} flagged to the level above"
            + (" (quiet hours: nothing sent)" if self.quiet else "")
        )


@dataclass(frozen=True)
class Item:
    """A task to remind a person of."""

    occurrence: Occurrence
    task: TaskDefinition
    stage: Stage
    urgent: bool = False  # sent even if the person had a message in the days just before


@dataclass
class Letter:
    """Everything one person is told in this sweep: escalated news and own tasks (`parts`)."""

    user: User
    items: list[Item] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def parts(self) -> list[Letter]:
        """What was escalated to the person and their own tasks, as two messages: each its own
        bubble with its own buttons, so a commune officer's "report on the village's behalf" is
        never mistaken for the answer to its own task. The tasks stay in one message."""
        found = []
        if self.notices:
            found.append(Letter(self.user, notices=self.notices))
        if self.items:
            found.append(Letter(self.user, items=self.items))
        return found

    def fingerprint(self) -> str:
        parts = sorted(f"r{i.occurrence.id}:{i.stage.key}" for i in self.items)
        parts += sorted(f"e{n.occurrence_id}:{n.kind}" for n in self.notices)
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class Mailbag:
    def __init__(self) -> None:
        self.letters: dict[int, Letter] = {}

    def letter(self, user: User) -> Letter:
        if user.id not in self.letters:
            self.letters[user.id] = Letter(user)
        return self.letters[user.id]

    def add_notices(self, news: list[tuple[User, Notice]]) -> None:
        for user, notice in news:
            self.letter(user).notices.append(notice)


# --- claiming ---------------------------------------------------------------------------


def _day_bounds(policies: Policies, day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=policies.tz)
    return to_db(start), to_db(start + timedelta(days=1))


def _reminder_days(policies: Policies, today: date) -> list[date]:
    """Due dates that may have a reminder stage to handle today: those a "before" stage points
    at, and the days since the due date while daily overdue reminders last."""
    policy = policies.reminders
    days = {today + timedelta(days=d) for d in policy.before_days}
    last = policy.catch_up_days
    stop = policies.overdue_stop(today)
    if stop is not None:
        last = 0
        while policies.at(today + timedelta(days=last + 1), policy.send_at) < stop:
            last += 1
    days |= {today - timedelta(days=k) for k in range(last + 1)}
    return sorted(days)


@dataclass(frozen=True)
class WorkShape:
    """The form of the claim query at some moment: how many reminder due dates, and which
    escalation steps (with the unit levels they apply to) for each group of due dates. The SQL
    is built once per shape; the dates and stage keys are bound parameters."""

    reminder_days: int
    escalation_groups: tuple[tuple[tuple[str, tuple[str, ...]], ...], ...]


def _work(policies: Policies, now: datetime) -> tuple[WorkShape, dict[str, object]]:
    """What has something to do now: occurrences whose current reminder stage, or one of whose
    due escalation steps, is not recorded yet. Rows already handled never match, so the cost
    follows what is due, not the history."""
    today = policies.local_day(now)
    params: dict[str, object] = {}
    count = 0
    for due_day in _reminder_days(policies, today):
        stages = policies.stages(due_day, now)
        if not stages:
            continue
        current = stages[-1]
        low, high = _day_bounds(policies, due_day)
        params |= {
            f"r{count}_low": low,
            f"r{count}_high": high,
            f"r{count}_open": to_db(current.moment),
            f"r{count}_stage": current.key,
        }
        count += 1
    # Escalations: consecutive due dates with the same steps due share one clause.
    groups: list[tuple[tuple[str, ...], date, date]] = []
    for k in range(1, policies.reminders.catch_up_days + 1):
        due_day = today - timedelta(days=k)
        due = tuple(
            step.step
            for step in policies.escalation.steps
            if policies.step_moment(step, due_day) <= now
        )
        if not due:
            continue
        if groups and groups[-1][0] == due and groups[-1][1] == due_day + timedelta(days=1):
            groups[-1] = (due, due_day, groups[-1][2])
        else:
            groups.append((due, due_day, due_day))
    shaped = []
    for index, (names, first, last) in enumerate(groups):
        params[f"e{index}_low"] = _day_bounds(policies, first)[0]
        params[f"e{index}_high"] = _day_bounds(policies, last)[1]
        shaped.append(tuple((name, tuple(policies.escalation.step(name).levels)) for name in names))
    if params:
        params |= _envelope(params)
    return WorkShape(count, tuple(shaped)), params


def _envelope(params: dict[str, object]) -> dict[str, object]:
    """The earliest and latest due moment any clause reaches: the catch-up window."""
    lows = [value for name, value in params.items() if name.endswith("_low")]
    highs = [value for name, value in params.items() if name.endswith("_high")]
    return {"envelope_low": min(lows), "envelope_high": max(highs)}


def _due_filter(shape: WorkShape) -> ColumnElement[bool] | None:
    """Occurrences with something to do now, after the (unit_id, id) cursor."""
    due_at, window_start = col(Occurrence.due_at), col(Occurrence.window_start)
    clauses = []
    for i in range(shape.reminder_days):
        handled = exists().where(
            Reminder.occurrence_id == Occurrence.id, Reminder.stage == bindparam(f"r{i}_stage")
        )
        clauses.append(
            and_(
                due_at >= bindparam(f"r{i}_low"),
                due_at < bindparam(f"r{i}_high"),
                window_start <= bindparam(f"r{i}_open"),
                ~handled,
            )
        )
    for j, steps in enumerate(shape.escalation_groups):
        missing = [
            and_(
                col(Occurrence.unit_id).in_(select(Unit.id).where(col(Unit.level).in_(levels))),
                ~exists().where(Escalation.occurrence_id == Occurrence.id, Escalation.step == name),
            )
            for name, levels in steps
        ]
        clauses.append(
            and_(
                due_at >= bindparam(f"e{j}_low"),
                due_at < bindparam(f"e{j}_high"),
                col(Occurrence.status).in_(LATE_STATUSES),
                or_(*missing),
            )
        )
    if not clauses:
        return None
    return and_(
        col(Occurrence.status).in_(ACTIVE_STATUSES),
        # The clauses' ranges hide inside the OR; this envelope of them, at the top, lets the
        # (status, due_at) index read the catch-up window only, never the history (escalated
        # occurrences stay active for ever).
        due_at >= bindparam("envelope_low"),
        due_at < bindparam("envelope_high"),
        or_(*clauses),
        # The batches of one sweep move forward, so an occurrence that stays due after it was
        # handled (an escalation with no target, say) is not claimed again and again.
        tuple_(col(Occurrence.unit_id), col(Occurrence.id))
        > tuple_(bindparam("after_unit_id", type_=Integer), bindparam("after_id", type_=Integer)),
    )


@cache
def _claim_statement(shape: WorkShape, postgres: bool) -> Select | None:
    due = _due_filter(shape)
    if due is None:
        return None
    order = (col(Occurrence.unit_id), col(Occurrence.id))
    limit = bindparam("claim_limit", type_=Integer)
    remindable = col(Occurrence.task_key).in_(bindparam("task_keys", expanding=True))
    if not postgres:
        return select(Occurrence).where(due, remindable).order_by(*order).limit(limit)
    # PostgreSQL: the filter is fenced in a materialised CTE, else ORDER BY unit_id … LIMIT
    # makes the planner walk ix_occurrences_unit_id over the whole table when little is due.
    # The rows are then claimed so that a concurrent worker skips them (what
    # bot.core.sqlutil.for_update_skip_locked does, kept inside the cached statement).
    # The task filter stays outside the fence: inside, PostgreSQL reads the whole unique index
    # (period, task_key, unit_id) for it (a BitmapAnd, 15 s at national scale) when the
    # (status, due_at) range alone finds the few rows in milliseconds.
    fenced = select(Occurrence.id).where(due).cte("due").prefix_with("MATERIALIZED")
    return (
        select(Occurrence)
        .where(col(Occurrence.id).in_(select(fenced.c.id)), remindable)
        .order_by(*order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def _late_open_ids(session: AsyncSession, now_db: datetime, batch_size: int) -> list[int]:
    late = (
        select(Occurrence.id)
        .where(Occurrence.status == OccurrenceStatus.open, col(Occurrence.due_at) < now_db)
        .order_by(col(Occurrence.due_at))
        .limit(batch_size)
    )
    if dialect_name(session) == "postgresql":
        late = late.with_for_update(skip_locked=True)  # rows another worker holds are its own
    return list((await session.exec(late)).all())


async def mark_overdue(
    session: AsyncSession, now_db: datetime, batch_size: int = OVERDUE_BATCH
) -> int:
    """Open occurrences past their due moment become overdue, `batch_size` at a time in due
    order. With the LIMIT, PostgreSQL walks (status, due_at) from its start; without it, it
    takes "open" and "past due" as independent, expects millions of rows where there are none,
    and scans the table."""
    marked = 0
    while True:
        ids = await _late_open_ids(session, now_db, batch_size)
        if ids:
            await session.exec(
                update(Occurrence)
                .where(col(Occurrence.id).in_(ids))
                .values(status=OccurrenceStatus.overdue, updated_at=now_db)
            )
        marked += len(ids)
        if len(ids) < batch_size:
            return marked


async def claim(
    session: AsyncSession,
    policies: Policies,
    now: datetime,
    task_keys: list[str],
    limit: int = CLAIM_LIMIT,
    after: tuple[int, int] = (0, 0),
) -> list[Occurrence]:
    """Up to `limit` occurrences with something to do at `now`, in (unit_id, id) order after
    `after` (the last one a previous batch of the same sweep claimed; ids start at 1)."""
    shape, params = _work(policies, now)
    statement = _claim_statement(shape, dialect_name(session) == "postgresql")
    if statement is None or not task_keys:
        return []
    bound = {
        **params,
        "task_keys": task_keys,
        "claim_limit": limit,
        "after_unit_id": after[0],
        "after_id": after[1],
    }
    return list((await session.exec(statement, params=bound)).all())


def remindable_tasks(app: AppContext) -> list[str]:
    """Keys of the framework's tasks that are not done on request only (never reminded). Tasks
    retired from the framework are inactive in `task_definitions` and not listed either."""
    return sorted(key for key, task in app.framework.tasks.items() if app.framework.reminded(task))


async def load_tasks(session: AsyncSession, keys: set[str]) -> dict[str, TaskDefinition]:
    rows = await session.exec(select(TaskDefinition).where(col(TaskDefinition.key).in_(keys)))
    return {task.key: task for task in rows.all()}


# --- reminders ------------------------------------------------------------------------------


async def _existing_stages(session: AsyncSession, ids: list[int]) -> set[tuple[int, str]]:
    if not ids:
        return set()
    rows = await session.exec(
        select(Reminder.occurrence_id, Reminder.stage).where(col(Reminder.occurrence_id).in_(ids))
    )
    return set(rows.all())


async def _insert_reminders(session: AsyncSession, rows: list[dict]) -> set[tuple[int, str]]:
    """Insert, skipping any (occurrence, stage) already there; returns the ones this call added."""
    return await insert_new(session, Reminder.__table__, rows, ("occurrence_id", "stage"))


async def remind(
    session: AsyncSession,
    directory: Directory,
    policies: Policies,
    claimed: list[Occurrence],
    tasks: dict[str, TaskDefinition],
    now: datetime,
    mailbag: Mailbag,
    report: SweepReport,
) -> None:
    recorded = await _existing_stages(session, [occ.id for occ in claimed])
    await directory.load_people({occ.unit_id for occ in claimed})
    rows: list[dict] = []
    to_send: list[tuple[Item, list[User]]] = []
    candidates: list[tuple[Item, list[User]]] = []  # stages to send now, if not spaced out
    nobody: list[tuple[Occurrence, TaskDefinition]] = []
    now_db = to_db(now)
    reach = load_reach_policy(directory.app.settings)
    by_phone = any(zns_on(reach, directory.app, kind) for kind in KINDS)
    for occurrence in claimed:
        task = tasks.get(occurrence.task_key)
        if task is None or occurrence.status not in ACTIVE_STATUSES:
            continue
        due_day = policies.local_day(from_db(occurrence.due_at))
        opens = from_db(occurrence.window_start)
        pending = [
            stage
            for stage in policies.stages(due_day, now)
            if stage.moment >= opens and (occurrence.id, stage.key) not in recorded
        ]
        if not pending:
            continue
        # Everyone holding the role, reachable or not: a person no step can reach gets a
        # chain that ends with the commune told who and why, never a silent gap. When nobody
        # at all can be reached, the unit is escalated as unreachable at once, as before.
        people = await directory.people(
            occurrence.unit_id, lambda role, roles=task.roles: role_matches(roles, role)
        )

        def reachable(people: list[User]) -> bool:
            return any(directory.identity(u.id) or (by_phone and phone_for(u)) for u in people)

        if not reachable(people) and (fallback := app_fallbacks(directory, task.roles)):
            # Nobody here can take the role yet: its stand-in is reminded (roles.yaml
            # `fallback`); the gap goes to the coverage report, not up the chain.
            people = await directory.people(occurrence.unit_id, fallback.__contains__)
        if not reachable(people):
            people = []
        if not people:
            nobody.append((occurrence, task))
        latest = pending[-1]
        fresh = now - latest.moment <= policies.reminders.fold_after
        keep = policies.reminders.always_send
        for stage in pending:
            if stage is latest and fresh and people:
                # A stage that is always sent, folded here (the bot was down), hands that on.
                urgent = any(earlier.name in keep for earlier in pending)
                candidates.append((Item(occurrence, task, stage, urgent), people))
            else:
                outcome = UNREACHABLE if stage is latest and fresh else FOLDED
                rows.append(_reminder_row(occurrence.id, stage.key, [], outcome, now_db))
    if nobody:
        # Before the spacing below: news of an unreachable unit is never held, and a person
        # who gets it is written to today anyway.
        news, counts = await escalate_unreachable(session, directory, policies, nobody, now)
        mailbag.add_notices(news)
        report.count_escalations(counts)
    waiting = await spaced_out(session, policies, mailbag, candidates, now)
    for item, people in candidates:
        told = [user for user in people if user.id not in waiting]
        outcome = QUEUED if told else SPACED
        rows.append(
            _reminder_row(item.occurrence.id, item.stage.key, [u.id for u in told], outcome, now_db)
        )
        if told:
            to_send.append((item, told))
    owned = await _insert_reminders(session, rows)
    for row in rows:
        if (row["occurrence_id"], row["stage"]) in owned:
            if row["outcome"] == FOLDED:
                report.folded += 1
            elif row["outcome"] == UNREACHABLE:
                report.unreachable += 1
            elif row["outcome"] == SPACED:
                report.spaced += 1
    for item, people in to_send:
        if (item.occurrence.id, item.stage.key) not in owned:
            continue  # another worker handled this stage
        report.sent += 1
        for user in people:
            mailbag.letter(user).items.append(item)


def _reminder_row(
    occurrence_id: int, stage: str, user_ids: list[int], outcome: str, now_db: datetime
) -> dict:
    return {
        "occurrence_id": occurrence_id,
        "stage": stage,
        "user_ids": user_ids,
        "outcome": outcome,
        "created_at": now_db,
    }


async def spaced_out(
    session: AsyncSession,
    policies: Policies,
    mailbag: Mailbag,
    candidates: list[tuple[Item, list[User]]],
    now: datetime,
) -> set[int]:
    """The people whose reminders wait today: one reminder message in `min_days_between` days
    is enough, so whoever had one in the days just before is not written to again, unless
    today's message carries escalation news or a stage of `always_send` (the first overdue
    day: the last word before the supervisor is told). Their stages are recorded as spaced;
    each task comes again at its next stage, and a miss still goes up the chain."""
    gap = policies.reminders.min_days_between
    if gap <= 1 or not candidates:
        return set()
    urgent = {user.id for item, people in candidates if item.urgent for user in people}
    urgent |= {letter.user.id for letter in mailbag.letters.values() if letter.notices}
    others = {user.id for _item, people in candidates for user in people} - urgent
    if not others:
        return set()
    today = policies.local_day(now)
    since = to_db(datetime.combine(today - timedelta(days=gap - 1), time_of_day.min, policies.tz))
    until = to_db(datetime.combine(today, time_of_day.min, policies.tz))
    recent = await session.exec(
        select(ReachChain.user_id)
        .where(
            col(ReachChain.user_id).in_(sorted(others)),
            col(ReachChain.key).startswith("remind:"),
            col(ReachChain.created_at) >= since,
            col(ReachChain.created_at) < until,
        )
        .distinct()
    )
    return set(recent.all())


def app_fallbacks(directory: Directory, task_roles: list[str]) -> set[str]:
    return directory.app.framework.fallback_roles(task_roles)


# --- the message ----------------------------------------------------------------------------


def _due_phrase(_, stage: Stage, today: date) -> str:  # noqa: ANN001
    days = (stage.due_day - today).days
    if days > 0:
        return _("{days} day(s) left").format(days=days)
    if days == 0:
        return _("due today")
    return _("{days} day(s) overdue").format(days=-days)


def _dimension(app: AppContext, task: TaskDefinition, locale: str) -> str:
    dimension = app.framework.dimensions.get(task.dimension)
    if dimension is None:
        return task.dimension
    return dimension.short if locale == "vi" else dimension.short_en


def _place(notice: Notice, locale: str) -> str:
    if notice.above is not None and notice.unit.level == "village":
        return f"{notice.unit.name} ({place(notice.above, locale)})"
    return notice.unit.name


def _header(_, kind: str, notices: list[Notice], locale: str) -> str:  # noqa: ANN001
    if kind == "commune" and notices[0].above is not None:
        return _("⚠️ Overdue in the {children} of {unit}:").format(
            children=collective([n.unit for n in notices], "village", locale),
            unit=place(notices[0].above, locale),
        )
    return _(NOTICE_HEADERS.get(kind, NOTICE_HEADERS["supervisor"]))


def _more_notices(_, role: str, count: int, framework=None) -> str:  # noqa: ANN001
    """The rest of a long list: the reader's own overview command, if the role has one."""
    command = overview_command(role, framework)
    if command:
        return _("… and {count} more: type {command} to see them all.").format(
            count=count, command=command
        )
    return _("… and {count} more.").format(count=count)


def _unreachable_advice(_, role: str) -> str:  # noqa: ANN001
    if role == "commune_committee":
        # REPORT_ON_BEHALF: when a commune officer can report for a village, say so here.
        return _("Please invite someone there (/moi).")
    return _("Please contact them by phone so that someone there registers.")


NOTICE_HEADERS = {
    "commune": mark("⚠️ Overdue in the villages of your commune:"),
    "supervisor": mark("🔺 Escalated to you, still not done after the due date:"),
    "unreachable": mark("📵 Cannot be reached (nobody registered, or the chat is blocked):"),
}


def task_buttons(_, occurrence_id: int, number: int | None) -> list[list[Button]]:  # noqa: ANN001
    """The four answers of handlers.common.task_buttons, numbered when a message lists several."""
    tag = f"#{number} " if number is not None else ""
    return [
        [
            Button(tag + _("✅ Done"), f"done:{occurrence_id}"),
            Button(tag + _("📷 Send photo"), f"photo:{occurrence_id}"),
        ],
        [
            Button(tag + _("⏰ Ask for more time"), f"ext:{occurrence_id}"),
            Button(tag + _("❌ Cannot do"), f"cant:{occurrence_id}"),
        ],
    ]


BEHALF_BUTTONS = 5  # "báo cáo thay" buttons in one message; the rest are in /tinhhinh


def _reports_for(reader: User, notice: Notice) -> bool:
    """The commune officer told of a village's late task can report it on its behalf."""
    return (
        notice.kind in ("commune", "unreachable")
        and notice.above is not None
        and notice.unit.level == "village"
        and reader.unit_id == notice.above.id
    )


def compose(app: AppContext, policies: Policies, letter: Letter, now: datetime) -> Outgoing:
    locale = letter.user.locale
    _ = translator(locale)
    today = policies.local_day(now)
    lines: list[str] = []
    buttons: list[list[Button]] = []
    by_kind: dict[str, list[Notice]] = {}
    for notice in letter.notices:
        by_kind.setdefault(notice.kind, []).append(notice)
    for kind, notices in by_kind.items():
        lines.append(_header(_, kind, notices, locale))
        ordered = sorted(
            notices, key=lambda n: (n.due_day, sort_key(n.unit.name), sort_key(n.task.title))
        )
        notice_limit = policies.reminders.max_notices_per_message
        # Room is kept for the tasks that follow (at least one with its lines).
        room = policies.reminders.max_message_chars - FOOTER_RESERVE
        room -= TASK_RESERVE if letter.items else 0
        shown = 0
        for notice in ordered[:notice_limit]:
            due = format_day(notice.due_day, locale)
            where = _place(notice, locale)
            if kind == "unreachable":
                line = f"• {where}: {task_title(notice.task, locale)} — " + _("due {due}").format(
                    due=due
                )
            else:
                line = f"• {where}: {task_title(notice.task, locale)} — " + _(
                    "due {due}, {days} day(s) late"
                ).format(due=due, days=notice.days_late)
            if shown and len("\n".join([*lines, line])) > room:
                break
            lines.append(line)
            shown += 1
        notice_limit = shown
        if len(ordered) > notice_limit:
            lines.append(
                _more_notices(
                    _,
                    letter.user.role,
                    format_number(len(ordered) - notice_limit, locale),
                    app.framework,
                )
            )
        behalf = [n for n in ordered if _reports_for(letter.user, n)][
            : BEHALF_BUTTONS - len(buttons)
        ]
        buttons += [
            [
                Button(
                    f"📝 {n.unit.name}: {task_title(n.task, locale)}"[:60].rstrip(),
                    f"obh:{n.occurrence_id}",
                )
            ]
            for n in behalf
        ]
        if behalf:
            lines.append(_("📝 Report on a village's behalf: {action}.").format(action=tap_any(_)))
        elif kind == "unreachable":
            lines.append(_unreachable_advice(_, letter.user.role))
        lines.append("")
    items = sorted(letter.items, key=lambda i: (i.stage.due_day, i.task.title, i.occurrence.id))
    if items:
        limit = policies.reminders.max_tasks_per_message
        lines.append(_("🔔 Reminder: {count} task(s) to report").format(count=len(items)))
        numbered = len(items) > 1
        budget = policies.reminders.max_message_chars
        all_label = _("✅ All done ({count})").format(count=len(items))
        all_data = f"all:{today:%Y%m%d}"
        one_label, one_data = _("📋 One at a time"), f"one:{today:%Y%m%d}"
        tail = (
            _("All done? {action}. Not all? {one}: each task with its own answers.").format(
                action=tap(_, all_label, all_data, start=True),
                one=tap(_, one_label, one_data, start=True),
            )
            if numbered
            else _("{action} to report.").format(action=tap_any(_, start=True))
        )
        shown = 0
        for number, item in enumerate(items[:limit], start=1):
            block = [
                f"{number}. [{_dimension(app, item.task, locale)}] {task_title(item.task, locale)}"
                if numbered
                else f"[{_dimension(app, item.task, locale)}] {task_title(item.task, locale)}",
                "   "
                + _("Due: {due}").format(due=format_day(item.stage.due_day, locale))
                + f" ({_due_phrase(_, item.stage, today)})",
                "   "
                + _("Evidence: {evidence}").format(
                    evidence=task_evidence(item.task, locale) or "—"
                ),
            ]
            left = len(items) - shown - 1
            footer = [tail]
            if left:
                footer.insert(
                    0, _("… and {count} more: type /viec to see them all.").format(count=left)
                )
            if shown and len("\n".join(lines + block + footer)) > budget:
                break  # the rest is counted: a message stays within a phone screen and a half
            lines += block
            buttons += task_buttons(_, item.occurrence.id, number if numbered else None)
            shown += 1
        limit = shown
        if len(items) > limit:
            lines.append(
                _("… and {count} more: type /viec to see them all.").format(
                    count=len(items) - limit
                )
            )
        lines.append(tail)
        if numbered:
            # One answer for the lot (handlers/checklist.py), or the tasks one at a time
            # (handlers/walk.py); or the exceptions first, on their own buttons below.
            buttons.insert(0, [Button(all_label, all_data), Button(one_label, one_data)])
    return Outgoing(text="\n".join(lines).strip(), buttons=buttons)


def _kind(letter: Letter) -> str:
    """Which ZNS template carries the letter: overdue if any task is late."""
    if not letter.items:
        return "notice"
    late = any(item.stage.name.startswith("overdue") for item in letter.items)
    return "overdue" if late else "reminder"


async def _template_fields(
    directory: Directory, policies: Policies, letter: Letter, now: datetime
) -> dict:
    """Our fields for a ZNS template (bot/core/services/reach_policy.OUR_FIELDS)."""
    unit = await directory.unit(letter.user.unit_id)
    items = sorted(letter.items, key=lambda i: (i.stage.due_day, i.task.title))
    if not items:
        return {"name": letter.user.name, "unit": unit.name if unit else ""}
    first = items[0]
    late = (policies.local_day(now) - first.stage.due_day).days
    return {
        "name": letter.user.name,
        "unit": unit.name if unit else "",
        "task": first.task.title,
        "count": len(items),
        "due": format_short_day(first.stage.due_day),
        "days_late": max(late, 0),
    }


async def deliver(
    session: AsyncSession,
    app: AppContext,
    directory: Directory,
    policies: Policies,
    mailbag: Mailbag,
    now: datetime,
) -> int:
    """Queue one message per person, each the first step of its reach chain (the policy's
    first channel that can take it); returns how many were queued. The key names the person,
    the day and what the message holds, so a replayed sweep, or a concurrent worker that got
    there first, adds nothing (ON CONFLICT DO NOTHING on the key). Each reminder records the
    chains of the messages that carry it."""
    day = policies.local_day(now)
    reach = load_reach_policy(app.settings)
    letters = [part for letter in mailbag.letters.values() for part in letter.parts()]
    identities = await identities_of(session, [letter.user.id for letter in letters])
    messages: list[Queued] = []
    chains: list[dict] = []
    for number, letter in enumerate(letters):
        if number % YIELD_EVERY == YIELD_EVERY - 1:
            # Composing a morning's letters is CPU for a second or more: let the webhooks and
            # the sender (rows already claimed) run between chunks of it.
            await asyncio.sleep(0)
        key = f"remind:{letter.user.id}:{day:%Y%m%d}:{letter.fingerprint()}"
        kind = _kind(letter)
        message = compose(app, policies, letter, now)
        fields = await _template_fields(directory, policies, letter, now)
        step, skipped = plan(
            reach.order,
            identities.get(letter.user.id, []),
            phone_for(letter.user),
            zns_on(reach, app, kind),
            set(),
            now,
        )
        chain = {
            "key": key,
            "user_id": letter.user.id,
            "kind": kind,
            "status": ChainStatus.queued,
            "step": 0,
            "channel": step.channel if step else "",
            "outbox_key": key if step else "",
            # Nothing to try: why their chat was skipped (blocked, window closed), else none.
            "reason": "" if step else (skipped[0]["reason"] if skipped else "no_channel"),
            "awaiting_since": None if step else to_db(now),
            "payload": message.to_payload(),
            "template": fields,
            "reminders": sorted({(i.occurrence.id, i.stage.key) for i in letter.items}),
            "steps": skipped,
            "created_at": to_db(now),
            "updated_at": to_db(now),
        }
        if step is None:
            chain["status"] = ChainStatus.failed  # the follow-up tells the commune
        else:
            chain["steps"] = [
                *skipped,
                log_entry(step.name, step.channel, step.address, "queued", "", now),
            ]
            messages.append(
                Queued(
                    channel=step.channel,
                    external_id=step.address,
                    message=message,
                    key=key,
                    user_id=letter.user.id,
                    created_at=to_db(now),
                    chain_key=key,
                    payload=zns_payload(kind, fields) if step.channel == ZNS else None,
                )
            )
        chains.append(chain)
    added = await enqueue_many(session, messages)
    queued_keys = {m.key for m in messages}
    fresh = [c for c in chains if c["key"] in added or c["key"] not in queued_keys]
    owned = {key for (key,) in await insert_new(session, ReachChain.__table__, fresh, ("key",))}
    links: dict[tuple[int, str], list[str]] = {}
    for chain in fresh:
        if chain["key"] in owned:
            for pair in chain["reminders"]:
                links.setdefault(tuple(pair), []).append(chain["key"])
    if links:
        connection = await session.connection()  # one executemany for every reminder
        await connection.execute(
            update(Reminder.__table__)
            .where(
                Reminder.__table__.c.occurrence_id == bindparam("o"),
                Reminder.__table__.c.stage == bindparam("s"),
            )
            .values(chain_keys=bindparam("k")),
            [{"o": o, "s": s, "k": keys} for (o, s), keys in links.items()],
        )
    return len(added)


# --- the sweep ------------------------------------------------------------------------------


async def _claim_and_handle(
    session: AsyncSession,
    app: AppContext,
    policies: Policies,
    now: datetime,
    limit: int,
    after: tuple[int, int],
    report: SweepReport,
) -> list[Occurrence]:
    """One batch: claim, escalate and remind, queue the messages; adds to `report`."""
    claimed = await claim(session, policies, now, remindable_tasks(app), limit, after)
    report.claimed += len(claimed)
    if not claimed:
        return claimed
    tasks = await load_tasks(session, {occurrence.task_key for occurrence in claimed})
    directory = Directory(session, app)
    mailbag = Mailbag()
    news, counts = await escalate_due(session, directory, policies, claimed, tasks, now)
    mailbag.add_notices(news)
    report.count_escalations(counts)
    await remind(session, directory, policies, claimed, tasks, now, mailbag, report)
    report.messages += await deliver(session, app, directory, policies, mailbag, now)
    return claimed


async def _follow_up(
    db: Database, app: AppContext, policies: Policies, now: datetime, report: SweepReport
) -> None:
    """Reach chains whose step failed or sent no receipt in time take their next step."""
    async with db.session() as session:
        done = await follow_up(session, app, policies, now)
        await session.commit()
    report.next_steps += done.advanced
    report.flagged += done.flagged


async def sweep(
    db: Database,
    app: AppContext,
    now: datetime,
    limit: int = CLAIM_LIMIT,
    budget_seconds: float = SWEEP_BUDGET_SECONDS,
) -> SweepReport:
    """Run one sweep at `now` (an aware datetime): batches of at most `limit` occurrences, each
    committed on its own, while the next batch is expected to end within `budget_seconds`
    (0: one batch). The rest is left to the next sweep or another worker. Safe to run any
    number of times, on any number of workers: the result is the same."""
    policies = load_policies(app.settings)
    report = SweepReport()
    started = time.monotonic()
    # Each batch writes under the process's writer turn (SQLite: one writer at a time), so the
    # sender's claims and marks and the inbox, queued meanwhile, go in between two batches
    # instead of sleeping in SQLite's busy handler for the whole morning.
    async with db.writer(), db.session() as session:
        # The overdue marks share the first batch's transaction: a sweep cut off there leaves
        # nothing half done.
        report.overdue_marked = await mark_overdue(session, to_db(now))
        report.quiet = policies.reminders.is_quiet(now, policies.tz)
        claimed = []
        if not report.quiet:
            claimed = await _claim_and_handle(session, app, policies, now, limit, (0, 0), report)
        await session.commit()
    batch_seconds = time.monotonic() - started
    # A short batch means nothing more is due (or other workers hold it).
    while len(claimed) == limit and time.monotonic() - started + batch_seconds <= budget_seconds:
        batch_started = time.monotonic()
        after = (claimed[-1].unit_id, claimed[-1].id)  # the claim's order: move past them
        await asyncio.sleep(0)  # the loop's other work, before the next batch's CPU
        async with db.writer(), db.session() as session:
            claimed = await _claim_and_handle(session, app, policies, now, limit, after, report)
            await session.commit()
        batch_seconds = time.monotonic() - batch_started
    if len(claimed) == limit:
        log.info("sweep budget spent after %d occurrences; the next sweep goes on", report.claimed)
    if not report.quiet:
        await _follow_up(db, app, policies, now, report)
    return report


__all__ = ["SweepReport", "claim", "compose", "mark_overdue", "sweep"]
