"""Load and cross-check framework_data/ (plus a province's overrides).

Every error names the file, the task key (or record) and the field, so a province editing YAML
can fix it without reading Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.core.framework.schema import (
    LEVELS,
    Dimension,
    Framework,
    RolesFile,
    SchedulesFile,
    TasksFile,
    role_matches,  # noqa: F401  (re-exported for callers that import from loader)
)
from bot.core.framework.structures import apply_structure
from bot.core.framework.yamlfile import FrameworkError, read_yaml

FILES = ("dimensions.yaml", "roles.yaml", "schedules.yaml", "tasks.yaml")


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


def load_framework(
    base_dir: Path, override_dir: Path | None = None, structure: str = "three_tier"
) -> Framework:
    """The framework of `base_dir` with a province's overrides, under `structure`
    (framework_data/structures/; three-tier is the decision as written)."""
    return apply_structure(_load_framework(base_dir, override_dir), base_dir, structure)


def _load_framework(base_dir: Path, override_dir: Path | None = None) -> Framework:
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
    for name, supervisor in roles_file.supervisors.items():
        for where, target in [("", supervisor)] + [
            (f"at.{k}.", v) for k, v in supervisor.at.items()
        ]:
            if target.target == "agency" and target.agency not in agencies:
                raise FrameworkError(
                    f"{roles_path}: supervisor `{name}`: field `{where}agency`: unknown agency "
                    f"`{target.agency}`"
                )
    for name, role in roles_file.roles.items():
        if role.fallback is not None and role.fallback not in roles_file.roles:
            raise FrameworkError(
                f"{roles_path}: role `{name}`: field `fallback`: unknown role `{role.fallback}`"
            )
    for name, rule in sched_file.schedules.items():
        _check_rule(name, rule, sched_file.event_kinds, sched_path)
    for name, rule in sched_file.schedules.items():
        _check_cadence(f"{sched_path}: schedule `{name}`", rule.cadence, sched_file.schedules)

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
        if task.phases:
            known = [phase.key for phase in rule.phases]
            unknown = [key for key in task.phases if key not in known]
            if rule.kind != "event" or unknown:
                raise FrameworkError(
                    f"{where}: field `phases`: {unknown or task.phases} not among the phases "
                    f"of schedule `{task.schedule}` ({', '.join(known) or 'none'})"
                )
        _check_cadence(where, task.cadence, sched_file.schedules)
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


def _check_cadence(where: str, cadence: dict[str, str], schedules: dict[str, Any]) -> None:
    for level, name in cadence.items():
        if level != "*" and level not in LEVELS:
            raise FrameworkError(
                f"{where}: field `cadence`: unknown level `{level}` (levels: *, {', '.join(LEVELS)})"
            )
        target = schedules.get(name)
        if target is None or target.kind != "periodic":
            raise FrameworkError(
                f"{where}: field `cadence.{level}`: `{name}` is not a periodic schedule"
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
        if rule.spread_days and rule.period not in ("monthly", "quarterly"):
            raise FrameworkError(f"{where}: field `spread_days`: only for monthly or quarterly")
        if any(not 1 <= day <= 28 for day in rule.spread_days):
            raise FrameworkError(f"{where}: field `spread_days`: days must be 1 to 28")
        if rule.period == "school_year" and not rule.due_dates:
            raise FrameworkError(f"{where}: field `due_dates`: school_year needs at least one")
    elif rule.kind == "event":
        unknown = [kind for kind in rule.events if kind not in event_kinds]
        if not rule.events or unknown:
            raise FrameworkError(
                f"{where}: field `event`: unknown event kind `{(unknown or [None])[0]}`"
            )
        if not rule.phases:
            raise FrameworkError(f"{where}: field `phases`: an event schedule needs phases")


def load_model_file(name: str, model: type, base_dir: Path, override_dir: Path | None) -> Any:
    """One YAML file of the framework folder (merged with the province's override), validated
    as `model`; errors name the file and the field, like the framework's own files."""
    raw, path = _load_file(name, base_dir, override_dir)
    return _validate(model, raw, path)
