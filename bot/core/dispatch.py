"""What the edge needs from the conversations, without importing them.

The composition root builds the dispatcher (`handlers.router.Dispatcher`) and hands it to the
channels, the simulator and the inbox; they see only this protocol, so adapters never import a
journey and the core never imports the edge.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Protocol

from bot.core.messages import Incoming

if TYPE_CHECKING:
    from bot.core.inbox import Inbox


class Dispatcher(Protocol):
    inbox: Inbox

    @property
    def button_actions(self) -> Collection[str]:
        """The button actions the conversations know (the part of callback data before `:`)."""
        ...

    async def accept(self, incoming: Incoming) -> None:
        """Record a platform's update to be handled shortly by the inbox's worker."""
        ...

    async def handle(self, incoming: Incoming) -> bool:
        """Record and handle an update at once (the simulator); False when already handled."""
        ...

    async def idle(self) -> None:
        """Return once every recorded update has been handled."""
        ...

    async def handle_recorded(self, row_id: int, incoming: Incoming) -> bool: ...

    async def give_up(self, row_id: int, incoming: Incoming) -> bool: ...

    async def discard_recorded(self, row_id: int) -> None: ...
