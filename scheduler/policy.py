"""The reminder policy and escalation chain, read from framework_data/reminders.yaml and
escalation.yaml (a province's override folder may hold its own, merged key by key).

Everything here is pure: moments are computed from a due date and the policy, so two workers,
a restart or a replayed sweep all reach the same answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.core.config import Settings
from bot.core.framework.loader import FrameworkError, merge_yaml, read_yaml

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReminderPolicy(Strict):
    before_days: list[int] = Field(default=[7, 1])
    on_due_date: bool = True
    overdue_daily: bool = True
    overdue_until_step: str | None = "supervisor"
    send_at: time = time(8, 0)
    quiet_start: time = time(21, 0)
    quiet_end: time = time(7, 0)
    fold_after_hours: float = Field(default=6, gt=0)
    catch_up_days: int = Field(default=30, ge=1, le=366)
    max_tasks_per_message: int = Field(default=8, ge=1, le=20)
    max_notices_per_message: int = Field(default=15, ge=1, le=50)
    # Tasks stop being listed (they are counted) once the text would pass this; at least one
    # is always listed.
    max_message_chars: int = Field(default=4000, ge=400, le=4000)
    max_extension_days: int = Field(default=60, ge=1, le=366)
    # One reminder message in this many days is enough for a person (1: no spacing); the
    # stages in `always_send` and escalation news go out whatever came the days before.
    min_days_between: int = Field(default=1, ge=1, le=7)
    always_send: list[str] = Field(default=["overdue-1"])

    @model_validator(mode="after")
    def _sane(self) -> ReminderPolicy:
        if any(day < 1 for day in self.before_days):
            raise ValueError("before_days must be whole days of 1 or more")
        known = {f"before-{day}" for day in self.before_days} | {"due"}
        for name in self.always_send:
            if name not in known and not re.fullmatch(r"overdue-[1-9][0-9]*", name):
                raise ValueError(f"always_send: {name!r} is not a reminder stage")
        if self.is_quiet_clock(self.send_at):
            raise ValueError(f"send_at {self.send_at} falls in the quiet hours")
        return self

    def is_quiet_clock(self, clock: time) -> bool:
        start, end = self.quiet_start, self.quiet_end
        if start == end:
            return False
        if start < end:
            return start <= clock < end
        return clock >= start or clock < end

    def is_quiet(self, moment: datetime, tz: ZoneInfo) -> bool:
        return self.is_quiet_clock(moment.astimezone(tz).time())

    @property
    def fold_after(self) -> timedelta:
        return timedelta(hours=self.fold_after_hours)


class EscalationStep(Strict):
    step: str = Field(min_length=1, max_length=32)
    days_after_due: int = Field(ge=0)
    at: time = time(8, 0)
    target: Literal["parent_commune", "supervisor"]
    levels: list[Literal["village", "commune", "district", "agency", "province"]]


class UnreachableRule(Strict):
    step: str = "unreachable"
    reason: str = "unreachable"


class DigestPolicy(Strict):
    at: time = time(7, 30)
    weekly_on: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ] = "monday"
    monthly_day: int = Field(default=1, ge=1, le=28)
    monthly_roles: list[str] = ["province_agency:so-noi-vu"]
    max_listed: int = Field(default=20, ge=1, le=100)

    @property
    def weekly_weekday(self) -> int:
        return WEEKDAYS.index(self.weekly_on)


class EscalationPolicy(Strict):
    steps: list[EscalationStep]
    unreachable: UnreachableRule = UnreachableRule()
    notify_roles: dict[str, list[str]]
    digests: DigestPolicy = DigestPolicy()

    @model_validator(mode="after")
    def _unique_steps(self) -> EscalationPolicy:
        names = [step.step for step in self.steps] + [self.unreachable.step]
        if len(names) != len(set(names)):
            raise ValueError(f"step names must be unique: {names}")
        return self

    def step(self, name: str) -> EscalationStep | None:
        return next((step for step in self.steps if step.step == name), None)


@dataclass(frozen=True)
class Policies:
    reminders: ReminderPolicy
    escalation: EscalationPolicy
    tz: ZoneInfo

    # --- moments ---------------------------------------------------------------------------

    def at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=self.tz)

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def step_moment(self, step: EscalationStep, due_day: date) -> datetime:
        return self.at(due_day + timedelta(days=step.days_after_due), step.at)

    def overdue_stop(self, due_day: date) -> datetime | None:
        """Daily overdue reminders end once this moment comes (the supervisor takes over)."""
        name = self.reminders.overdue_until_step
        step = self.escalation.step(name) if name else None
        return self.step_moment(step, due_day) if step else None

    def stages(self, due_day: date, until: datetime) -> list[Stage]:
        """Every reminder stage of a due date whose moment is at or before `until`, in order."""
        policy = self.reminders
        found = [
            Stage(
                f"before-{days}", due_day, self.at(due_day - timedelta(days=days), policy.send_at)
            )
            for days in sorted(set(policy.before_days), reverse=True)
        ]
        if policy.on_due_date:
            found.append(Stage("due", due_day, self.at(due_day, policy.send_at)))
        if policy.overdue_daily:
            stop = self.overdue_stop(due_day)
            last = min(until, stop - timedelta(seconds=1)) if stop else until
            days = 1
            while (moment := self.at(due_day + timedelta(days=days), policy.send_at)) <= last:
                found.append(Stage(f"overdue-{days}", due_day, moment))
                days += 1
        return [stage for stage in found if stage.moment <= until]


@dataclass(frozen=True)
class Stage:
    """One reminder moment of one due date; `key` is what the `reminders` table stores.

    The due date is part of the key, so an extension (a new due date) starts a fresh ladder.
    """

    name: str
    due_day: date
    moment: datetime

    @property
    def key(self) -> str:
        return f"{self.name}@{self.due_day:%Y%m%d}"


def _load(name: str, model: type[Strict], base_dir: Path, override_dir: Path | None) -> Strict:
    path = base_dir / name
    raw = read_yaml(path) if path.exists() else {}
    if override_dir is not None and (override_dir / name).exists():
        raw = merge_yaml(raw, read_yaml(override_dir / name))
        path = override_dir / name
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"field `{'.'.join(str(p) for p in err['loc']) or '(top level)'}`: {err['msg']}"
            for err in exc.errors()
        ]
        raise FrameworkError(f"{path}: " + f"\n{path}: ".join(lines)) from None


@cache
def _policies(base_dir: Path, override_dir: Path | None, timezone: str) -> Policies:
    reminders = _load("reminders.yaml", ReminderPolicy, base_dir, override_dir)
    escalation = _load("escalation.yaml", EscalationPolicy, base_dir, override_dir)
    assert isinstance(reminders, ReminderPolicy) and isinstance(escalation, EscalationPolicy)
    policies = Policies(reminders=reminders, escalation=escalation, tz=ZoneInfo(timezone))
    _check_together(policies, base_dir, override_dir)
    return policies


def _check_together(policies: Policies, base_dir: Path, override_dir: Path | None) -> None:
    until = policies.reminders.overdue_until_step
    if until and policies.escalation.step(until) is None:
        where = (override_dir or base_dir) / "reminders.yaml"
        raise FrameworkError(
            f"{where}: field `overdue_until_step`: no step `{until}` in escalation.yaml"
        )
    for step in policies.escalation.steps:
        if policies.reminders.is_quiet_clock(step.at):
            where = (override_dir or base_dir) / "escalation.yaml"
            raise FrameworkError(f"{where}: step `{step.step}`: `at` falls in the quiet hours")


def load_policies(settings: Settings) -> Policies:
    """The policies for these settings (cached: the YAML is read once per process)."""
    return _policies(
        Path(settings.framework_dir).resolve(),
        Path(settings.framework_overrides).resolve() if settings.framework_overrides else None,
        settings.timezone,
    )


__all__ = [
    "DigestPolicy",
    "EscalationPolicy",
    "EscalationStep",
    "Policies",
    "ReminderPolicy",
    "Stage",
    "load_policies",
]
