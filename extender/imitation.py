"""Drive an extender over HTTP the way kube-scheduler does (``muster demo``, the load test).

kube-scheduler schedules one pod at a time: it filters a sample of the nodes (its
``percentageOfNodesToScore`` rule), calls the extender's filter and then prioritize, picks the
best node, and binds in a separate goroutine, so binds overlap with later pods.  This module
reproduces exactly that call pattern with ``nodeCacheCapable: true`` payloads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson


def nodes_to_find(total: int, percentage: int = 0) -> int:
    """How many feasible nodes kube-scheduler looks for before it stops filtering.

    Default percentage: ``50 - total/125``, at least 5; never fewer than 100 nodes.
    Example: 5000 nodes -> 10% -> 500 names per filter call.
    """
    if total < 100:
        return total
    if percentage <= 0:
        percentage = max(5, 50 - total // 125)
    return min(total, max(100, total * percentage // 100))


@dataclass
class Outcome:
    pod: str
    node: str = ""
    reasons: dict[str, int] = field(default_factory=dict)
    error: str = ""


@dataclass
class Imitation:
    """One simulated scheduler: sequential filter+prioritize, concurrent binds."""

    session: aiohttp.ClientSession
    base_url: str
    node_names: Sequence[str]
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"filter": [], "prioritize": [], "bind": []}
    )
    errors: int = 0
    _next_start: int = 0
    _binds: set[asyncio.Task[None]] = field(default_factory=set)

    def sample(self) -> list[str]:
        """The next node names, rotating the start as kube-scheduler's nextStartNodeIndex does."""
        names = self.node_names
        count = nodes_to_find(len(names))
        start = self._next_start
        self._next_start = (start + count) % len(names) if names else 0
        return [names[(start + i) % len(names)] for i in range(count)]

    async def _post(self, verb: str, payload: Any) -> Any:
        started = time.perf_counter()
        async with self.session.post(
            f"{self.base_url}/{verb}",
            data=orjson.dumps(payload),
            headers={"Content-Type": "application/json"},
        ) as response:
            body = await response.read()
            status = response.status
        self.latencies[verb].append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"{verb}: HTTP {status}: {body[:200]!r}")
        return orjson.loads(body)

    async def schedule(self, pod: dict[str, Any], *, bind: bool = True) -> Outcome:
        """One scheduling cycle; the bind (if any) runs in the background like the goroutine."""
        meta = pod["metadata"]
        outcome = Outcome(pod=f"{meta.get('namespace', 'default')}/{meta['name']}")
        try:
            names = self.sample()
            result = await self._post("filter", {"Pod": pod, "Nodes": None, "NodeNames": names})
            if result.get("Error"):
                raise RuntimeError(result["Error"])
            feasible = result.get("NodeNames") or []
            for failed in ("FailedNodes", "FailedAndUnresolvableNodes"):
                for reason in (result.get(failed) or {}).values():
                    outcome.reasons[reason] = outcome.reasons.get(reason, 0) + 1
            if not feasible:
                return outcome
            if len(feasible) == 1:  # kube-scheduler skips scoring for a single node
                outcome.node = feasible[0]
            else:
                scores = await self._post(
                    "prioritize", {"Pod": pod, "Nodes": None, "NodeNames": feasible}
                )
                outcome.node = max(scores, key=lambda s: s["Score"])["Host"]
        except (RuntimeError, aiohttp.ClientError) as exc:
            self.errors += 1
            outcome.error = str(exc)
            return outcome
        if bind:
            task = asyncio.create_task(self._bind(meta, outcome.node))
            self._binds.add(task)
            task.add_done_callback(self._binds.discard)
        return outcome

    async def _bind(self, meta: dict[str, Any], node: str) -> None:
        args = {
            "PodName": meta["name"],
            "PodNamespace": meta.get("namespace", "default"),
            "PodUID": meta.get("uid", ""),
            "Node": node,
        }
        try:
            result = await self._post("bind", args)
            if result.get("Error"):
                self.errors += 1
        except (RuntimeError, aiohttp.ClientError):
            self.errors += 1

    async def drain(self) -> None:
        """Wait for the binds still in flight."""
        while self._binds:
            await asyncio.gather(*list(self._binds))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]
