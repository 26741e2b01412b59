"""The app's lifetime: background work starts with it; at shutdown it is cancelled first, then
the service's deferred work, and the closers run after both."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from extender.core import cluster, gang, model
from extender.service import ExtenderService
from extender.service.timers import LoopTimers
from extender.settings import Settings
from extender.simulation import SimulatedBinder
from extender.web.app import make_app
from tests import builders


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


async def test_the_metrics_read_the_service_the_app_serves_and_only_while_it_serves(
    aiohttp_client: Any,
) -> None:
    def service_of(nodes: int) -> ExtenderService:
        state = cluster.ClusterState()
        state.replace_nodes([model.Node(f"n{i}") for i in range(nodes)])
        return ExtenderService(state=state, binder=SimulatedBinder(state), settings=Settings())

    async def scrape(service: ExtenderService) -> str:
        client = await aiohttp_client(make_app(service))
        text = await (await client.get("/metrics")).text()
        await client.close()
        return text

    three, five = service_of(3), service_of(5)  # both built before either is served
    first = await scrape(three)
    assert "muster_cluster_nodes 3.0" in first
    assert 'muster_gangs{phase="Planned"} 0.0' in first
    assert "muster_feasibility_cache_entries 0.0" in first
    # The first app stopped: its service is no longer exported, the second one's is, alone.
    second = await scrape(five)
    assert "muster_cluster_nodes 5.0" in second
    samples = [line for line in second.splitlines() if line.startswith("muster_cluster_nodes ")]
    assert samples == ["muster_cluster_nodes 5.0"]


async def test_at_shutdown_the_services_timers_are_cancelled_before_the_closers_run() -> None:
    state = cluster.ClusterState()
    service = ExtenderService(state=state, binder=SimulatedBinder(state), settings=Settings())
    state.upsert_node(builders.node("n0", cpu="8"))
    state.mark_synced()
    annotations = {gang.MIN_COUNT_ANNOTATION: "2"}
    members = [
        builders.pod(n, uid=n, labels={gang.WORKLOAD_LABEL: "train"}, annotations=annotations)
        for n in ("a", "b")
    ]
    for pod in members:
        service.filter(pod, ["n0"])  # quorum: planned, its deadline armed on the loop
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    deadline = group.timer
    assert deadline is not None and not deadline.cancelled()
    seen: list[bool] = []
    app = make_app(service, closers=[lambda: seen.append(deadline.cancelled())])
    runner = web.AppRunner(app)
    await runner.setup()
    await runner.cleanup()
    assert seen == [True]
    assert isinstance(service.timers, LoopTimers) and service.timers.pending == 0


def test_work_asked_for_while_the_service_was_built_starts_with_the_app() -> None:
    state = cluster.ClusterState()
    service = ExtenderService(state=state, binder=SimulatedBinder(state), settings=Settings())
    ran: list[str] = []
    service.timers.soon(ran.append, "soon")  # no loop runs yet, as when the CLI builds it

    async def serve() -> tuple[list[str], list[str]]:
        runner = web.AppRunner(make_app(service))
        await asyncio.sleep(0)
        before = list(ran)  # the loop runs, the app has not started
        await runner.setup()
        await asyncio.sleep(0)
        started = list(ran)
        await runner.cleanup()
        return before, started

    assert asyncio.run(serve()) == ([], ["soon"])
