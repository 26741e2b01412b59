"""Supervised background work: the cluster source, the queues file poll, periodic sweeps.

Each piece of background work is a coroutine function run as its own task by ``supervised``:
an unexpected exception is logged with its traceback, counted
(``muster_background_restarts_total{task}``) and the work started again after a capped backoff.
One task's failure never cancels another (unlike a task group), so a broken queues file cannot
stop the watches.  Only cancellation (shutdown) ends a supervised task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from extender import metrics

log = logging.getLogger(__name__)

Run = Callable[[], Coroutine[Any, Any, None]]
"""Background work: runs until cancelled."""

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0


async def supervised(
    name: str,
    run: Run,
    *,
    first_backoff: float = FIRST_BACKOFF_SECONDS,
    max_backoff: float = MAX_BACKOFF_SECONDS,
) -> None:
    """Run ``run`` until cancelled, restarting it whenever it fails or returns.  The backoff
    doubles while it keeps failing and starts over after a run that lasted longer than it."""
    restarts = metrics.background_restarts.labels(name)
    loop = asyncio.get_running_loop()
    backoff = first_backoff
    while True:
        started = loop.time()
        try:
            await run()
            log.error("background task %s returned; restarting it in %.0fs", name, backoff)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s failed; restarting it in %.0fs", name, backoff)
        restarts.inc()
        if loop.time() - started > backoff:
            backoff = first_backoff
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)


def every(seconds: float, work: Callable[[], None]) -> Run:
    """Background work that calls ``work`` (synchronous, on the loop) every ``seconds``."""

    async def run() -> None:
        while True:
            await asyncio.sleep(seconds)
            work()

    return run
