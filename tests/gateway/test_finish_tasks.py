"""The gateway's stop ends every task, even one that lost a cancel (SIGTERM must stop it)."""

from __future__ import annotations

import asyncio

from gateway.service import finish_tasks


async def test_a_task_that_swallows_a_cancel_is_cancelled_again_and_ends() -> None:
    swallowed = 0

    async def stubborn() -> None:
        # What asyncio.wait_for on Python 3.11 can do: the cancel is lost once, the loop goes on.
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise

    async def plain() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(plain())]
    await asyncio.sleep(0)
    await asyncio.wait_for(finish_tasks(tasks, every_s=0.05), timeout=10)
    assert all(t.done() for t in tasks)
    assert swallowed == 2


async def test_a_task_that_failed_does_not_stop_the_others_from_ending() -> None:
    async def fails() -> None:
        raise RuntimeError("device gone")

    async def plain() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(fails()), asyncio.create_task(plain())]
    await asyncio.sleep(0)
    await finish_tasks(tasks, every_s=0.05)
    assert tasks[1].cancelled()
    assert isinstance(tasks[0].exception(), RuntimeError)
