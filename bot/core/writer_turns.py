"""SQLite's one writer, taken in turn by this process's writers; recording a platform's update
goes before the writers already waiting.

Why the order: a platform waits for the webhook's answer (Zalo gives up after two seconds and
delivers the update again), and the update is only safe once it is recorded. Every other writer
(the inbox's handling, the sender's claims and marks, a sweep's batch) can wait one turn more.
So a webhook waits for the writer in hand, never for the queue behind it: during a morning
sweep that is one sweep batch at most, not the batch plus every claim and round queued
before the webhook arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class WriterTurns:
    """An asyncio lock with two queues: `first` waiters go before the others, each queue in
    order. Not thread-safe; one per event loop."""

    def __init__(self) -> None:
        self._held = False
        self._first: deque[asyncio.Future] = deque()
        self._rest: deque[asyncio.Future] = deque()

    @property
    def held(self) -> bool:
        return self._held

    @contextlib.asynccontextmanager
    async def turn(self, first: bool = False) -> AsyncIterator[None]:
        await self._acquire(first)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, first: bool) -> None:
        if not self._held and not self._first and not self._rest:
            self._held = True
            return
        queue = self._first if first else self._rest
        future = asyncio.get_running_loop().create_future()
        queue.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the turn came just as the waiter was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(future)
            raise

    def _release(self) -> None:
        """Hand the turn to the next waiter (it stays held), or free it."""
        for queue in (self._first, self._rest):
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)
                    return
        self._held = False
