"""The `papibot` command: set up, inspect and operate a deployment.

Errors a person can act on (a bad CSV line, an unknown unit) are printed as one line and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path

from bot.core.config import Settings
from bot.core.context import AppContext
from bot.core.framework import FrameworkError, load_framework
from bot.core.timeutil import parse_now


class CliError(Exception):
    """A mistake in what the operator asked for, printed without a traceback."""


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
    async with ctx.db.session() as session:
        report = await sync_task_definitions(session, ctx.framework)
        await session.commit()
    print(f"database ready at {ctx.db.engine.url.render_as_string(hide_password=True)}")
    print(report.summary())
    if args.units:
        await cmd_units_import(
            ctx, argparse.Namespace(file=args.units, vietnam_provinces=False, province=None)
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
    from bot.core.units import UnitImportError, import_units_csv, import_vietnam_provinces

    try:
        if args.vietnam_provinces:
            if args.province is None:
                raise CliError("--vietnam-provinces needs --province CODE (e.g. 56 for Khánh Hòa)")
            report = await import_vietnam_provinces(ctx.db, args.province)
        else:
            if not args.file:
                raise CliError("give a CSV file or --vietnam-provinces --province CODE")
            report = await import_units_csv(ctx.db, Path(args.file))
    except UnitImportError as exc:
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
    bot_name = args.telegram_bot or "<your_bot>"
    print(f"telegram: https://t.me/{bot_name}?start={invite.code}")


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

    today = args.today or date.today()
    async with ctx.db.session() as session:
        report = await plan(session, ctx.framework, ctx.settings, today, args.until)
        await session.commit()
    print(report.summary())


async def cmd_status(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.core.services.status import status_rows
    from bot.core.units import descendants_ids

    async with ctx.db.session() as session:
        unit_ids = None
        if args.unit:
            unit = await _unit_or_fail(session, args.unit)
            unit_ids = [unit.id, *await descendants_ids(session, unit.id)]
        rows = await status_rows(session, unit_ids)
    if args.json:
        _print_json([row.as_json() for row in rows])
        return
    tz = ctx.settings.tz
    for row in rows:
        due = row.due_at.astimezone(tz).strftime("%d/%m/%Y %H:%M")
        print(f"{row.unit_code:12} {row.task_key:45} {row.period:24} {due} {row.status}")
    print(f"{len(rows)} occurrences")


async def cmd_sweep(ctx: AppContext, args: argparse.Namespace) -> None:
    from scheduler.commands import run_sweep

    report = await run_sweep(ctx, parse_now(args.now, ctx.settings.tz))
    print(report.summary())


async def cmd_digest(ctx: AppContext, args: argparse.Namespace) -> None:
    from scheduler.commands import run_digest

    report = await run_digest(ctx, parse_now(args.now, ctx.settings.tz))
    print(report.summary())


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


async def cmd_run(ctx: AppContext, args: argparse.Namespace) -> None:
    from bot.app.server import run_forever

    await run_forever(ctx)


# --- parser -------------------------------------------------------------------------------


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-30") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="papibot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create or upgrade the database and load the framework")
    init.add_argument("--units", help="also import this units CSV")
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
    user_phone = users.add_parser("phone", help="set or remove a person's phone number (ZNS)")
    user_phone.add_argument("--user", required=True, type=int, help="the user id")
    change = user_phone.add_mutually_exclusive_group(required=True)
    change.add_argument("--phone", help="a Vietnamese mobile number, e.g. 0912 345 678")
    change.add_argument("--remove", action="store_true")
    user_phone.set_defaults(run=cmd_users_phone)

    invite = sub.add_parser("invite", help="a single-use registration code for the chat")
    invite.add_argument("--unit", required=True)
    invite.add_argument("--role", required=True)
    invite.add_argument("--telegram-bot", default="", help="bot username for the deep link")
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
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=cmd_status)

    sweep = sub.add_parser("sweep", help="one pass of reminders and escalation")
    sweep.add_argument("--now", help="as if it were this moment (ISO, local time unless offset)")
    sweep.set_defaults(run=cmd_sweep)
    digest = sub.add_parser("digest", help="one pass of the digests that are due")
    digest.add_argument("--now", help="as if it were this moment (ISO, local time unless offset)")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    try:
        if hasattr(args, "sync"):
            args.sync(settings, args)
            return 0
        return asyncio.run(_run_async(args.run, settings, args))
    except (CliError, FrameworkError) as exc:
        print(f"papibot: {exc}", file=sys.stderr)
        return 2


async def _run_async(
    command: Callable[[AppContext, argparse.Namespace], Awaitable[None]],
    settings: Settings,
    args: argparse.Namespace,
) -> int:
    ctx = AppContext.build(settings)
    try:
        await command(ctx, args)
    finally:
        await ctx.db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
