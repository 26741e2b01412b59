"""The extender's use-cases: filter, prioritize, bind and preempt, over the cluster view.

The service owns the ``ClusterState`` and the pods it has seen in filter calls.  It talks to the
outside world only through the ports declared here (``Binder``), so the same service runs on a
live cluster (``kube/``), on the simulated one (``simulation``) and under unit tests.  State
changes are synchronous; the only ``await`` is the binder's API call, and state is made
consistent before and after it, never across it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cachetools

from extender import metrics
from extender.core import cluster, model, objects, predicates, scoring
from extender.settings import Settings

log = logging.getLogger(__name__)


class Binder(Protocol):
    """Creates the ``pods/binding`` of a pod; raises on failure."""

    async def bind(self, pod: model.Pod, node_name: str) -> None: ...


Clock = Callable[[], float]


class RequestError(ValueError):
    """A request that names things the extender cannot accept (answered with HTTP 400)."""


class NotReady(RuntimeError):
    """The cluster view has not synced yet."""


class BindError(RuntimeError):
    """A bind that was refused or failed; the message goes back to the scheduler."""


@dataclass(slots=True)
class FilterOutcome:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Victims:
    """The pods preemption would evict on one node, by uid."""

    uids: tuple[str, ...]
    pdb_violations: int = 0


class ExtenderService:
    def __init__(
        self,
        *,
        state: cluster.ClusterState,
        binder: Binder,
        settings: Settings,
        clock: Clock = time.monotonic,
    ) -> None:
        self.state = state
        self.binder = binder
        self.settings = settings
        self.clock = clock
        # uid -> (resourceVersion, pod): converting a pod once per version, and the pod a
        # bind call refers to (the watch may not have delivered it yet).
        self._seen: cachetools.LRUCache[str, tuple[str, model.Pod]] = cachetools.LRUCache(
            maxsize=settings.remembered_pods
        )

    @property
    def ready(self) -> bool:
        return self.state.synced

    def _require_ready(self) -> None:
        if not self.state.synced:
            raise NotReady("cluster view not synced yet")

    # -- pods from the wire -----------------------------------------------------------------

    def pod_from_wire(self, raw: Mapping[str, object]) -> model.Pod:
        """Convert the request's Pod, reusing the conversion of the same uid and version."""
        meta = raw.get("metadata")
        if isinstance(meta, dict):
            uid, version = meta.get("uid"), meta.get("resourceVersion")
            if isinstance(uid, str) and uid and isinstance(version, str) and version:
                known = self._seen.get(uid)
                if known is not None and known[0] == version:
                    return known[1]
        pod = objects.to_pod(raw)
        if pod.uid:
            self._seen[pod.uid] = (pod.resource_version, pod)
        return pod

    def _node(self, name: str) -> cluster.NodeState:
        state = self.state.nodes.get(name)
        if state is None:
            raise RequestError(f"unknown node {name!r}")
        return state

    def _nodes(self, names: Sequence[str]) -> list[cluster.NodeState]:
        nodes = self.state.nodes
        found = [nodes.get(name) for name in names]
        if None in found:
            missing = [n for n, s in zip(names, found, strict=True) if s is None]
            shown = ", ".join(repr(n) for n in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise RequestError(f"unknown node(s) {shown}{more}: not in the extender's view")
        return found  # type: ignore[return-value]

    # -- filter -----------------------------------------------------------------------------

    def filter(
        self,
        pod: model.Pod,
        node_names: Sequence[str],
        *,
        node_objects: Mapping[str, model.Node] | None = None,
    ) -> FilterOutcome:
        """Judge each node; every rejected node is listed with its reason.

        With ``node_objects`` (nodeCacheCapable: false) the node objects come from the request
        and only the usage on them from the view; such nodes need not be known.
        """
        self._require_ready()
        outcome = FilterOutcome()
        if node_objects is None:
            judged = [(s.node, s.used) for s in self._nodes(node_names)]
        else:
            empty: dict[str, int] = {}
            judged = []
            for name in node_names:
                known = self.state.nodes.get(name)
                judged.append((node_objects[name], known.used if known else empty))
        for node, used in judged:
            rejection = predicates.check(pod, node, used)
            if rejection is None:
                outcome.passed.append(node.name)
            elif rejection.code is predicates.Code.UNRESOLVABLE:
                outcome.unresolvable[node.name] = rejection.reason
            else:
                outcome.failed[node.name] = rejection.reason
        metrics.filter_nodes.labels("passed").inc(len(outcome.passed))
        metrics.filter_nodes.labels("failed").inc(len(outcome.failed))
        metrics.filter_nodes.labels("unresolvable").inc(len(outcome.unresolvable))
        return outcome

    # -- prioritize -------------------------------------------------------------------------

    def prioritize(
        self,
        pod: model.Pod,
        node_names: Sequence[str],
        *,
        node_objects: Mapping[str, model.Node] | None = None,
    ) -> list[tuple[str, int]]:
        """Score each node 0..10 with the configured strategy."""
        self._require_ready()
        strategy = self.settings.scoring
        if node_objects is None:
            return [
                (s.node.name, scoring.score(strategy, pod.requests, s.node, s.used))
                for s in self._nodes(node_names)
            ]
        empty: dict[str, int] = {}
        out = []
        for name in node_names:
            known = self.state.nodes.get(name)
            used = known.used if known else empty
            out.append((name, scoring.score(strategy, pod.requests, node_objects[name], used)))
        return out

    # -- bind -------------------------------------------------------------------------------

    def _pod_for_bind(self, namespace: str, name: str, uid: str) -> model.Pod:
        key = f"{namespace}/{name}"
        known = self.state.pods_by_key.get(key)
        if known is not None:
            if uid and known.uid != uid:
                raise BindError(f"pod {key} has uid {known.uid}, not {uid}")
            return known
        seen = self._seen.get(uid)
        if seen is None or seen[1].key != key:
            raise BindError(f"pod {key} (uid {uid}) is unknown to the extender")
        return seen[1]

    async def bind(self, *, namespace: str, name: str, uid: str, node_name: str) -> None:
        """Create the pod's binding, accounting it on the node before the API call returns."""
        self._require_ready()
        try:
            pod = self._pod_for_bind(namespace, name, uid)
            if node_name not in self.state.nodes:
                raise BindError(f"node {node_name!r} is unknown to the extender")
            current = self.state.bound_node(pod.uid)
            if current == node_name:
                metrics.binds.labels("bound").inc()
                return
            if current:
                raise BindError(f"pod {pod.key} is already bound to {current}")
        except BindError:
            metrics.binds.labels("refused").inc()
            raise
        # 1. account the pod at once so the next filter sees the node fuller;
        self.state.assume(pod, node_name)
        # 2. create the binding; 3. undo the accounting if that failed.
        try:
            await self.binder.bind(pod, node_name)
        except Exception as exc:
            self.state.forget(pod.uid)
            metrics.binds.labels("failed").inc()
            log.warning("binding %s to %s failed: %s", pod.key, node_name, exc)
            raise BindError(f"binding {pod.key} to {node_name} failed: {exc}") from exc
        metrics.binds.labels("bound").inc()

    # -- preempt ----------------------------------------------------------------------------

    def preempt(self, pod: model.Pod, candidates: Mapping[str, Victims]) -> dict[str, Victims]:
        """The scheduler's preemption candidates, passed through unchanged for now."""
        self._require_ready()
        return dict(candidates)
