"""SQLite's writer taken in turn: recording a webhook's update goes before the writers already
waiting, each queue in order, and a cancelled waiter neither holds nor loses the turn."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.writer_turns import WriterTurns


async def test_a_recording_goes_before_the_writers_already_waiting() -> None:
    turns = WriterTurns()
    order: list[str] = []
    release = asyncio.Event()

    async def writer(name: str, first: bool = False, hold: asyncio.Event | None = None) -> None:
        async with turns.turn(first):
            order.append(name)
            if hold is not None:
                await hold.wait()

    holder = asyncio.create_task(writer("sweep batch", hold=release))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(writer(f"claim {n}")) for n in (1, 2)]
    await asyncio.sleep(0)
    recordings = [asyncio.create_task(writer(f"webhook {n}", first=True)) for n in (1, 2)]
    await asyncio.sleep(0)
    assert order == ["sweep batch"]  # the one in hand is never interrupted
    release.set()
    await asyncio.gather(holder, *queued, *recordings)
    assert order == ["sweep batch", "webhook 1", "webhook 2", "claim 1", "claim 2"]
    assert not turns.held


async def test_a_cancelled_waiter_leaves_the_turn_to_the_next() -> None:
    turns = WriterTurns()
    release = asyncio.Event()
    done: list[str] = []

    async def hold() -> None:
        async with turns.turn():
            await release.wait()

    async def write(name: str) -> None:
        async with turns.turn():
            done.append(name)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    gone, stays = asyncio.create_task(write("gone")), asyncio.create_task(write("stays"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await gone
    await stays
    assert done == ["stays"] and not turns.held


async def test_a_waiter_cancelled_as_its_turn_comes_passes_it_on() -> None:
    turns = WriterTurns()
    done: list[str] = []

    async def write(name: str) -> None:
        async with turns.turn():
            done.append(name)

    async with turns.turn():
        late = asyncio.create_task(write("late"))
        after = asyncio.create_task(write("after"))
        await asyncio.sleep(0)
    late.cancel()  # its turn was handed over at the release above, before it could run
    with pytest.raises(asyncio.CancelledError):
        await late
    await after
    assert done == ["after"] and not turns.held
