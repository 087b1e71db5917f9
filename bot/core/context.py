"""What every entry point needs, built once from the settings and passed in."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.config import Settings
from bot.core.db import Database
from bot.core.framework import Framework, load_framework


@dataclass
class AppContext:
    settings: Settings
    db: Database
    framework: Framework

    @classmethod
    def build(cls, settings: Settings, db: Database | None = None) -> AppContext:
        framework = load_framework(settings.framework_dir, settings.framework_overrides)
        return cls(
            settings=settings, db=db or Database.from_settings(settings), framework=framework
        )
