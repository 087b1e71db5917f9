"""Load and cross-check framework_data/ (plus a province's overrides).

Every error names the file, the task key (or record) and the field, so a province editing YAML
can fix it without reading Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.core.framework.schema import (
    Dimension,
    Framework,
    RolesFile,
    SchedulesFile,
    TasksFile,
    role_matches,  # noqa: F401  (re-exported for callers that import from loader)
)

FILES = ("dimensions.yaml", "roles.yaml", "schedules.yaml", "tasks.yaml")


class FrameworkError(ValueError):
    """A problem in the framework YAML, phrased for the person editing it."""


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise FrameworkError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise FrameworkError(f"{path}{where}: not valid YAML ({exc})") from None


def merge_yaml(base: Any, override: Any) -> Any:
    """Dicts merge key by key; a task list merges by `key`; anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge_yaml(base[key], value) if key in base else value
        return merged
    if (
        isinstance(base, list)
        and isinstance(override, list)
        and all(isinstance(item, dict) and "key" in item for item in base + override)
    ):
        by_key = {item["key"]: item for item in base}
        order = [item["key"] for item in base]
        for item in override:
            if item["key"] in by_key:
                by_key[item["key"]] = merge_yaml(by_key[item["key"]], item)
            else:
                by_key[item["key"]] = item
                order.append(item["key"])
        return [by_key[key] for key in order]
    return override


def _describe(error: dict[str, Any], raw: Any, list_field: str | None) -> str:
    """`task cong-khai-ho-nghech: field roles.1: …` from a pydantic error location."""
    loc = list(error["loc"])
    prefix = ""
    if list_field and len(loc) >= 2 and loc[0] == list_field and isinstance(loc[1], int):
        try:
            key = raw[list_field][loc[1]].get("key", f"#{loc[1] + 1}")
        except (AttributeError, IndexError, KeyError, TypeError):
            key = f"#{loc[1] + 1}"
        prefix = f"task `{key}`: "
        loc = loc[2:]
    field = ".".join(str(part) for part in loc) or "(top level)"
    return f"{prefix}field `{field}`: {error['msg']}"


def _validate(model: type, raw: Any, path: Path, list_field: str | None = None) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(err, raw, list_field) for err in exc.errors()]
        raise FrameworkError(f"{path}: " + f"\n{path}: ".join(lines)) from None


def _load_file(name: str, base_dir: Path, override_dir: Path | None) -> tuple[Any, Path]:
    raw = read_yaml(base_dir / name)
    path = base_dir / name
    if override_dir is not None and (override_dir / name).exists():
        raw = merge_yaml(raw, read_yaml(override_dir / name))
        path = override_dir / name
    return raw, path


def load_framework(base_dir: Path, override_dir: Path | None = None) -> Framework:
    raw_dims, dims_path = _load_file("dimensions.yaml", base_dir, override_dir)
    dims_list = raw_dims.get("dimensions", []) if isinstance(raw_dims, dict) else []
    dimensions: dict[str, Dimension] = {}
    for index, item in enumerate(dims_list):
        dim = _validate(Dimension, item, dims_path)
        if dim.key in dimensions:
            raise FrameworkError(f"{dims_path}: dimension #{index + 1}: duplicate key `{dim.key}`")
        dimensions[dim.key] = dim

    raw_roles, roles_path = _load_file("roles.yaml", base_dir, override_dir)
    roles_file: RolesFile = _validate(RolesFile, raw_roles, roles_path)
    raw_sched, sched_path = _load_file("schedules.yaml", base_dir, override_dir)
    sched_file: SchedulesFile = _validate(SchedulesFile, raw_sched, sched_path)
    raw_tasks, tasks_path = _load_file("tasks.yaml", base_dir, override_dir)
    tasks_file: TasksFile = _validate(TasksFile, raw_tasks, tasks_path, list_field="tasks")

    agencies = {agency.key: agency for agency in roles_file.agencies}
    for name, target in roles_file.supervisors.items():
        if target.target == "agency" and target.agency not in agencies:
            raise FrameworkError(
                f"{roles_path}: supervisor `{name}`: field `agency`: unknown agency "
                f"`{target.agency}`"
            )
    for name, rule in sched_file.schedules.items():
        _check_rule(name, rule, sched_file.event_kinds, sched_path)

    tasks = {}
    for task in tasks_file.tasks:
        where = f"{tasks_path}: task `{task.key}`"
        if task.key in tasks:
            raise FrameworkError(f"{where}: field `key`: duplicate key")
        if task.dimension not in dimensions:
            raise FrameworkError(
                f"{where}: field `dimension`: unknown dimension `{task.dimension}`"
            )
        rule = sched_file.schedules.get(task.schedule)
        if rule is None:
            raise FrameworkError(f"{where}: field `schedule`: unknown schedule `{task.schedule}`")
        if task.timing not in rule.timings:
            raise FrameworkError(
                f"{where}: field `timing`: {task.timing!r} is not listed under the timings of "
                f"schedule `{task.schedule}` in schedules.yaml"
            )
        for role in task.roles:
            if role.startswith("province_agency:"):
                agency = role.split(":", 1)[1]
                if agency != "*" and agency not in agencies:
                    raise FrameworkError(f"{where}: field `roles`: unknown agency `{agency}`")
            elif role not in roles_file.roles:
                raise FrameworkError(f"{where}: field `roles`: unknown role `{role}`")
        if task.supervisor not in roles_file.supervisors:
            raise FrameworkError(
                f"{where}: field `supervisor`: {task.supervisor!r} has no entry under "
                f"`supervisors` in roles.yaml"
            )
        tasks[task.key] = task

    return Framework(
        dimensions=dimensions,
        roles=roles_file.roles,
        agencies=agencies,
        supervisors=roles_file.supervisors,
        event_kinds=sched_file.event_kinds,
        schedules=sched_file.schedules,
        tasks=tasks,
    )


def _check_rule(name: str, rule: Any, event_kinds: dict[str, str], path: Path) -> None:
    where = f"{path}: schedule `{name}`"
    if rule.kind == "periodic":
        if rule.period is None:
            raise FrameworkError(f"{where}: field `period`: required for a periodic schedule")
        if rule.period in ("monthly", "quarterly") and rule.due_day is None:
            raise FrameworkError(f"{where}: field `due_day`: required for {rule.period}")
        needed = {"semiannual": 2, "annual": 1}.get(rule.period)
        if needed and len(rule.due_dates) != needed:
            raise FrameworkError(f"{where}: field `due_dates`: {rule.period} needs {needed}")
        if rule.period == "school_year" and not rule.due_dates:
            raise FrameworkError(f"{where}: field `due_dates`: school_year needs at least one")
    elif rule.kind == "event":
        if rule.event not in event_kinds:
            raise FrameworkError(f"{where}: field `event`: unknown event kind `{rule.event}`")
        if not rule.phases:
            raise FrameworkError(f"{where}: field `phases`: an event schedule needs phases")
