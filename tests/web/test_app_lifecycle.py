"""The app's lifetime: background work starts with it; at shutdown it is cancelled first and
the closers run after it."""

from __future__ import annotations

import asyncio

from aiohttp import web

from extender.core import cluster
from extender.service import ExtenderService
from extender.settings import Settings
from extender.simulation import SimulatedBinder
from extender.web.app import make_app


async def test_background_work_runs_and_stops_before_the_closers() -> None:
    state = cluster.ClusterState()
    service = ExtenderService(state=state, binder=SimulatedBinder(state), settings=Settings())
    events: list[str] = []

    async def work() -> None:
        events.append("started")
        try:
            await asyncio.Event().wait()
        finally:
            events.append("cancelled")

    app = make_app(
        service, background_work={"work": work}, closers=[lambda: events.append("closed")]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await asyncio.sleep(0.01)
    assert events == ["started"]
    await runner.cleanup()
    assert events == ["started", "cancelled", "closed"]
