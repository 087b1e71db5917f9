"""No secret in the logs: bot tokens and access tokens are masked in every record, its
arguments and its exception text, before any handler writes it.

HTTP libraries put the URL in their messages and errors, and Telegram's and Zalo Bot's URLs
carry the bot token (`/bot<token>/method`); Zalo OA's tokens travel in headers, JSON bodies and
query strings. The configured secrets are masked wherever they appear, and these shapes are
masked whatever their value (a rotated OA token is not in the settings).
"""

from __future__ import annotations

import logging
import re

from bot.core.config import Settings

MASK = "***"
_PATTERNS = (
    # /bot123456:AA…/getMe (Telegram, Zalo Bot; the file URLs too)
    (re.compile(r"(/(?:file/)?bot)[^/\s'\"?]{6,}"), rf"\1{MASK}"),
    # /media/<signed link>: a bearer link to a digest or a photo, in the access log
    (re.compile(r"(/media/)[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"), rf"\1{MASK}"),
    # access_token=…, "refresh_token": "…", secret_token: …, app_secret=…
    (
        re.compile(
            r"(?i)(\b(?:access_token|refresh_token|secret_token|app_secret|secret_key|"
            r"client_secret|token|secret)[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,;}]+"
        ),
        rf"\1{MASK}",
    ),
)
_SETTINGS_SECRETS = (
    "telegram_token",
    "telegram_webhook_secret",
    "zalo_bot_token",
    "zalo_bot_webhook_secret",
    "zalo_oa_app_secret",
    "zalo_oa_secret_key",
    "zalo_oa_access_token",
    "zalo_oa_refresh_token",
    "secret_key",
)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (arguments merged in) and exception text, masked."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        # Longest first, so a secret containing another is masked whole; short values would
        # mask ordinary words.
        self.secrets = sorted({s for s in secrets or [] if len(s) >= 8}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_papibot_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a bad format string: leave it to the formatter)
            return True
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        record._papibot_redacted = True
        return True


_current: list[RedactingFilter] = []  # the one the record factory uses (the latest installed)


def settings_secrets(settings: Settings) -> list[str]:
    return [str(getattr(settings, name, "") or "") for name in _SETTINGS_SECRETS]


def install(settings: Settings, root: logging.Logger | None = None) -> RedactingFilter:
    """Mask every record: on the root's handlers and every logger's own handlers now, and on
    each record as it is made (so a handler added later is covered too)."""
    redactor = RedactingFilter(settings_secrets(settings))
    root = root or logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(redactor)
    _current[:] = [redactor]
    previous = logging.getLogRecordFactory()
    if not getattr(previous, "_papibot_redacting", False):

        def factory(*args, **kwargs) -> logging.LogRecord:  # noqa: ANN002, ANN003
            record = previous(*args, **kwargs)
            _current[0].filter(record)
            return record

        factory._papibot_redacting = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)
    return redactor
