"""The reach policy (framework_data/reach.yaml): the order of the fallback steps, how long to
wait for a receipt, and the ZNS templates. Validated when it is loaded (at start-up), with
errors that name the file and the field."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.core.config import Settings
from bot.core.framework.loader import FrameworkError, merge_yaml, read_yaml

FILE = "reach.yaml"
StepName = Literal["last_used", "other_channels", "zns", "commune"]
# What a ZNS template parameter can be filled with (bot/core/services/reach.py fills them).
OUR_FIELDS = ("name", "unit", "task", "count", "due", "days_late")
KINDS = ("reminder", "overdue")
PARAM_LIMIT = 30  # characters: ZNS's limit for name and label parameters


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Template(Strict):
    template_id: str = ""
    params: dict[str, str] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _known_fields(cls, params: dict[str, str]) -> dict[str, str]:
        for param, ours in params.items():
            if ours not in OUR_FIELDS:
                raise ValueError(
                    f"parameter `{param}`: unknown field `{ours}` (one of {', '.join(OUR_FIELDS)})"
                )
        return params


class ZNS(Strict):
    templates: dict[Literal["reminder", "overdue"], Template] = Field(default_factory=dict)


class ReachPolicy(Strict):
    order: list[StepName] = Field(default=["last_used", "other_channels", "zns", "commune"])
    receipt_wait_minutes: float = Field(default=20, gt=0, le=24 * 60)
    zns: ZNS = Field(default_factory=ZNS)

    @field_validator("order")
    @classmethod
    def _commune_last(cls, order: list[str]) -> list[str]:
        if not order or order[-1] != "commune" or order.count("commune") != 1:
            raise ValueError("`commune` must come once, last: it ends the chain")
        if len(set(order)) != len(order):
            raise ValueError("a step is listed twice")
        return order

    @property
    def receipt_wait(self) -> timedelta:
        return timedelta(minutes=self.receipt_wait_minutes)

    def template(self, kind: str) -> Template | None:
        """The ZNS template for this kind of message, if the province registered one."""
        found = self.zns.templates.get(kind)  # type: ignore[call-overload]
        return found if found is not None and found.template_id else None


def load_reach_policy(settings: Settings) -> ReachPolicy:
    return _load(
        Path(settings.framework_dir).resolve(),
        Path(settings.framework_overrides).resolve() if settings.framework_overrides else None,
    )


@cache
def _load(base_dir: Path, override_dir: Path | None) -> ReachPolicy:
    path = base_dir / FILE
    raw = read_yaml(path) if path.exists() else {}
    if override_dir is not None and (override_dir / FILE).exists():
        raw = merge_yaml(raw, read_yaml(override_dir / FILE))
        path = override_dir / FILE
    try:
        return ReachPolicy.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"field `{'.'.join(str(p) for p in err['loc']) or '(top level)'}`: "
            + str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        ]
        raise FrameworkError(f"{path}: " + f"\n{path}: ".join(lines)) from None


__all__ = ["KINDS", "OUR_FIELDS", "ReachPolicy", "Template", "load_reach_policy"]
