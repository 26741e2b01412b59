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
from collections.abc import Mapping, Sequence

import cachetools

from extender import metrics
from extender.core import (
    cluster,
    equivalence,
    feasibility,
    gang,
    model,
    objects,
    predicates,
    scoring,
)
from extender.service import gangs
from extender.service.ports import (
    Binder,
    BindError,
    Clock,
    FilterOutcome,
    Notifier,
    NotReady,
    QuietNotifier,
    RequestError,
    Victims,
)
from extender.settings import Settings

__all__ = [
    "Binder",
    "BindError",
    "Clock",
    "ExtenderService",
    "FilterOutcome",
    "Notifier",
    "NotReady",
    "RequestError",
    "Victims",
]

log = logging.getLogger(__name__)


def _outcome(
    names: Sequence[str], verdicts: Sequence[predicates.Rejection | None]
) -> FilterOutcome:
    """Sort verdicts into passed, failed (preemption may help) and unresolvable nodes."""
    rejected = [(n, v) for n, v in zip(names, verdicts, strict=True) if v is not None]
    unresolvable = predicates.Code.UNRESOLVABLE
    return FilterOutcome(
        passed=[n for n, v in zip(names, verdicts, strict=True) if v is None],
        failed={n: v.reason for n, v in rejected if v.code is not unresolvable},
        unresolvable={n: v.reason for n, v in rejected if v.code is unresolvable},
    )


class ExtenderService:
    def __init__(
        self,
        *,
        state: cluster.ClusterState,
        binder: Binder,
        settings: Settings,
        notifier: Notifier | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.state = state
        self.binder = binder
        self.settings = settings
        self.clock = clock
        self.notifier = notifier or QuietNotifier()
        metrics.cluster_nodes.set_function(lambda: len(state.nodes))
        metrics.cluster_pods.set_function(lambda: len(state.pods))
        metrics.cluster_synced.set_function(lambda: int(state.synced))
        self.cache = (
            feasibility.FeasibilityCache(max_signatures=settings.cache_signatures)
            if settings.feasibility_cache
            else None
        )
        metrics.feasibility_cache.reading = self._cache_reading
        self.gangs = gangs.GangCoordinator(
            state=state, binder=binder, notifier=self.notifier, settings=settings, clock=clock
        )
        # uid -> (resourceVersion, pod): converting a pod once per version, and the pod a
        # bind call refers to (the watch may not have delivered it yet).
        self._seen: cachetools.LRUCache[str, tuple[str, model.Pod]] = cachetools.LRUCache(
            maxsize=settings.remembered_pods
        )

    def _cache_reading(self) -> tuple[dict[str, int], int]:
        if self.cache is None:
            return dict.fromkeys(("hits", "partial_hits", "misses", "rechecked", "evictions"), 0), 0
        stats = self.cache.stats
        counters = {
            "hits": stats.hits,
            "partial_hits": stats.partial_hits,
            "misses": stats.misses,
            "rechecked": stats.rechecked,
            "evictions": stats.evictions,
        }
        return counters, len(self.cache)

    @property
    def ready(self) -> bool:
        return self.state.synced

    def _require_ready(self) -> None:
        if not self.state.synced:
            raise NotReady("cluster view not synced yet")

    # -- the cluster feed (watches, or the simulation) ----------------------------------------

    def replace_nodes(self, nodes: Sequence[model.Node]) -> None:
        self.state.replace_nodes(nodes)

    def upsert_node(self, node: model.Node) -> None:
        self.state.upsert_node(node)

    def delete_node(self, name: str) -> None:
        self.state.delete_node(name)

    def replace_pods(self, pods: Sequence[model.Pod]) -> None:
        fresh = {pod.uid for pod in pods}
        for uid in list(self.gangs.group_of):
            if uid not in fresh:
                self.gangs.forget(uid)
        self.state.replace_pods(pods)
        for pod in pods:
            self.gangs.observe(pod)

    def apply_pod(self, pod: model.Pod) -> None:
        self.state.upsert_pod(pod)
        self.gangs.observe(pod)

    def remove_pod(self, pod: model.Pod) -> None:
        self.state.delete_pod(pod.uid)
        self.gangs.forget(pod.uid)

    def replace_workloads(self, workloads: Sequence[gang.Workload]) -> None:
        for key in list(self.gangs.workloads):
            if key not in {(w.namespace, w.name) for w in workloads}:
                self.gangs.delete_workload(*key)
        for workload in workloads:
            self.gangs.set_workload(workload)

    def apply_workload(self, workload: gang.Workload) -> None:
        self.gangs.set_workload(workload)

    def remove_workload(self, workload: gang.Workload) -> None:
        self.gangs.delete_workload(workload.namespace, workload.name)

    def mark_synced(self) -> None:
        self.state.synced = True

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

    def _states(
        self, names: Sequence[str], node_objects: Mapping[str, model.Node] | None
    ) -> list[cluster.NodeState] | None:
        """The view's state of each named node (None with node objects from the request).

        Names alone must be known to the view: an unknown name is a bad request."""
        if node_objects is not None:
            return None
        nodes = self.state.nodes
        try:
            return [nodes[name] for name in names]
        except KeyError:
            missing = [n for n in names if n not in nodes]
            shown = ", ".join(repr(n) for n in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise RequestError(
                f"unknown node(s) {shown}{more}: not in the extender's view"
            ) from None

    def _request_states(
        self, names: Sequence[str], node_objects: Mapping[str, model.Node]
    ) -> list[cluster.NodeState]:
        """nodeCacheCapable: false — the request's node objects with the view's usage on them
        (such nodes need not be known, and are never cached)."""
        nodes = self.state.nodes
        return [
            cluster.NodeState(node_objects[n], -1, nodes[n].used if n in nodes else {})
            for n in names
        ]

    def _signature(
        self, pod: model.Pod, states: list[cluster.NodeState] | None
    ) -> equivalence.Signature | None:
        if self.cache is None or states is None:
            return None
        return equivalence.signature(pod)

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
        states = self._states(node_names, node_objects)
        outcome = self.gangs.filter(pod, node_names)
        if outcome is None:
            judged = (
                states
                if states is not None
                else self._request_states(node_names, node_objects or {})
            )

            def judge(state: cluster.NodeState) -> predicates.Rejection | None:
                return predicates.check(pod, state.node, state.used)

            signature = self._signature(pod, states)
            if signature is not None and self.cache is not None:
                verdicts = self.cache.verdicts(signature, judged, judge, view=self.state)
            else:
                verdicts = [judge(state) for state in judged]
            outcome = _outcome([state.node.name for state in judged], verdicts)
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
        states = self._states(node_names, node_objects)
        judged = (
            states if states is not None else self._request_states(node_names, node_objects or {})
        )
        strategy = self.settings.scoring

        def score(state: cluster.NodeState) -> int:
            return scoring.score(strategy, pod.requests, state.node, state.used)

        signature = self._signature(pod, states)
        if signature is not None and self.cache is not None:
            values = self.cache.scores(signature, judged, score, view=self.state)
        else:
            values = [score(state) for state in judged]
        return [(state.node.name, value) for state, value in zip(judged, values, strict=True)]

    # -- bind -------------------------------------------------------------------------------

    def _pod_for_bind(self, namespace: str, name: str, uid: str) -> model.Pod:
        key = f"{namespace}/{name}"
        known = self.state.pods_by_key.get(key)
        if known is not None:
            if uid and known.uid != uid:
                raise BindError(f"pod {key} has uid {known.uid}, not {uid}")
            return known
        seen = self._seen.get(uid)
        pod = seen[1] if seen is not None else self.gangs.member(uid)
        if pod is None or pod.key != key:
            raise BindError(f"pod {key} (uid {uid}) is unknown to the extender")
        return pod

    async def bind(self, *, namespace: str, name: str, uid: str, node_name: str) -> None:
        """Create the pod's binding, accounting it on the node before the API call returns."""
        self._require_ready()
        try:
            pod = self._pod_for_bind(namespace, name, uid)
            if node_name not in self.state.nodes:
                raise BindError(f"node {node_name!r} is unknown to the extender")
            group = self.gangs.gates(pod.uid)
            current = "" if group is not None else self.state.bound_node(pod.uid)
            if current == node_name:
                metrics.binds.labels("bound").inc()
                return
            if current:
                raise BindError(f"pod {pod.key} is already bound to {current}")
        except BindError:
            metrics.binds.labels("refused").inc()
            raise
        if group is not None:
            await self._bind_member(group, pod, node_name)
            return
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

    async def _bind_member(self, group: gangs.Group, pod: model.Pod, node_name: str) -> None:
        """A gang member: wait at the gang's gate; all members are bound together."""
        try:
            await self.gangs.bind(group, pod, node_name)
        except BindError:
            metrics.binds.labels("failed").inc()
            raise
        metrics.binds.labels("bound").inc()

    # -- preempt ----------------------------------------------------------------------------

    def preempt(self, pod: model.Pod, candidates: Mapping[str, Victims]) -> dict[str, Victims]:
        """The scheduler's candidates, minus nodes whose victims would take only part of a
        gang: all bound members of a gang are victims, or none."""
        self._require_ready()
        return self.gangs.whole_gangs_only(candidates)
