"""The deferred work of the service, on the running asyncio loop: ``LoopTimers`` implements the
``Timers`` port.

Every callback and task it starts is tracked until it ran (or was cancelled), so ``close`` at
shutdown cancels exactly what is still pending.  Work asked for while no loop runs (the
service is built, its queues file loaded and a simulated cluster populated before the server
starts) is kept, tracked as well, until ``start`` hands it to the running loop (the app's
startup calls it); its delays count from when it was asked for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from extender.service.ports import Cancellable, Ts

log = logging.getLogger(__name__)


class _Call:
    """A callback for the loop; it leaves its owner's set when it runs or is cancelled."""

    __slots__ = ("_owner", "_callback", "_delay", "_asked", "_handle", "_cancelled")

    def __init__(
        self, owner: LoopTimers, callback: Callable[[], object], delay: float | None
    ) -> None:
        self._owner = owner
        self._callback = callback
        self._delay = delay  # None: soon
        self._asked = time.monotonic()
        self._handle: asyncio.Handle | None = None
        self._cancelled = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._delay is None:
            self._handle = loop.call_soon(self._fire)
        else:
            left = self._delay - (time.monotonic() - self._asked)
            self._handle = loop.call_later(max(0.0, left), self._fire)

    def _fire(self) -> None:
        self._owner._calls.discard(self)
        self._callback()

    def cancel(self) -> None:
        self._cancelled = True
        self._owner._calls.discard(self)
        if self._handle is not None:
            self._handle.cancel()

    def cancelled(self) -> bool:
        return self._cancelled


class _Spawn:
    """A coroutine asked to run while no loop ran: a task once started, closed unrun if
    cancelled before."""

    __slots__ = ("_owner", "_work", "_name", "_task", "_cancelled")

    def __init__(self, owner: LoopTimers, work: Coroutine[Any, Any, None], name: str) -> None:
        self._owner = owner
        self._work = work
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._cancelled = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = self._owner._run(loop, self._work, self._name)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        elif not self._cancelled:
            self._cancelled = True
            self._work.close()

    def cancelled(self) -> bool:
        return self._cancelled or (self._task is not None and self._task.cancelled())


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
        self._waiting: list[_Call | _Spawn] = []
        """Work asked for while no loop ran, in order, until ``start``."""
        self._closed = False

    @property
    def pending(self) -> int:
        """Callbacks not run yet, plus tasks not finished or not started yet."""
        unstarted = sum(isinstance(w, _Spawn) and not w.cancelled() for w in self._waiting)
        return len(self._calls) + len(self._tasks) + unstarted

    def later(self, delay: float, callback: Callable[[*Ts], object], *args: *Ts) -> Cancellable:
        return self._call(lambda: callback(*args), delay)

    def soon(self, callback: Callable[[*Ts], object], *args: *Ts) -> Cancellable:
        return self._call(lambda: callback(*args), None)

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str = "") -> Cancellable:
        if self._closed:
            work.close()
            return _Refused()
        loop = _running_loop()
        if loop is not None:
            return self._run(loop, work, name)
        spawn = _Spawn(self, work, name)
        self._waiting.append(spawn)
        return spawn

    def start(self) -> None:
        """From inside the running loop: hand it the work asked for before, in order."""
        loop = asyncio.get_running_loop()
        waiting, self._waiting = self._waiting, []
        for work in waiting:
            if not work.cancelled():
                work.start(loop)

    def close(self) -> None:
        self._closed = True
        waiting, self._waiting = self._waiting, []
        cancelled: list[Cancellable] = [*self._calls, *self._tasks]
        cancelled += [w for w in waiting if isinstance(w, _Spawn) and not w.cancelled()]
        for work in cancelled:
            work.cancel()
        if cancelled:
            log.info("cancelled %d pending timer(s) and task(s) at shutdown", len(cancelled))

    def _call(self, callback: Callable[[], object], delay: float | None) -> Cancellable:
        if self._closed:
            return _Refused()
        call = _Call(self, callback, delay)
        self._calls.add(call)
        loop = _running_loop()
        if loop is not None:
            call.start(loop)
        else:
            self._waiting.append(call)
        return call

    def _run(
        self, loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, None], name: str
    ) -> asyncio.Task[None]:
        task = loop.create_task(work, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
