"""A person in a Telegram chat, talking to the real router (no HTTP): each message an update."""

from __future__ import annotations

from bot.core.messages import Incoming
from handlers.router import Dispatcher


class Person:
    def __init__(self, world, chat: str) -> None:  # noqa: ANN001
        self.world = world
        self.dispatcher = Dispatcher(world.app)
        self.chat = chat
        self.serial = 0

    async def send(self, **fields) -> None:  # noqa: ANN003
        self.serial += 1
        await self.dispatcher.handle(
            Incoming(
                channel="telegram", external_id=self.chat, update_id=str(self.serial), **fields
            )
        )
