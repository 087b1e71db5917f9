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


LEVELS = ("province", "district", "commune", "village", "agency")
Level = Literal["province", "district", "commune", "village", "agency"]
LOCAL_LEVELS = ("village",)  # supervised through the commune and district above


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
    # Reminded at the same unit while nobody holds this role (see roles.yaml).
    fallback: str | None = None


class Agency(Strict):
    key: str  # slug used in `province_agency:<key>` and as the agency unit's code
    name: str
    company: bool = False  # a business: never one of "Các cơ quan, đơn vị, địa phương"


class LevelTarget(Strict):
    # parent_district: the district above the occurrence's unit (three-tier);
    # agency: the provincial agency `agency`; province: the provincial committee.
    target: Literal["parent_district", "agency", "province"]
    agency: str | None = None


class SupervisorTarget(LevelTarget):
    """Where an escalation goes for a supervisor phrase of the decision."""

    # Another target for occurrences at a level (line 82 names two supervisors). Without one,
    # a village's occurrence goes to its district even when the supervisor is a provincial
    # agency: a Sở does not follow up a village head; it supervises through the districts.
    at: dict[Level, LevelTarget] = {}

    def for_level(self, level: str) -> LevelTarget:
        if level in self.at:
            return self.at[level]
        if level in LOCAL_LEVELS and self.target != "parent_district":
            return LevelTarget(target="parent_district")
        return self


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
    # The decision's phrases this rule covers; empty for a cadence rule that tasks reach only
    # through their `cadence` (a frequency the decision's reporting cycle implies).
    timings: list[str] = []
    # periodic
    period: Literal["monthly", "quarterly", "semiannual", "annual", "school_year"] | None = None
    due_day: int | None = Field(
        default=None, ge=1, le=28
    )  # monthly/quarterly: day of the last month
    due_dates: list[str] = []  # MM-DD; semiannual: two, annual: one, school_year: in-year dates
    # monthly/quarterly: tasks are spread over the months of the period and over these days of
    # the month (in task order), so that no day carries every task of a unit
    spread_days: list[int] = []
    spread_months: bool = False
    # event: the kind (or kinds) that start the rule's tasks
    event: str | list[str] | None = None
    phases: list[EventPhase] = []
    # The periodic rule used instead of this one at a level (a task's own `cadence` wins).
    cadence: dict[str, str] = {}

    @property
    def events(self) -> list[str]:
        if self.event is None:
            return []
        return [self.event] if isinstance(self.event, str) else list(self.event)

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
    sub_dimension: str = ""  # empty where the decision prints none (dimension 5)
    title: str = Field(max_length=60)
    task: list[str] = Field(min_length=1)
    methods: list[str] = []
    supervisor: str
    executors: list[str] = Field(min_length=1)
    roles: list[str] = Field(min_length=1)
    timing: str
    schedule: str
    evidence: str
    # Optional English versions, shown to people who chose English (else the Vietnamese).
    title_en: str | None = Field(default=None, min_length=1, max_length=60)
    evidence_en: str | None = Field(default=None, min_length=1, max_length=300)
    source: str = ""  # where the row stands in the decision's appendix
    # Event schedules: the phases of the rule this task has (empty: all of them).
    phases: list[str] = []
    # The periodic rule used at a level instead of `schedule` ("*": every level), when the text
    # or the office's reporting cycle gives the work another rhythm than the timing phrase.
    cadence: dict[str, str] = {}

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

    def schedule_name(self, task: TaskRecord, level: str) -> str:
        """The rule a task follows at units of `level` (its cadence there, else its schedule)."""
        own = task.cadence.get(level) or task.cadence.get("*")
        if own:
            return own
        return self.schedules[task.schedule].cadence.get(level) or task.schedule

    def rule_for(self, task: TaskRecord, level: str) -> ScheduleRule:
        return self.schedules[self.schedule_name(task, level)]

    def levels_of(self, task: TaskRecord) -> set[str]:
        return {self.role_level(role) for role in task.roles}

    def reminded_at(self, task: TaskRecord, level: str) -> bool:
        """Is the task planned and reminded at units of `level`? Not where it is done on
        request only (a cadence may still give the proactive part a rhythm, review E10)."""
        return self.rule_for(task, level).kind != "on_request"

    def reminded(self, task: TaskRecord) -> bool:
        return any(self.reminded_at(task, level) for level in self.levels_of(task))

    def is_company(self, role: str) -> bool:
        agency = self.agencies.get(role.split(":", 1)[1]) if ":" in role else None
        return agency is not None and agency.company

    def executes(self, task: TaskRecord, role: str) -> bool:
        """Does `role` execute `task`? A company only the rows that name it."""
        if self.is_company(role):
            return role in task.roles
        return role_matches(task.roles, role)

    def fallback_roles(self, task_roles: list[str]) -> set[str]:
        """Who is reminded at a unit where nobody holds any of `task_roles` (roles.yaml)."""
        return {
            fallback
            for role in task_roles
            if role in self.roles and (fallback := self.roles[role].fallback)
        }

    def tasks_for_role(self, role: str) -> list[TaskRecord]:
        return [t for t in self.tasks.values() if self.executes(t, role)]

    def supervised_by(self, agency_code: str) -> frozenset[str]:
        """The keys of the tasks whose supervisor is this agency ("Cơ quan hướng dẫn, kiểm tra"):
        what its dashboard shows and its weekly digest counts."""
        return frozenset(
            task.key
            for task in self.tasks.values()
            if (target := self.supervisors.get(task.supervisor)) is not None
            and target.target == "agency"
            and target.agency == agency_code
        )


def role_matches(task_roles: list[str], role: str) -> bool:
    """Does a user holding `role` execute a task with `task_roles`? (`province_agency:*` = any)."""
    if role in task_roles:
        return True
    return role.startswith("province_agency:") and "province_agency:*" in task_roles


def parse_month_day(text: str, year: int) -> date:
    month, day = (int(part) for part in text.split("-"))
    return date(year, month, day)
