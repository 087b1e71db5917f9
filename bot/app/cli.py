"""The `papibot` command: set up, inspect and operate a deployment.

Errors a person can act on (a bad argument, a bad CSV line, an unknown unit, a database that
cannot be reached, a closed pipe) are printed as one line and exit 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from bot.core.config import Settings, production_problems
from bot.core.context import AppContext
from bot.core.framework import FrameworkError, load_framework
from bot.core.i18n import translator


class CliError(Exception):
    """A mistake in what the operator asked for, printed without a traceback."""


def papibot_version() -> str:
    try:
        return version("papibot")
    except PackageNotFoundError:
        return "unknown"


# --- moments given on the command line --------------------------------------------------

NOW_SHAPES = "a date (2026-12-07 or 07/12/2026) or a date-time (2026-12-07T08:00)"
VI_DAY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2}))?$")


def parse_moment(text: str | None, tz: ZoneInfo, clock: time) -> datetime:
    """`--now`: a date alone means that day at `clock` (the job's own time); a date-time
    without an offset is local. None: the real now. Anything else: CliError, one line."""
    if not text:
        return datetime.now(UTC)
    value = text.strip()
    try:
        if match := VI_DAY.match(value):
            day, month, year, hour, minute = match.groups()
            moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
            if hour is None:
                moment = datetime.combine(moment.date(), clock)
        elif len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), clock)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--now: `{text}` is not {NOW_SHAPES}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


# --- progress on a terminal ---------------------------------------------------------------


@contextmanager
def progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr when it is a terminal; otherwise a callback that does nothing."""
    if not sys.stderr.isatty():
        yield lambda _done, _total: None
        return
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="", leave=False, file=sys.stderr)

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield advance
    finally:
        bar.close()


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


async def _unit_or_fail(session, code: str):  # noqa: ANN001, ANN202
    from bot.core.units import unit_by_code

    unit = await unit_by_code(session, code)
    if unit is None:
        raise CliError(f"unknown unit code `{code}` (see `papibot units list`)")
    return unit


# --- commands ---------------------------------------------------------------------------


async def cmd_init(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.services.framework_sync import sync_task_definitions

    ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
    await ctx.db.upgrade()
    await _check_structure(ctx, args.structure, quiet=True)  # before anything is changed
    async with ctx.db.session() as session:
        report = await sync_task_definitions(session, ctx.framework)
        await session.commit()
    print(f"database ready at {ctx.db.engine.url.render_as_string(hide_password=True)}")
    print(report.summary())
    if args.structure == "two-tier" and not args.units:
        # The 2025 units from vietnam-provinces, then the agencies and sample villages.
        await cmd_units_import(
            ctx, argparse.Namespace(file=None, vietnam_provinces=True, province=args.province)
        )
        args.units = str(ctx.settings.framework_dir / "units" / "khanh-hoa-2025-sample.csv")
    if args.units:
        await cmd_units_import(
            ctx, argparse.Namespace(file=args.units, vietnam_provinces=False, province=None)
        )
    await _check_structure(ctx, args.structure)


async def _check_structure(ctx: AppContext, structure: str | None, quiet: bool = False) -> None:
    """The database's tree must be the structure the deployment runs (PAPIBOT_STRUCTURE)."""
    from bot.core.tree import MixedTreeError, check_same, database_tree

    wanted = (structure or ctx.settings.structure).replace("-", "_")
    async with ctx.db.session() as session:
        held = await database_tree(session)
    try:
        check_same(held, wanted, f"the structure `{wanted}`")
    except MixedTreeError as exc:
        raise CliError(str(exc)) from None
    if structure and not quiet:
        print(
            f"structure {wanted}: run every papibot command on this database with "
            f"PAPIBOT_STRUCTURE={wanted} (in .env)"
        )


def cmd_framework_validate(settings: Settings, args: argparse.Namespace) -> None:
    from bot.core.services.reach_policy import KINDS, load_reach_policy

    framework = load_framework(settings.framework_dir, settings.framework_overrides)
    print(
        f"framework OK: {len(framework.tasks)} tasks in {len(framework.dimensions)} dimensions, "
        f"{len(framework.schedules)} schedules, {len(framework.roles)} roles, "
        f"{len(framework.agencies)} agencies"
    )
    reach = load_reach_policy(settings)
    templates = [f"{kind} {t.template_id}" for kind in KINDS if (t := reach.template(kind))]
    print(f"reach: {' → '.join(reach.order)}; ZNS templates: {', '.join(templates) or 'none'}")


def cmd_framework_list(settings: Settings, args: argparse.Namespace) -> None:
    framework = load_framework(settings.framework_dir, settings.framework_overrides)
    if args.json:
        _print_json([task.model_dump() for task in framework.tasks.values()])
        return
    for task in framework.tasks.values():
        short = framework.dimensions[task.dimension].short
        print(f"{task.key:50} [{short}] {task.title} ({task.schedule})")


async def cmd_units_import(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.tree import MixedTreeError, check_same, database_tree, rows_tree
    from bot.core.units import (
        UnitImportError,
        import_units_csv,
        import_vietnam_provinces,
        read_units_csv,
        vietnam_provinces_rows,
    )

    try:
        if args.vietnam_provinces:
            if args.province is None:
                raise CliError("--vietnam-provinces needs --province CODE (e.g. 56 for Khánh Hòa)")
            rows, what = vietnam_provinces_rows(args.province), "the 2025 structure"
        else:
            if not args.file:
                raise CliError("give a CSV file or --vietnam-provinces --province CODE")
            rows, what = read_units_csv(Path(args.file)), args.file
        async with ctx.db.session() as session:
            check_same(await database_tree(session), rows_tree(rows), what)
        with progress("units") as advance:
            if args.vietnam_provinces:
                report = await import_vietnam_provinces(ctx.db, args.province, advance)
            else:
                report = await import_units_csv(ctx.db, Path(args.file), advance)
    except (UnitImportError, MixedTreeError) as exc:
        raise CliError(str(exc)) from None
    print(report.summary())
    for change in report.changes[:50]:
        print(f"  {change}")


async def cmd_units_list(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.units import UnknownUnitError, list_units

    try:
        units = await list_units(ctx.db, args.parent)
    except UnknownUnitError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        _print_json([unit.model_dump() for unit in units])
        return
    for unit in units:
        print(f"{unit.code:12} {unit.level:9} {unit.name}")


def _known_role(ctx: AppContext, role: str) -> None:
    try:
        ctx.framework.role_level(role)
    except KeyError:
        raise CliError(f"unknown role `{role}` (roles: {', '.join(ctx.framework.roles)})") from None


def _check_role(ctx: AppContext, role: str, level: str) -> None:
    try:
        expected = ctx.framework.role_level(role)
    except KeyError:
        raise CliError(f"unknown role `{role}` (roles: {', '.join(ctx.framework.roles)})") from None
    if expected != level:
        raise CliError(f"role `{role}` belongs to a {expected}, but this unit is a {level}")


async def cmd_users_add(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.services.people import add_user, identity_for, link_identity

    async with ctx.db.session() as session:
        unit = await _unit_or_fail(session, args.unit)
        _check_role(ctx, args.role, unit.level)
        if args.channel and await identity_for(session, args.channel, args.external_id):
            raise CliError(f"{args.channel} id {args.external_id} already belongs to a user")
        user = await add_user(session, unit, args.role, args.name)
        if args.channel:
            await link_identity(session, user, args.channel, args.external_id, args.name)
        await session.commit()
        print(f"user {user.id}: {args.name or '(no name)'} — {args.role} at {unit.name}")


async def cmd_users_list(ctx: AppContext, args: argparse.Namespace) -> None:
    from sqlmodel import col, select

    from bot.core.models import ChannelIdentity, Unit, User
    from bot.core.unit_words import titled
    from bot.core.units import descendants_ids
    from bot.core.vietnamese_order import sort_key

    async with ctx.db.session() as session:
        query = select(User, Unit).join(Unit, Unit.id == User.unit_id)
        if args.unit:
            unit = await _unit_or_fail(session, args.unit)
            query = query.where(
                col(User.unit_id).in_([unit.id, *await descendants_ids(session, unit.id)])
            )
        if args.role:
            _known_role(ctx, args.role)
            query = query.where(User.role == args.role)
        if not args.all:
            query = query.where(col(User.active).is_(True))
        found = (await session.exec(query)).all()
        channels: dict[int, list[str]] = {}
        for identity in (await session.exec(select(ChannelIdentity))).all():
            channels.setdefault(identity.user_id, []).append(identity.channel)
    found = sorted(found, key=lambda pair: (sort_key(pair[1].name), sort_key(pair[0].name)))
    if args.json:
        _print_json(
            [
                {
                    **user.model_dump(exclude={"created_at"}),
                    "unit_code": unit.code,
                    "unit_name": unit.name,
                    "channels": sorted(channels.get(user.id, [])),
                }
                for user, unit in found
            ]
        )
        return
    _ = translator(ctx.settings.locale)
    rows = [
        [
            str(user.id),
            user.name or _("(no name)"),
            titled(ctx.framework, user.role, unit, ctx.settings.locale),
            unit.code,
            "0" + user.phone[2:] if user.phone else "—",
            ", ".join(sorted(channels.get(user.id, []))) or "—",
            "" if user.active else _("deactivated"),
        ]
        for user, unit in found
    ]
    _print_table([_("ID"), _("Name"), _("Role"), _("Unit code"), _("Phone"), _("Chats"), ""], rows)
    print(_("{count} people").format(count=len(rows)))


async def cmd_users_deactivate(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.models import User
    from bot.core.services.people import audit

    async with ctx.db.session() as session:
        user = await session.get(User, args.id)
        if user is None:
            raise CliError(f"unknown user id {args.id} (see `papibot users list`)")
        if not user.active:
            print(f"user {user.id} ({user.name or 'no name'}) was already deactivated")
            return
        user.active = False
        session.add(user)
        await audit(session, "user.deactivated", f"user:{user.id}", None, by="cli")
        await session.commit()
    print(
        f"user {user.id} ({user.name or 'no name'}) deactivated: no more messages or tasks in chat"
    )


async def cmd_users_phone(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.models import User
    from bot.core.services.reach import normalise_phone

    phone = None if args.remove else normalise_phone(args.phone)
    if not args.remove and phone is None:
        raise CliError(f"--phone: {args.phone!r} is not a Vietnamese mobile number (09x xxx xxxx)")
    async with ctx.db.session() as session:
        user = await session.get(User, args.user)
        if user is None:
            raise CliError(f"--user: no user {args.user}")
        user.phone = phone
        session.add(user)
        await session.commit()
    print(f"user {user.id}: " + (f"phone 0{phone[2:]}" if phone else "phone removed"))


async def cmd_invite(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.services.people import create_invite

    async with ctx.db.session() as session:
        unit = await _unit_or_fail(session, args.unit)
        _check_role(ctx, args.role, unit.level)
        invite = await create_invite(
            session, unit, args.role, timedelta(hours=ctx.settings.invite_ttl_hours)
        )
        await session.commit()
    print(f"code: {invite.code}")
    expires = invite.expires_at.astimezone(ctx.settings.tz)
    print(f"expires: {expires:%d/%m/%Y %H:%M} ({ctx.settings.timezone})")
    bot_name = (args.telegram_bot or ctx.settings.telegram_bot_username).lstrip("@")
    if bot_name:
        print(f"telegram: https://t.me/{bot_name}?start={invite.code}")
    if ctx.settings.zalo_oa_link:
        print(f"zalo: {ctx.settings.zalo_oa_link} (then type the code)")
    if not bot_name and not ctx.settings.zalo_oa_link:
        print("links: set PAPIBOT_TELEGRAM_BOT_USERNAME or PAPIBOT_ZALO_OA_LINK to print them")


async def cmd_events_add(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.models import Event

    if args.kind not in ctx.framework.event_kinds:
        raise CliError(
            f"unknown event kind `{args.kind}` (kinds: {', '.join(ctx.framework.event_kinds)})"
        )
    async with ctx.db.session() as session:
        unit = await _unit_or_fail(session, args.unit)
        event = Event(
            unit_id=unit.id,
            kind=args.kind,
            starts_on=args.date,
            ends_on=args.end or args.date,
            name=args.name or ctx.framework.event_kinds[args.kind],
        )
        session.add(event)
        await session.commit()
    print(
        f"event {event.id}: {event.name} at {unit.name} on {event.starts_on} (run `papibot plan`)"
    )


async def cmd_plan(ctx: AppContext, args: argparse.Namespace) -> None:
    from scheduler.planner import plan

    # The deployment's day (Asia/Ho_Chi_Minh by default), not the server's: from 17:00 UTC
    # it is already tomorrow in Vietnam.
    today = args.today or datetime.now(ctx.settings.tz).date()
    if args.until is not None and args.until < today:
        raise CliError(f"--until {args.until} is before the planning day {today}")
    async with ctx.db.session() as session:
        with progress("plan") as advance:
            report = await plan(
                session,
                ctx.framework,
                ctx.settings,
                today,
                args.until,
                connections=ctx.settings.plan_connections,
                progress=advance,
            )
        await session.commit()
    print(report.summary())


async def cmd_coverage(ctx: AppContext, args: argparse.Namespace) -> None:
    """Roles with work and nobody registered, unit by unit (scheduler/coverage.py)."""
    from scheduler.coverage import role_gaps

    async with ctx.db.session() as session:
        parent = await _unit_or_fail(session, args.unit) if args.unit else None
        gaps = await role_gaps(session, ctx.framework, parent.id if parent else None)
    if args.json:
        _print_json([gap.__dict__ for gap in gaps])
        return
    for gap in gaps:
        covered = f" (reminded instead: {gap.covered_by})" if gap.covered_by else ""
        print(f"{gap.unit_code:12} {gap.unit_name:40} {gap.role}{covered}")
    print(f"{len(gaps)} role(s) with nobody registered")


async def cmd_status(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.i18n import format_number
    from bot.core.services.status import status_rows, total_counts
    from bot.core.units import descendants_ids

    if args.task and args.task not in ctx.framework.tasks:
        raise CliError(f"unknown task `{args.task}` (see `papibot framework list`)")
    async with ctx.db.session() as session:
        unit_ids = None
        if args.unit:
            unit = await _unit_or_fail(session, args.unit)
            unit_ids = [unit.id, *await descendants_ids(session, unit.id)]
        rows = await status_rows(session, unit_ids)
    rows = [
        row
        for row in rows
        if (not args.status or row.status == args.status)
        and (not args.task or row.task_key == args.task)
    ]
    if args.json:
        _print_json([row.as_json() for row in rows])  # codes, for scripts
        return
    _ = translator(ctx.settings.locale)
    labels = status_labels(_)
    tz = ctx.settings.tz
    table = [
        [
            row.unit_code,
            row.unit_name,
            row.task_key,
            row.period,
            row.due_at.astimezone(tz).strftime("%d/%m/%Y %H:%M"),
            labels.get(row.status, row.status),
        ]
        for row in rows
    ]
    _print_table([_("Unit code"), _("Unit"), _("Task"), _("Period"), _("Due"), _("Status")], table)
    totals = total_counts(rows)
    locale = ctx.settings.locale

    def number(value: int) -> str:
        return format_number(value, locale)

    print(
        _(
            "{count} occurrences: {done} done, {excused} excused, {overdue} overdue, {open} open"
        ).format(
            count=number(len(rows)),
            done=number(totals["done"]),
            excused=number(totals["excused"]),
            overdue=number(totals["overdue"]),
            open=number(totals["open"]),
        )
    )


def status_labels(_: Callable[[str], str]) -> dict[str, str]:
    return {
        "open": _("open"),
        "done": _("done"),
        "excused": _("excused"),
        "overdue": _("overdue"),
        "escalated": _("escalated"),
    }


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns as wide as their widest cell, so they line up whatever the names."""
    widths = [max([len(headers[i]), *(len(row[i]) for row in rows)]) for i in range(len(headers))]
    for line in [headers, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


async def cmd_sweep(ctx: AppContext, args: argparse.Namespace) -> None:
    from scheduler.commands import run_sweep
    from scheduler.policy import load_policies

    clock = load_policies(ctx.settings).reminders.send_at
    report = await run_sweep(ctx, parse_moment(args.now, ctx.settings.tz, clock))
    print(report.summary())


async def cmd_digest(ctx: AppContext, args: argparse.Namespace) -> None:
    from scheduler.commands import run_digest
    from scheduler.policy import load_policies

    clock = load_policies(ctx.settings).escalation.digests.at
    report = await run_digest(ctx, parse_moment(args.now, ctx.settings.tz, clock))
    print(report.summary())
    for file in dict.fromkeys(report.files):
        print(f"wrote {ctx.settings.data_dir / file}")


async def cmd_demo_seed(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.app.demo import DemoSeedError, seed_demo

    try:
        lines = await seed_demo(ctx)
    except DemoSeedError as exc:
        raise CliError(str(exc)) from None
    for line in lines:
        print(line)


def cmd_backup(settings: Settings, args: argparse.Namespace) -> None:
    from bot.app.backup import BackupError, backup

    try:
        report = backup(settings, Path(args.file) if args.file else None)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    print(f"backup written: {report.summary()}")


def cmd_restore(settings: Settings, args: argparse.Namespace) -> None:
    from bot.app.backup import BackupError, restore

    try:
        report = restore(settings, Path(args.file))
    except BackupError as exc:
        raise CliError(str(exc)) from None
    print(f"restored and verified: {report.summary()}")


def cmd_secret(settings: Settings, args: argparse.Namespace) -> None:
    import secrets

    print(secrets.token_urlsafe(48))


@contextmanager
def _only_process_on_sqlite(settings: Settings, role: str) -> Iterator[None]:
    from bot.app.single_process import SecondProcessError, only_process_on_sqlite

    try:
        with only_process_on_sqlite(settings, role):
            yield
    except SecondProcessError as exc:
        raise CliError(str(exc)) from None


async def cmd_run(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.app.server import run_forever

    with _only_process_on_sqlite(ctx.settings, "run"):
        await run_forever(ctx)


async def cmd_worker(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.app.server import run_worker

    with _only_process_on_sqlite(ctx.settings, "worker"):
        await run_worker(ctx)


def refuse_unsafe(settings: Settings, args: argparse.Namespace) -> None:
    """`papibot run` with a public URL starts only with settings safe on the internet."""
    problems = production_problems(settings)
    if args.command in ("run", "worker") and problems:
        raise CliError(
            "refusing to start with PAPIBOT_PUBLIC_URL set: "
            + "; ".join(problems)
            + "; see README, Running in production"
        )


# --- parser -------------------------------------------------------------------------------


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-30") from None


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake said in one line (and exit 2, as argparse does)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="papibot", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"papibot {papibot_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create or upgrade the database and load the framework")
    init.add_argument("--units", help="also import this units CSV")
    init.add_argument(
        "--structure",
        choices=["three-tier", "two-tier"],
        help="two-tier: the 2025 units from vietnam-provinces (no districts) and that mapping",
    )
    init.add_argument("--province", type=int, default=56, help="two-tier: the province code")
    init.set_defaults(run=cmd_init)

    framework = sub.add_parser("framework", help="the decision as YAML").add_subparsers(
        dest="action", required=True
    )
    framework.add_parser("validate", help="check framework_data/").set_defaults(
        sync=cmd_framework_validate
    )
    listing = framework.add_parser("list", help="list the tasks")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(sync=cmd_framework_list)

    units = sub.add_parser("units", help="administrative units").add_subparsers(
        dest="action", required=True
    )
    unit_import = units.add_parser("import", help="import units from CSV or vietnam-provinces")
    unit_import.add_argument("file", nargs="?")
    unit_import.add_argument("--vietnam-provinces", action="store_true")
    unit_import.add_argument("--province", type=int)
    unit_import.set_defaults(run=cmd_units_import)
    unit_list = units.add_parser("list", help="list units")
    unit_list.add_argument("--parent", help="only the children of this unit code")
    unit_list.add_argument("--json", action="store_true")
    unit_list.set_defaults(run=cmd_units_list)

    users = sub.add_parser("users", help="people").add_subparsers(dest="action", required=True)
    user_add = users.add_parser("add", help="add a user holding a role at a unit")
    user_add.add_argument("--unit", required=True)
    user_add.add_argument("--role", required=True)
    user_add.add_argument("--name", default="")
    user_add.add_argument("--channel", choices=["telegram", "zalo_bot", "zalo_oa", "web"])
    user_add.add_argument("--external-id", default="")
    user_add.set_defaults(run=cmd_users_add)
    user_list = users.add_parser("list", help="people, by unit")
    user_list.add_argument("--unit", help="this unit and everything below it")
    user_list.add_argument("--role")
    user_list.add_argument("--all", action="store_true", help="deactivated people too")
    user_list.add_argument("--json", action="store_true")
    user_list.set_defaults(run=cmd_users_list)
    user_off = users.add_parser("deactivate", help="stop messaging someone (kept on record)")
    user_off.add_argument("id", type=_positive_int, help="the user id (see `users list`)")
    user_off.set_defaults(run=cmd_users_deactivate)
    user_phone = users.add_parser("phone", help="set or remove a person's phone number (ZNS)")
    user_phone.add_argument("--user", required=True, type=int, help="the user id")
    change = user_phone.add_mutually_exclusive_group(required=True)
    change.add_argument("--phone", help="a Vietnamese mobile number, e.g. 0912 345 678")
    change.add_argument("--remove", action="store_true")
    user_phone.set_defaults(run=cmd_users_phone)

    invite = sub.add_parser("invite", help="a single-use registration code for the chat")
    invite.add_argument("--unit", required=True)
    invite.add_argument("--role", required=True)
    invite.add_argument("--telegram-bot", default="", help="default: PAPIBOT_TELEGRAM_BOT_USERNAME")
    invite.set_defaults(run=cmd_invite)

    events = sub.add_parser("events", help="events that start tasks").add_subparsers(
        dest="action", required=True
    )
    event_add = events.add_parser("add", help="declare an election, a review, public works …")
    event_add.add_argument("--unit", required=True)
    event_add.add_argument("--kind", required=True)
    event_add.add_argument("--date", required=True, type=_date)
    event_add.add_argument("--end", type=_date)
    event_add.add_argument("--name", default="")
    event_add.set_defaults(run=cmd_events_add)

    plan = sub.add_parser("plan", help="create occurrences from the schedules")
    plan.add_argument("--until", type=_date, help="default: 62 days ahead")
    plan.add_argument("--today", type=_date, help="plan as if today were this date")
    plan.set_defaults(run=cmd_plan)

    status = sub.add_parser("status", help="every occurrence with its status")
    status.add_argument("--unit", help="this unit and everything below it")
    status.add_argument(
        "--status", choices=["open", "done", "excused", "overdue", "escalated"], help="only these"
    )
    status.add_argument("--task", help="only this task key")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=cmd_status)

    coverage = sub.add_parser("coverage", help="roles with work and nobody registered")
    coverage.add_argument("--unit", help="only the units below this one")
    coverage.add_argument("--json", action="store_true")
    coverage.set_defaults(run=cmd_coverage)

    sweep = sub.add_parser("sweep", help="one pass of reminders and escalation")
    sweep.add_argument(
        "--now", help="as if it were then: a date (at the reminder time) or a date-time"
    )
    sweep.set_defaults(run=cmd_sweep)
    digest = sub.add_parser("digest", help="one pass of the digests that are due")
    digest.add_argument(
        "--now", help="as if it were then: a date (at the digest time) or a date-time"
    )
    digest.set_defaults(run=cmd_digest)

    demo = sub.add_parser("demo-seed", help="demo users for the web chat simulator")
    demo.set_defaults(run=cmd_demo_seed)

    backup = sub.add_parser("backup", help="database and evidence into one verified archive")
    backup.add_argument("file", nargs="?", help="default: DATA_DIR/backups/papibot-<time>.tar.gz")
    backup.set_defaults(sync=cmd_backup)
    restore = sub.add_parser("restore", help="verify an archive, then restore it (server stopped)")
    restore.add_argument("file")
    restore.set_defaults(sync=cmd_restore)

    run = sub.add_parser("run", help="start the server, the channels, the scheduler")
    run.set_defaults(run=cmd_run)
    worker = sub.add_parser(
        "worker",
        help="the inbox, the sweeps and the outbox without the server (several on PostgreSQL)",
    )
    worker.set_defaults(run=cmd_worker)

    secret = sub.add_parser("secret", help="print a new random PAPIBOT_SECRET_KEY")
    secret.set_defaults(sync=cmd_secret)
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return int(text)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        refuse_unsafe(settings, args)
        if hasattr(args, "sync"):
            args.sync(settings, args)
        else:
            asyncio.run(_run_async(args.run, settings, args))
        sys.stdout.flush()
        return 0
    except BrokenPipeError:
        # `papibot status | head`: the reader left; say nothing more, and no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 2
    except (CliError, FrameworkError) as exc:
        print(f"papibot: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        print(f"papibot: setting {where.upper()}: {first.get('msg')}", file=sys.stderr)
        return 2
    except (OSError, OperationalError, InterfaceError) as exc:  # a wrong URL, a stopped server
        unreachable = isinstance(exc, OperationalError | InterfaceError | ConnectionError) or (
            getattr(exc, "errno", None) in (errno.ECONNREFUSED, errno.EHOSTUNREACH)
        )
        hint = "cannot reach the database (PAPIBOT_DATABASE_URL): " if unreachable else ""
        print(f"papibot: {hint}{_one_line(exc)}", file=sys.stderr)
        return 2


async def _run_async(
    command: Callable[[AppContext, argparse.Namespace], Awaitable[None]],
    settings: Settings,
    args: argparse.Namespace,
) -> int:
    if getattr(args, "structure", None):  # init --structure: that structure's framework
        settings = settings.model_copy(update={"structure": args.structure.replace("-", "_")})
    ctx = AppContext.build(settings)
    try:
        await command(ctx, args)
    finally:
        await ctx.db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
