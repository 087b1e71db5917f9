"""The decision as data: typed records (schema) and the YAML loader. Part of the core: imports
only bot.core."""

from bot.core.framework.loader import FrameworkError, load_framework
from bot.core.framework.schema import Framework, ScheduleRule, TaskRecord

__all__ = ["Framework", "FrameworkError", "ScheduleRule", "TaskRecord", "load_framework"]
