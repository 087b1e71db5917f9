"""Which slash commands each role has: what `/help` lists and what a message may tell a
person to type (handlers/router.py maps the same names to their journeys)."""

from __future__ import annotations

COMMON_COMMANDS = ("start", "viec", "web", "help", "lang")
ROLE_COMMAND_NAMES: dict[str, tuple[str, ...]] = {
    "commune_committee": ("tinhhinh", "moi", "sukien"),
    "district_committee": ("baocao",),
}


def commands_for(role: str) -> tuple[str, ...]:
    """Everyday work first (/viec, then the role's own), the dashboard link, /help and /lang."""
    return ("start", "viec", *ROLE_COMMAND_NAMES.get(role, ()), "web", "help", "lang")


def overview_command(role: str) -> str:
    """The command that lists everything below the reader ("" when the role has none)."""
    return {"commune_committee": "/tinhhinh", "district_committee": "/baocao"}.get(role, "")
