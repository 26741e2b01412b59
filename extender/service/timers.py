"""The deferred work of the service, on the running asyncio loop: ``LoopTimers`` implements the
``Timers`` port.

Every callback and task it starts is tracked until it ran (or was cancelled), so ``close`` at
shutdown cancels exactly what is still pending.  It must be called from inside the running
loop: outside one it raises, as asyncio does; code without a loop is given a manual clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from extender.service.ports import Cancellable, Ts

log = logging.getLogger(__name__)


class _Call:
    """A callback scheduled on the loop; it leaves its owner's set when it runs or is
    cancelled."""

    __slots__ = ("_owner", "_callback", "_handle")

    def __init__(self, owner: LoopTimers, callback: Callable[[], object]) -> None:
        self._owner = owner
        self._callback = callback
        self._handle: asyncio.Handle | None = None

    def fire(self) -> None:
        self._owner._calls.discard(self)
        self._callback()

    def cancel(self) -> None:
        self._owner._calls.discard(self)
        if self._handle is not None:
            self._handle.cancel()

    def cancelled(self) -> bool:
        return self._handle is None or self._handle.cancelled()


class _Refused:
    """What a closed owner hands out instead of starting work: cancelled already."""

    def cancel(self) -> None:
        pass

    def cancelled(self) -> bool:
        return True


class LoopTimers:
    """Callbacks and tasks on the running loop, tracked until done, cancelled by ``close``."""

    def __init__(self) -> None:
        self._calls: set[_Call] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        """Callbacks not run yet plus tasks not finished."""
        return len(self._calls) + len(self._tasks)

    def later(self, delay: float, callback: Callable[[*Ts], object], *args: *Ts) -> Cancellable:
        loop = asyncio.get_running_loop()
        if self._closed:
            return _Refused()
        call = _Call(self, lambda: callback(*args))
        call._handle = loop.call_later(max(0.0, delay), call.fire)
        self._calls.add(call)
        return call

    def soon(self, callback: Callable[[*Ts], object], *args: *Ts) -> Cancellable:
        loop = asyncio.get_running_loop()
        if self._closed:
            return _Refused()
        call = _Call(self, lambda: callback(*args))
        call._handle = loop.call_soon(call.fire)
        self._calls.add(call)
        return call

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str = "") -> Cancellable:
        loop = asyncio.get_running_loop()
        if self._closed:
            work.close()
            return _Refused()
        task = loop.create_task(work, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        calls, tasks = list(self._calls), list(self._tasks)
        self._closed = True
        for call in calls:
            call.cancel()
        for task in tasks:
            task.cancel()
        if calls or tasks:
            log.info("cancelled %d timer(s) and %d task(s) at shutdown", len(calls), len(tasks))
