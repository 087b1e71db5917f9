"""Which slash commands each role has: what `/help` lists and what a message may tell a
person to type (handlers/router.py maps the same names to their journeys)."""

from __future__ import annotations

from bot.core.framework import Framework

COMMON_COMMANDS = ("start", "viec", "web", "help", "lang")
ROLE_COMMAND_NAMES: dict[str, tuple[str, ...]] = {
    "commune_committee": ("tinhhinh", "moi", "sukien"),
    "district_committee": ("baocao",),
}


def oversees_communes(framework: Framework | None, role: str) -> bool:
    """The role that follows the communes up: the district committee, or in the two-tier
    structure (no districts) the province committee (bot/core/framework/structures.py)."""
    if framework is None:
        return role == "district_committee"
    definition = framework.roles.get(role)
    return definition is not None and "commune_committee" in definition.oversees


def _own(role: str, framework: Framework | None) -> tuple[str, ...]:
    if oversees_communes(framework, role):
        return ("baocao",)
    return () if role == "district_committee" else ROLE_COMMAND_NAMES.get(role, ())


def commands_for(role: str, framework: Framework | None = None) -> tuple[str, ...]:
    """Everyday work first (/viec, then the role's own), the dashboard link, /help and /lang."""
    return ("start", "viec", *_own(role, framework), "web", "help", "lang")


def overview_command(role: str, framework: Framework | None = None) -> str:
    """The command that lists everything below the reader ("" when the role has none)."""
    own = _own(role, framework)
    return "/tinhhinh" if "tinhhinh" in own else ("/baocao" if "baocao" in own else "")
