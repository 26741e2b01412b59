"""Supervised background work: a failure restarts that work alone, and is counted."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import REGISTRY

from extender.service import background


def restarts(task: str) -> float:
    value = REGISTRY.get_sample_value("muster_background_restarts_total", {"task": task})
    return value or 0.0


async def test_a_failing_task_is_restarted_and_its_sibling_keeps_running():
    runs: list[int] = []
    ticks: list[int] = []

    async def broken() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        await asyncio.Event().wait()

    async def steady() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.001)

    before = restarts("broken-test")
    tasks = [
        asyncio.create_task(background.supervised("broken-test", broken, first_backoff=0.001)),
        asyncio.create_task(background.supervised("steady-test", steady)),
    ]
    for _ in range(200):
        await asyncio.sleep(0.005)
        if len(runs) == 3:
            break
    assert len(runs) == 3, "restarted after each failure"
    assert restarts("broken-test") == before + 2
    seen = len(ticks)
    await asyncio.sleep(0.02)
    assert not tasks[1].done() and len(ticks) > seen, "the sibling was never cancelled"
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert all(task.cancelled() for task in tasks), "only cancellation ends supervised work"


async def test_every_calls_its_work_periodically():
    calls: list[int] = []
    task = asyncio.create_task(background.every(0.001, lambda: calls.append(1))())
    for _ in range(200):
        await asyncio.sleep(0.002)
        if len(calls) >= 3:
            break
    task.cancel()
    assert len(calls) >= 3
