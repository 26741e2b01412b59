"""A manual clock implementing the ``Timers`` port: nothing runs until a test advances time.

``ManualTimers`` is also the clock: pass ``timers.now`` as the service's ``clock`` (and the
lifecycles' ``wall``) so deadlines, backoffs and timeouts all read one time.  ``advance(s)``
moves it forward and runs every callback due by then, in order of due time (ties in the order
they were scheduled), including callbacks those callbacks schedule within the window.
``soon`` callbacks are due now: ``advance()`` (zero seconds) runs them.

Coroutines given to ``spawn`` need an event loop to run: they become real tasks on the
running loop (tracked, cancelled by ``close``); only when they run is up to the loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

START = 1_000_000.0
"""Where the clock starts: far from zero, like both clocks it stands in for."""


class ManualHandle:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self._cancelled = False
        self.ran = False

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


class ManualTimers:
    def __init__(self, start: float = START) -> None:
        self._now = start
        self._due: list[tuple[float, int, ManualHandle]] = []
        self._order = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def now(self) -> float:
        return self._now

    @property
    def scheduled(self) -> list[ManualHandle]:
        """The callbacks not run and not cancelled, soonest first."""
        return [h for _, _, h in sorted(self._due) if not h.cancelled()]

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        return set(self._tasks)

    def later(self, delay: float, callback: Callable[..., object], *args: Any) -> ManualHandle:
        handle = ManualHandle(self._now + max(0.0, delay), lambda: callback(*args))
        if self.closed:
            handle.cancel()
        else:
            heapq.heappush(self._due, (handle.when, next(self._order), handle))
        return handle

    def soon(self, callback: Callable[..., object], *args: Any) -> ManualHandle:
        return self.later(0.0, callback, *args)

    def spawn(
        self, work: Coroutine[Any, Any, None], *, name: str = ""
    ) -> asyncio.Task[None] | ManualHandle:
        if self.closed:  # as LoopTimers: closed unrun, a cancelled handle instead
            work.close()
            refused = ManualHandle(self._now, lambda: None)
            refused.cancel()
            return refused
        task = asyncio.get_running_loop().create_task(work, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def advance(self, seconds: float = 0.0) -> None:
        """Move the clock ``seconds`` forward, running what falls due on the way (the clock
        reads each callback's due time while it runs)."""
        assert seconds >= 0, "time does not go back"
        until = self._now + seconds
        while self._due and self._due[0][0] <= until:
            when, _, handle = heapq.heappop(self._due)
            if handle.cancelled():
                continue
            self._now = max(self._now, when)
            handle.ran = True
            handle.callback()
        self._now = until

    def start(self) -> None:
        """Nothing to hand over: callbacks run when the clock is advanced."""

    def close(self) -> None:
        self.closed = True
        for _, _, handle in self._due:
            handle.cancel()
        self._due.clear()
        for task in self._tasks:
            task.cancel()


async def settle(rounds: int = 20) -> None:
    """Let the loop run what is ready (tasks, their callbacks) without moving the clock."""
    for _ in range(rounds):
        await asyncio.sleep(0)
