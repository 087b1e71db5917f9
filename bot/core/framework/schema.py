"""Typed records for framework_data/*.yaml.

Files (all in one folder; a province's override folder may hold any of them):
- dimensions.yaml  the eight PAPI dimensions: key, name, short (chat label), short_en
- roles.yaml       roles (who executes), agencies (provincial Sở …), supervisors (phrase → target)
- schedules.yaml   named schedule rules, each listing the decision's timing phrases it covers
- tasks.yaml       every row of the appendix
- reminders.yaml   reminder policy; escalation.yaml escalation chain (scheduler)
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

KEY_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MONTH_DAY = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dimension(Strict):
    key: str
    number: int
    name: str
    short: str = Field(max_length=24)
    short_en: str = Field(max_length=24)


class RoleDef(Strict):
    level: Literal["province", "district", "commune", "village", "agency"]
    name: str  # Vietnamese, as a person would say it ("Trưởng thôn")
    name_en: str
    # Roles that may act on this role's occurrences from above (a commune officer on villages).
    oversees: list[str] = []


class Agency(Strict):
    key: str  # slug used in `province_agency:<key>` and as the agency unit's code
    name: str


class SupervisorTarget(Strict):
    """Where an escalation goes for a supervisor phrase of the decision."""

    # parent_district: the district above the occurrence's unit (three-tier);
    # agency: the provincial agency `agency`; province: the provincial committee.
    target: Literal["parent_district", "agency", "province"]
    agency: str | None = None


class RolesFile(Strict):
    roles: dict[str, RoleDef]
    agencies: list[Agency]
    supervisors: dict[str, SupervisorTarget]


class EventPhase(Strict):
    key: str  # truoc | trong | sau …
    label: str  # Vietnamese label shown in chat
    # Window opens `open_days` from the anchor and is due `due_days` from it (negative: before).
    anchor: Literal["start", "end"] = "start"
    open_days: int
    due_days: int


class ScheduleRule(Strict):
    kind: Literal["periodic", "event", "on_request"]
    label: str  # Vietnamese, shown in chat ("Hằng tháng")
    timings: list[str] = Field(min_length=1)  # the decision's phrases this rule covers
    # periodic
    period: Literal["monthly", "quarterly", "semiannual", "annual", "school_year"] | None = None
    due_day: int | None = Field(
        default=None, ge=1, le=28
    )  # monthly/quarterly: day of the last month
    due_dates: list[str] = []  # MM-DD; semiannual: two, annual: one, school_year: in-year dates
    # event
    event: str | None = None  # election | poverty_review | public_works | recruitment | …
    phases: list[EventPhase] = []

    @field_validator("due_dates")
    @classmethod
    def _month_days(cls, value: list[str]) -> list[str]:
        for item in value:
            if not MONTH_DAY.match(item):
                raise ValueError(f"due date {item!r} is not MM-DD")
        return value


class SchedulesFile(Strict):
    event_kinds: dict[str, str]  # kind → Vietnamese label
    schedules: dict[str, ScheduleRule]


class TaskRecord(Strict):
    key: str
    dimension: str
    sub_dimension: str
    title: str = Field(max_length=60)
    task: list[str] = Field(min_length=1)
    methods: list[str] = []
    supervisor: str
    executors: list[str] = Field(min_length=1)
    roles: list[str] = Field(min_length=1)
    timing: str
    schedule: str
    evidence: str
    source: str = ""  # where the row stands in the decision's appendix

    @field_validator("key")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not KEY_PATTERN.match(value):
            raise ValueError(f"key {value!r} is not an ASCII slug (a-z, 0-9, -)")
        return value


class TasksFile(Strict):
    tasks: list[TaskRecord]


class Framework(Strict):
    dimensions: dict[str, Dimension]
    roles: dict[str, RoleDef]
    agencies: dict[str, Agency]
    supervisors: dict[str, SupervisorTarget]
    event_kinds: dict[str, str]
    schedules: dict[str, ScheduleRule]
    tasks: dict[str, TaskRecord]

    def role_level(self, role: str) -> str:
        """`province_agency:so-noi-vu` → agency; `village_head` → village."""
        if role.startswith("province_agency:"):
            return "agency"
        return self.roles[role].level

    def role_name(self, role: str, locale: str = "vi") -> str:
        if role.startswith("province_agency:"):
            agency = self.agencies.get(role.split(":", 1)[1])
            return agency.name if agency else role
        definition = self.roles[role]
        return definition.name if locale == "vi" else definition.name_en

    def tasks_for_role(self, role: str) -> list[TaskRecord]:
        return [t for t in self.tasks.values() if role_matches(t.roles, role)]


def role_matches(task_roles: list[str], role: str) -> bool:
    """Does a user holding `role` execute a task with `task_roles`? (`province_agency:*` = any)."""
    if role in task_roles:
        return True
    return role.startswith("province_agency:") and "province_agency:*" in task_roles


def parse_month_day(text: str, year: int) -> date:
    month, day = (int(part) for part in text.split("-"))
    return date(year, month, day)
