"""``muster demo``: start the extender on a simulated cluster and drive it like kube-scheduler.

It shows, in a few seconds and without Kubernetes, what the extender does with a realistic mix
of pods: where they land, which ones cannot be placed and why, and how long each verb takes.
"""

from __future__ import annotations

import collections
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from extender import simulation
from extender.core import cluster, manifests
from extender.devtools import scheduler_imitation
from extender.service import ExtenderService
from extender.settings import Settings
from extender.web.app import make_app


def demo_pod(name: str, *, cpu: str, memory: str, **spec: Any) -> dict[str, Any]:
    """A pending pod as kube-scheduler sends it."""
    return manifests.pod(
        name,
        namespace="demo",
        uid=str(uuid.uuid4()),
        resource_version="1",
        containers=[manifests.container(image="busybox", requests={"cpu": cpu, "memory": memory})],
        spec=spec,
        phase="Pending",
    )


def workload(pods: int) -> list[dict[str, Any]]:
    """Batch replicas, a few big trainers, zone-pinned pods, and one pod no node can hold."""
    out = []
    for i in range(pods):
        if i % 10 == 9:
            out.append(demo_pod(f"trainer-{i}", cpu="3", memory="24Gi"))
        elif i % 10 == 5:
            out.append(
                demo_pod(
                    f"zone-b-{i}",
                    cpu="500m",
                    memory="1Gi",
                    nodeSelector={simulation.ZONE_LABEL: "zone-b"},
                )
            )
        else:
            out.append(demo_pod(f"batch-{i}", cpu="250m", memory="512Mi"))
    out.append(demo_pod("too-big", cpu="64", memory="1Ti"))
    return out


@dataclass
class Report:
    outcomes: list[scheduler_imitation.Outcome]
    imitation: scheduler_imitation.Imitation
    state: cluster.ClusterState

    def render(self) -> str:
        bound = [o for o in self.outcomes if o.node]
        unplaced = [o for o in self.outcomes if not o.node]
        lines = [
            f"scheduled {len(bound)} of {len(self.outcomes)} pods on "
            f"{len(self.state.nodes)} simulated nodes",
        ]
        zones = collections.Counter(
            self.state.nodes[o.node].node.labels.get(simulation.ZONE_LABEL, "?") for o in bound
        )
        lines.append("  by zone: " + ", ".join(f"{z}={n}" for z, n in sorted(zones.items())))
        busiest = max(self.state.nodes.values(), key=lambda s: s.used.get("cpu", 0))
        lines.append(
            f"  busiest node: {busiest.node.name} with "
            f"{busiest.used.get('cpu', 0)}m cpu of {busiest.node.allocatable['cpu']}m"
        )
        for outcome in unplaced:
            why = "; ".join(f"{n} node(s): {r}" for r, n in outcome.reasons.items())
            lines.append(f"  not placed: {outcome.pod}: {outcome.error or why}")
        lines.append("latency (ms)      p50     p99   calls")
        for verb, values in self.imitation.latencies.items():
            lines.append(
                f"  {verb:<12} {scheduler_imitation.percentile(values, 0.5) * 1e3:7.3f} "
                f"{scheduler_imitation.percentile(values, 0.99) * 1e3:7.3f} {len(values):7d}"
            )
        lines.append(f"errors: {self.imitation.errors}")
        return "\n".join(lines)


async def run(*, nodes: int = 100, pods: int = 300) -> Report:
    """Serve on a free loopback port, schedule ``pods`` pods, return what happened."""
    state = cluster.ClusterState()
    simulated = simulation.SimulatedCluster(simulation.generated_nodes(nodes))
    service = ExtenderService(
        state=state, binder=simulation.SimulatedBinder(state), settings=Settings()
    )
    simulated.populate(service)
    runner = web.AppRunner(make_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            driver = scheduler_imitation.Imitation(
                poster=scheduler_imitation.SessionPoster(session, f"http://127.0.0.1:{port}"),
                node_names=[n.name for n in simulated.nodes],
            )
            outcomes = [await driver.schedule(pod) for pod in workload(pods)]
            await driver.drain()
    finally:
        await runner.cleanup()
    return Report(outcomes=outcomes, imitation=driver, state=state)
