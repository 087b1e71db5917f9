"""The decision as data: typed records (schema) and the YAML loader."""

from bot.framework.loader import FrameworkError, load_framework
from bot.framework.schema import Framework, ScheduleRule, TaskRecord

__all__ = ["Framework", "FrameworkError", "ScheduleRule", "TaskRecord", "load_framework"]
