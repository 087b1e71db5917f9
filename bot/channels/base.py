"""What every channel adapter provides, and how delivery can fail."""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from bot.core.messages import Outgoing


def loads_body(raw: bytes, **options: Any) -> Any:
    """A request body as JSON, refusing what could not be stored as text: bytes that are not
    UTF-8 (`json.loads` lets encoded surrogates through), lone surrogates written as `\\ud800`
    escapes, and nesting too deep to parse. Raises ValueError."""
    try:
        value = json.loads(raw.decode("utf-8-sig"), **options)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # no lone surrogate anywhere
    except RecursionError as error:
        raise ValueError("JSON nested too deeply") from error
    return value


class DeliveryError(Exception):
    """A send that failed. `retry_after` (seconds) when the platform asked us to wait;
    `permanent` when retrying cannot help; `unreachable` when the recipient can no longer be
    reached on this channel at all (blocked the bot, unfollowed the OA). `reason` is what the
    outbox records when the message fails for good (bot.core.models.FAILURE_REASONS); without one,
    `blocked` for an unreachable recipient and `platform_error` for anything else."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        unreachable: bool = False,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent or unreachable
        self.unreachable = unreachable
        self.reason = reason or ("blocked" if unreachable else "platform_error")


class EditImpossible(Exception):
    """The card cannot be replaced in place (the platform no longer has it, or will not edit it):
    the sender sends the message as a new one instead."""


class ChannelSender(Protocol):
    name: str

    async def send(self, external_id: str, message: Outgoing, idempotency_key: str) -> str:
        """Deliver one message (split or rendered as the channel needs); returns the id of the
        last platform message. Raises DeliveryError."""
        ...


class EditingSender(ChannelSender, Protocol):
    """A channel that can replace a message it sent (capabilities.can_edit)."""

    async def edit(self, external_id: str, message_id: str, message: Outgoing) -> str:
        """Put `message` into the sent message `message_id`; returns "edited", or "unchanged"
        when it already reads so (Telegram's "message is not modified" is no failure). Raises
        EditImpossible when the card is gone, DeliveryError as `send` does."""
        ...


class Channel(ChannelSender, Protocol):
    """A configured platform: its routes on the shared aiohttp app, its lifecycle, its sender.

    Inbound updates are turned into `Incoming` and passed to `Dispatcher.handle`, which records,
    handles and commits them before the webhook answers.
    """

    def add_routes(self, app: web.Application) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
