"""Working days: weekends, Vietnam's public holidays (the `holidays` package) and a province's
own days off (framework_data/calendar.yaml, merged with an override folder's)."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache
from pathlib import Path

import holidays
from pydantic import BaseModel, ConfigDict, ValidationError

from bot.core.config import Settings
from bot.core.framework.loader import FrameworkError, merge_yaml, read_yaml

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_SHIFT = 31  # no calendar has a month off; beyond this the YAML is wrong


class CalendarFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str = "VN"
    weekend: list[str] = ["saturday", "sunday"]
    days_off: dict[date, str] = {}
    working_days: dict[date, str] = {}


class WorkCalendar:
    def __init__(self, spec: CalendarFile) -> None:
        self.spec = spec
        self._weekend = {WEEKDAYS.index(day) for day in spec.weekend}
        self._public = holidays.country_holidays(spec.country)

    def day_off(self, day: date) -> str | None:
        """Why `day` has no office hours (None: it is a working day)."""
        if day in self.spec.working_days:
            return None
        if day in self.spec.days_off:
            return self.spec.days_off[day]
        if day in self._public:
            return self._public.get(day)
        if day.weekday() in self._weekend:
            return WEEKDAYS[day.weekday()]
        return None

    def is_working_day(self, day: date) -> bool:
        return self.day_off(day) is None

    def on_or_before(self, day: date) -> date:
        """`day` if it is a working day, else the working day before it."""
        moved = day
        while not self.is_working_day(moved):
            moved -= timedelta(days=1)
            if (day - moved).days > MAX_SHIFT:
                raise FrameworkError(f"calendar.yaml: no working day in the month before {day}")
        return moved


def _read(base_dir: Path, override_dir: Path | None) -> tuple[dict, Path]:
    path = base_dir / "calendar.yaml"
    raw = read_yaml(path) if path.exists() else {}
    if override_dir is not None and (override_dir / "calendar.yaml").exists():
        path = override_dir / "calendar.yaml"
        raw = merge_yaml(raw, read_yaml(path))
    return raw, path


@cache
def _calendar(base_dir: Path, override_dir: Path | None) -> WorkCalendar:
    raw, path = _read(base_dir, override_dir)
    try:
        spec = CalendarFile.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"field `{'.'.join(str(p) for p in err['loc']) or '(top level)'}`: {err['msg']}"
            for err in exc.errors()
        ]
        raise FrameworkError(f"{path}: " + f"\n{path}: ".join(lines)) from None
    unknown = [day for day in spec.weekend if day not in WEEKDAYS]
    if unknown:
        raise FrameworkError(f"{path}: field `weekend`: unknown day `{unknown[0]}`")
    try:
        holidays.country_holidays(spec.country)
    except NotImplementedError:
        raise FrameworkError(f"{path}: field `country`: no calendar for `{spec.country}`") from None
    return WorkCalendar(spec)


def load_calendar(settings: Settings) -> WorkCalendar:
    """The working-day calendar for these settings (read once per process)."""
    return _calendar(
        Path(settings.framework_dir).resolve(),
        Path(settings.framework_overrides).resolve() if settings.framework_overrides else None,
    )


__all__ = ["WorkCalendar", "load_calendar"]
