"""The administrative structure a deployment runs on: framework_data/structures/<name>.yaml
says who takes over the decision's district-level roles and supervision where there are no
districts (two-tier, since 1 July 2025). Three-tier is the decision as written: no file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.core.framework.schema import Framework, SupervisorTarget
from bot.core.framework.yamlfile import FrameworkError, read_yaml

THREE_TIER = "three_tier"


class StructureFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: dict[str, str] = {}
    supervisors: dict[str, SupervisorTarget] = {}


def structure_name(name: str) -> str:
    """`two-tier` (as typed on the command line) is `two_tier` (as in the settings)."""
    return name.strip().replace("-", "_")


def apply_structure(framework: Framework, base_dir: Path, name: str) -> Framework:
    """The framework as it runs under structure `name` (unchanged for three-tier)."""
    name = structure_name(name)
    if name == THREE_TIER:
        return framework
    path = base_dir / "structures" / f"{name}.yaml"
    if not path.exists():
        raise FrameworkError(f"{path}: no such structure `{name}`")
    try:
        spec = StructureFile.model_validate(read_yaml(path))
    except ValidationError as exc:
        lines = [f"field `{'.'.join(map(str, e['loc']))}`: {e['msg']}" for e in exc.errors()]
        raise FrameworkError(f"{path}: " + f"\n{path}: ".join(lines)) from None
    for old, new in spec.roles.items():
        if old not in framework.roles:
            raise FrameworkError(f"{path}: field `roles.{old}`: unknown role `{old}`")
        agency = new.split(":", 1)[1] if new.startswith("province_agency:") else None
        if (agency is None and new not in framework.roles) or (
            agency is not None and agency not in framework.agencies
        ):
            raise FrameworkError(f"{path}: field `roles.{old}`: unknown role `{new}`")
    for phrase, target in spec.supervisors.items():
        if phrase not in framework.supervisors:
            raise FrameworkError(f"{path}: field `supervisors`: unknown phrase `{phrase}`")
        if target.target == "agency" and target.agency not in framework.agencies:
            raise FrameworkError(f"{path}: supervisor `{phrase}`: unknown agency `{target.agency}`")
    tasks = {}
    for key, task in framework.tasks.items():
        roles = list(dict.fromkeys(spec.roles.get(role, role) for role in task.roles))
        tasks[key] = task.model_copy(update={"roles": roles})
    return framework.model_copy(
        update={
            "tasks": tasks,
            "supervisors": {**framework.supervisors, **spec.supervisors},
            "roles": _oversight(framework, spec.roles),
        }
    )


def _oversight(framework: Framework, moved: dict[str, str]) -> dict:
    """Who oversees whom once the `moved` roles are gone: a role that oversaw one of them (the
    province committee over the district committee) oversees what that one oversaw (the commune
    committee), so a commune's request for more time still reaches the level above it. A role
    overseen at its own level (the commune radio, by the commune committee) stays with it; the
    roles gone oversee nobody."""
    roles = framework.roles
    overseen_nearby = {
        child
        for role in roles.values()
        for child in role.oversees
        if child in roles and roles[child].level == role.level and child not in moved
    }
    updated = {}
    for name, role in roles.items():
        if name in moved:
            updated[name] = role.model_copy(update={"oversees": []})
            continue
        oversees: list[str] = []
        for child in role.oversees:
            if child not in moved:
                oversees.append(child)
                continue
            for below in roles[child].oversees:
                below = moved.get(below, below)
                if below in roles and below not in moved and below not in overseen_nearby:
                    oversees.append(below)
        updated[name] = role.model_copy(update={"oversees": list(dict.fromkeys(oversees))})
    return _orphans_to_the_commune(roles, updated, moved)


def _orphans_to_the_commune(roles: dict, updated: dict, moved: dict[str, str]) -> dict:
    """A commune-level role whose overseer went to a provincial agency or away (the health
    station, whose district health centre is now a regional one; the commune police) is
    overseen by its commune committee, so its requests for more time reach someone."""
    overseen = {child for role in updated.values() for child in role.oversees}
    orphans = [
        name
        for name, role in roles.items()
        if role.level == "commune"
        and name != "commune_committee"
        and name not in moved
        and name not in overseen
        and any(name in other.oversees for other in roles.values())
    ]
    committee = updated.get("commune_committee")
    if committee is None or not orphans:
        return updated
    oversees = list(dict.fromkeys([*committee.oversees, *orphans]))
    return {**updated, "commune_committee": committee.model_copy(update={"oversees": oversees})}


__all__ = ["THREE_TIER", "apply_structure", "structure_name"]
