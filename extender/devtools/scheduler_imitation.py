"""Dev tooling: drive an extender over HTTP the way kube-scheduler does (``muster demo``, the
load test).  Not used by the extender's serving path.

kube-scheduler schedules one pod at a time: it filters a sample of the nodes (its
``percentageOfNodesToScore`` rule), calls the extender's filter and then prioritize, picks the
best node, and binds in a separate goroutine, so binds overlap with later pods.  This module
reproduces exactly that call pattern, with ``nodeCacheCapable: true`` payloads (node names) or,
given the node objects, ``nodeCacheCapable: false`` payloads (full ``v1.Node`` objects).

Optionally it also imitates the in-tree ``NodeResourcesFit`` filter that runs before the
extender: kube-scheduler offers the extender only nodes whose free capacity fits the pod, scans
from where the previous pod stopped (``nextStartNodeIndex``) and stops after the sampled count.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, islice
from typing import Any, ClassVar, Protocol

import aiohttp
import orjson

from extender.core import objects

VERBS = ("filter", "prioritize", "bind")
_score = operator.itemgetter("Score")


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
    offered: int = 0
    """Node names sent to filter (0: the in-tree imitation found no node, no call was made)."""
    bound: bool | None = None
    """None until the bind finished (or without a bind), then whether it succeeded."""


BindCallback = Callable[[Outcome], None]


class Poster(Protocol):
    """POSTs a JSON body to ``/<verb>``; returns (HTTP status, body)."""

    async def post(self, verb: str, body: bytes) -> tuple[int, bytes]: ...


@dataclass
class SessionPoster:
    """Over HTTP, through an aiohttp client session (``muster demo``; the load test brings its
    own leaner client, ``loadtest/posting.py``, where the driver's cost per call matters)."""

    session: aiohttp.ClientSession
    base_url: str

    async def post(self, verb: str, body: bytes) -> tuple[int, bytes]:
        async with self.session.post(
            f"{self.base_url}/{verb}", data=body, headers={"Content-Type": "application/json"}
        ) as response:
            return response.status, await response.read()


@dataclass
class Imitation:
    """One simulated scheduler: sequential filter+prioritize, concurrent binds."""

    FLAG_SHAPES: ClassVar[int] = 8

    poster: Poster
    """Where the calls go.  It must not limit concurrent requests when binds may wait: gang
    members wait at bind until the whole gang arrived."""
    node_names: Sequence[str]
    latencies: dict[str, list[float]] = field(default_factory=lambda: {v: [] for v in VERBS})
    errors: int = 0
    node_objects: Mapping[str, bytes] | None = None
    """Serialized ``v1.Node`` per name: send ``Nodes`` (nodeCacheCapable: false), not names."""
    allocatable: Mapping[str, Mapping[str, int]] | None = None
    """Per node, allocatable resources: imitate in-tree NodeResourcesFit before the extender."""
    on_bound: BindCallback | None = None
    """Called when a bind finished (``outcome.bound`` tells whether it succeeded)."""
    timeline: list[tuple[float, str, float]] = field(default_factory=list)
    """(perf_counter at the end, verb, seconds) of every call, for plots."""
    error_samples: list[str] = field(default_factory=list)
    _next_start: int = 0
    _free: dict[str, list[int]] | None = None
    _index: dict[str, int] = field(default_factory=dict)
    _capacity: dict[int, int] = field(default_factory=dict)
    _flags: dict[tuple[tuple[str, int], ...], list[bool]] = field(default_factory=dict)
    _seen: dict[tuple[tuple[str, int], ...], int] = field(default_factory=dict)
    _binds: set[asyncio.Task[None]] = field(default_factory=set)

    def sample(self, requests: Mapping[str, int] | None = None) -> list[str]:
        """The next node names, rotating the start as kube-scheduler's nextStartNodeIndex does.

        With ``allocatable`` and the pod's ``requests``, only nodes whose free capacity fits
        the pod are taken (in-tree filtering), and the start moves past every node looked at.
        """
        names = self.node_names
        total = len(names)
        if not total:
            return []
        count = nodes_to_find(total)
        start = self._next_start
        if self.allocatable is None or requests is None:
            self._next_start = (start + count) % total
            return [names[(start + i) % total] for i in range(count)]
        free = self._free_table()
        if any(r not in free for r, a in requests.items() if a > 0):
            return []  # no node has this resource at all
        shape = tuple(sorted((r, a) for r, a in requests.items() if a > 0))
        flags = self._flags.get(shape)
        if flags is None and self._seen.get(shape, 0) >= 1:
            flags = self._fit_flags(shape)
        self._seen[shape] = self._seen.get(shape, 0) + 1
        if flags is not None:
            found = list(islice(compress(range(start, total), islice(flags, start, None)), count))
            if len(found) < count:
                found += islice(compress(range(start), flags), count - len(found))
        else:
            found = self._scan(shape, start, total, count)
        done = (found[-1] - start) % total + 1 if len(found) == count else total
        self._next_start = (start + done) % total
        return list(map(names.__getitem__, found))

    def _scan(
        self, shape: tuple[tuple[str, int], ...], start: int, total: int, count: int
    ) -> list[int]:
        """Indexes of the first ``count`` fitting nodes from ``start``, judging chunks of the
        rotated node list at C speed, the scarcest resource first."""
        free = self._free_table()
        wanted = sorted(
            ((free[r], a) for r, a in shape),
            key=lambda item: item[1] / max(1, self._capacity[id(item[0])]),
            reverse=True,
        )
        found: list[int] = []
        done = 0  # nodes looked at, from ``start``
        while done < total and len(found) < count:
            need = count - len(found)
            size = min(total - done, max(64, 2 * need))
            low = (start + done) % total
            high = low + size
            chunk = list(range(low, min(high, total)))
            if high > total:
                chunk += range(high - total)
            for column, amount in wanted:
                chunk = [i for i in chunk if column[i] >= amount]
            if len(chunk) >= need:
                found += chunk[:need]
                break
            found += chunk
            done += size
        return found

    def _fit_flags(self, shape: tuple[tuple[str, int], ...]) -> list[bool]:
        """Per node, whether a pod of ``shape`` fits; kept up to date by ``_account`` for the
        few most recent shapes (a run of identical pods then samples at C speed)."""
        free = self._free_table()
        flags = [True] * len(self.node_names)
        for resource, amount in shape:
            flags = [f and have >= amount for f, have in zip(flags, free[resource], strict=True)]
        self._flags[shape] = flags
        while len(self._flags) > self.FLAG_SHAPES:
            del self._flags[next(iter(self._flags))]
        if len(self._seen) > 4 * self.FLAG_SHAPES:
            self._seen.clear()
        return flags

    def _free_table(self) -> dict[str, list[int]]:
        """Free capacity per resource, one column indexed like ``node_names`` (missing
        resources are 0 free)."""
        if self._free is None:
            assert self.allocatable is not None
            resources = {r for alloc in self.allocatable.values() for r in alloc}
            self._index = {name: i for i, name in enumerate(self.node_names)}
            self._free = {
                r: [self.allocatable.get(name, {}).get(r, 0) for name in self.node_names]
                for r in resources
            }
            self._capacity = {id(column): max(column, default=0) for column in self._free.values()}
        return self._free

    def _account(self, name: str, requests: Mapping[str, int], sign: int) -> None:
        free = self._free_table()
        index = self._index[name]
        for resource, amount in requests.items():
            column = free.get(resource)
            if column is None:
                column = free[resource] = [0] * len(self.node_names)
                self._capacity[id(column)] = 0
            column[index] -= sign * amount
        for shape, flags in self._flags.items():
            flags[index] = all(free[r][index] >= a for r, a in shape)

    def _body(self, pod_json: bytes, names: Sequence[str]) -> bytes:
        if self.node_objects is None:
            return b"".join(
                (b'{"Pod":', pod_json, b',"Nodes":null,"NodeNames":', orjson.dumps(names), b"}")
            )
        items = b",".join(self.node_objects[name] for name in names)
        return b"".join(
            (
                b'{"Pod":',
                pod_json,
                b',"Nodes":{"metadata":{},"items":[',
                items,
                b']},"NodeNames":null}',
            )
        )

    async def _post(self, verb: str, body: bytes) -> Any:
        started = time.perf_counter()
        status, data = await self.poster.post(verb, body)
        ended = time.perf_counter()
        self.latencies[verb].append(ended - started)
        self.timeline.append((ended, verb, ended - started))
        if status != 200:
            raise RuntimeError(f"{verb}: HTTP {status}: {data[:200]!r}")
        return orjson.loads(data)

    def _error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(message)

    async def schedule(
        self,
        pod: dict[str, Any],
        *,
        bind: bool = True,
        requests: Mapping[str, int] | None = None,
        in_tree: bool = True,
    ) -> Outcome:
        """One scheduling cycle; the bind (if any) runs in the background like the goroutine.

        ``requests`` (the pod's effective requests) is needed only for the in-tree imitation;
        it is computed from the pod when not given.  ``in_tree=False`` offers this pod the
        sampled nodes without the in-tree fit check (a pod only the extender rejects).
        """
        meta = pod["metadata"]
        outcome = Outcome(pod=f"{meta.get('namespace', 'default')}/{meta['name']}")
        if self.allocatable is not None and requests is None:
            requests = objects.to_pod(pod).requests
        try:
            names = self.sample(requests if in_tree else None)
            outcome.offered = len(names)
            if not names:  # kube-scheduler calls no extender when in-tree filters left none
                outcome.reasons["no node fits (in-tree filters)"] = len(self.node_names)
                return outcome
            pod_json = orjson.dumps(pod)
            result = await self._post("filter", self._body(pod_json, names))
            if result.get("Error"):
                raise RuntimeError(f"filter: {result['Error']}")
            if self.node_objects is None:
                feasible = result.get("NodeNames") or []
            else:
                items = (result.get("Nodes") or {}).get("items") or []
                feasible = [item["metadata"]["name"] for item in items]
            for failed in ("FailedNodes", "FailedAndUnresolvableNodes"):
                for reason in (result.get(failed) or {}).values():
                    outcome.reasons[reason] = outcome.reasons.get(reason, 0) + 1
            if not feasible:
                return outcome
            if len(feasible) == 1:  # kube-scheduler skips scoring for a single node
                outcome.node = feasible[0]
            else:
                scores = await self._post("prioritize", self._body(pod_json, feasible))
                best = max(scores, key=_score) if scores else None
                outcome.node = best["Host"] if best else feasible[0]
        except (RuntimeError, OSError, aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
            self._error(str(exc) or type(exc).__name__)
            outcome.error = str(exc) or type(exc).__name__
            return outcome
        if self.allocatable is not None and requests is not None:
            self._account(outcome.node, requests, +1)  # the scheduler cache "assumes" the pod
        if bind:
            task = asyncio.create_task(self._bind(meta, outcome, requests))
            self._binds.add(task)
            task.add_done_callback(self._binds.discard)
        return outcome

    async def _bind(
        self, meta: dict[str, Any], outcome: Outcome, requests: Mapping[str, int] | None
    ) -> None:
        args = {
            "PodName": meta["name"],
            "PodNamespace": meta.get("namespace", "default"),
            "PodUID": meta.get("uid", ""),
            "Node": outcome.node,
        }
        try:
            result = await self._post("bind", orjson.dumps(args))
            if result.get("Error"):
                raise RuntimeError(f"bind: {result['Error']}")
            outcome.bound = True
        except (TimeoutError, RuntimeError, OSError, aiohttp.ClientError, ValueError) as exc:
            self._error(str(exc) or type(exc).__name__)
            outcome.error = str(exc) or type(exc).__name__
            outcome.bound = False
            if self.allocatable is not None and requests is not None:
                self._account(outcome.node, requests, -1)  # ForgetPod
        if self.on_bound is not None:
            self.on_bound(outcome)

    @property
    def binds_in_flight(self) -> int:
        return len(self._binds)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for the binds still in flight; with a timeout, cancel the rest after it.
        Returns whether every bind finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._binds:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                for task in list(self._binds):
                    task.cancel()
                await asyncio.gather(*list(self._binds), return_exceptions=True)
                return False
            await asyncio.wait(list(self._binds), timeout=remaining)
        return True


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]
