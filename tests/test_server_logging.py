"""`make demo`'s terminal: times with their zone, and no access line per simulator poll."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from bot.app.server import ZonedFormatter, configure_logging


def test_log_lines_carry_the_local_time_and_its_zone() -> None:
    record = logging.LogRecord("bot", logging.INFO, __file__, 1, "ready", None, None)
    record.created = 1_764_559_800.0  # 2025-12-01 03:30:00 UTC
    line = ZonedFormatter(ZoneInfo("Asia/Ho_Chi_Minh")).format(record)
    assert line.startswith("2025-12-01 10:30:00 +07 INFO bot: ready")


def test_access_lines_are_quiet_and_our_lines_are_not() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(ZoneInfo("Asia/Ho_Chi_Minh"))
        assert not logging.getLogger("aiohttp.access").isEnabledFor(logging.INFO)
        assert logging.getLogger("bot.channels.sender").isEnabledFor(logging.INFO)
        assert logging.getLogger("aiohttp.access").isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:], root.level = saved
        for name in ("aiohttp.access", "httpx", "apscheduler", "telegram"):
            logging.getLogger(name).setLevel(logging.NOTSET)
