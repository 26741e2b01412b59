"""The one owner of deferred work: ``LoopTimers`` tracks every callback and task it started,
forgets them once done, keeps what is asked for before the loop runs until ``start``, and
cancels what is pending at ``close``; the manual clock the other tests use runs what falls
due, in order, only when time is advanced."""

from __future__ import annotations

import asyncio
import inspect

from extender.service.timers import LoopTimers
from tests.fakes import ManualTimers, settle


async def test_callbacks_and_tasks_are_tracked_until_they_finished():
    timers = LoopTimers()
    ran: list[str] = []

    async def work() -> None:
        ran.append("task")

    timers.later(0, ran.append, "later")
    timers.soon(ran.append, "soon")
    task = timers.spawn(work(), name="work")
    assert timers.pending == 3
    await settle()
    assert sorted(ran) == ["later", "soon", "task"]
    assert timers.pending == 0
    assert task.cancelled() is False


async def test_a_cancelled_callback_never_runs_and_is_forgotten():
    timers = LoopTimers()
    ran: list[str] = []
    handle = timers.later(3600, ran.append, "late")
    soon = timers.soon(ran.append, "soon")
    assert timers.pending == 2
    handle.cancel()
    soon.cancel()
    await settle()
    assert ran == [] and timers.pending == 0
    assert handle.cancelled() and soon.cancelled()


async def test_close_cancels_every_pending_callback_and_task_and_starts_nothing_after():
    timers = LoopTimers()
    ran: list[str] = []
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = timers.spawn(forever())
    await started.wait()
    late = timers.later(3600, ran.append, "late")
    soon = timers.soon(ran.append, "soon")
    assert timers.pending == 3
    timers.close()
    await settle()
    assert late.cancelled() and soon.cancelled() and task.cancelled()
    assert ran == [] and timers.pending == 0
    # Closed: what comes later is refused, cancelled at once; a coroutine is closed unrun.
    assert timers.later(0, ran.append, "after").cancelled()
    assert timers.soon(ran.append, "after").cancelled()
    unrun = forever()
    assert timers.spawn(unrun).cancelled()
    assert inspect.getcoroutinestate(unrun) == inspect.CORO_CLOSED
    await settle()
    assert ran == [] and timers.pending == 0


def test_work_asked_for_before_the_loop_runs_waits_for_start():
    timers = LoopTimers()
    ran: list[str] = []

    async def work() -> None:
        ran.append("task")

    timers.soon(ran.append, "soon")
    timers.later(0, ran.append, "later")
    timers.later(0, ran.append, "cancelled").cancel()
    long = timers.later(3600, ran.append, "an hour later")
    timers.spawn(work())
    assert timers.pending == 4

    async def serve() -> None:
        await settle()
        assert ran == []  # the loop runs, but nobody started the owner
        timers.start()
        await settle()
        assert sorted(ran) == ["later", "soon", "task"]
        assert timers.pending == 1 and not long.cancelled()
        timers.close()

    asyncio.run(serve())
    assert long.cancelled() and timers.pending == 0


def test_closed_before_the_loop_runs_nothing_it_was_asked_for_ever_runs():
    timers = LoopTimers()
    ran: list[str] = []

    async def work() -> None:
        ran.append("task")

    unrun = work()
    task = timers.spawn(unrun)
    call = timers.later(0, ran.append, "later")
    timers.close()
    assert task.cancelled() and call.cancelled() and timers.pending == 0
    assert inspect.getcoroutinestate(unrun) == inspect.CORO_CLOSED

    async def serve() -> None:
        timers.start()
        await settle()

    asyncio.run(serve())
    assert ran == []


def test_the_manual_clock_runs_what_falls_due_in_order_and_only_when_advanced():
    timers = ManualTimers(start=100.0)
    ran: list[tuple[str, float]] = []

    def note(what: str) -> None:
        ran.append((what, timers.now()))

    timers.later(2, note, "b")
    timers.later(1, note, "a")
    timers.later(1, lambda: timers.later(0.5, note, "chained"))
    timers.later(5, note, "cancelled").cancel()
    timers.soon(note, "soon")
    assert ran == []
    timers.advance()
    assert ran == [("soon", 100.0)]
    timers.advance(3)
    assert ran[1:] == [("a", 101.0), ("chained", 101.5), ("b", 102.0)]
    assert timers.now() == 103.0
    timers.later(1, note, "pending")
    timers.close()
    timers.advance(10)
    assert [what for what, _ in ran] == ["soon", "a", "chained", "b"]
