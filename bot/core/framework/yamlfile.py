"""Reading one YAML file of the framework, with errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


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
