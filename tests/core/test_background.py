"""The background task a component keeps: started once, stopped (cancelled and awaited) once."""

from __future__ import annotations

import asyncio

from budapp.core.background import BackgroundTask


async def test_it_starts_once_and_stops_for_good() -> None:
    started = 0
    cancelled = asyncio.Event()

    async def work() -> None:
        nonlocal started
        started += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = BackgroundTask("test-work")
    task.start(work)
    task.start(work)  # already running: nothing more
    await asyncio.sleep(0)
    assert (started, task.running) == (1, True)
    assert {t.get_name() for t in asyncio.all_tasks()} >= {"test-work"}

    await task.stop()
    assert cancelled.is_set()
    assert not task.running
    await task.stop()  # stopping twice is harmless
    assert "test-work" not in {t.get_name() for t in asyncio.all_tasks()}


async def test_a_stopped_task_can_be_started_again() -> None:
    runs: list[int] = []

    async def work() -> None:
        runs.append(len(runs))
        await asyncio.sleep(3600)

    task = BackgroundTask("again")
    task.start(work)
    await asyncio.sleep(0)
    await task.stop()
    task.start(work)
    await asyncio.sleep(0)
    assert runs == [0, 1]
    await task.stop()
