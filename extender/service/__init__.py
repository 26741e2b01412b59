"""The extender's use-cases: filter, prioritize, bind and preempt, over the cluster view.

The service owns the ``ClusterState`` and the pods it has seen in filter calls.  It talks to the
outside world only through the ports declared here (``Binder``), so the same service runs on a
live cluster (``kube/``), on the simulated one (``simulation``) and under unit tests.  State
changes are synchronous; the only ``await`` is the binder's API call, and state is made
consistent before and after it, never across it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

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
    resources,
    scoring,
)
from extender.core.predicates import FilterOutcome
from extender.service import admission, gangs
from extender.service.ports import (
    ApiError,
    Binder,
    BindError,
    Clock,
    Conflict,
    Evictor,
    NotFound,
    Notifier,
    NotReady,
    QuietNotifier,
    RequestError,
    Timers,
    Victims,
)
from extender.service.timers import LoopTimers
from extender.settings import Settings

__all__ = [
    "ApiError",
    "Binder",
    "BindError",
    "Clock",
    "Conflict",
    "Evictor",
    "ExtenderService",
    "FilterOutcome",
    "Notifier",
    "NotFound",
    "NotReady",
    "RequestError",
    "Timers",
    "Victims",
]

log = logging.getLogger(__name__)


DELETED_MEMORY_SECONDS = 600.0
"""How long a deleted pod's uid is remembered: a scheduler call about it after the watch
reported the deletion (the scheduler's queue lags too) must not bring it back."""

STALE_VIEW_SECONDS = 2.0
"""How long muster's view of the cluster may lag the scheduler's: a rejection this recent may
have missed room freed in the meantime."""

_FILTER_PASSED = metrics.filter_nodes.labels("passed")
_FILTER_FAILED = metrics.filter_nodes.labels("failed")
_FILTER_UNRESOLVABLE = metrics.filter_nodes.labels("unresolvable")


class ExtenderService:
    def __init__(
        self,
        *,
        state: cluster.ClusterState,
        binder: Binder,
        settings: Settings,
        notifier: Notifier | None = None,
        evictor: Evictor | None = None,
        clock: Clock = time.monotonic,
        timers: Timers | None = None,
    ) -> None:
        self.state = state
        self.binder = binder
        self.settings = settings
        self.clock = clock
        self.timers: Timers = timers if timers is not None else LoopTimers()
        """The one owner of the deferred work of every part; ``close`` cancels it."""
        self.notifier = notifier or QuietNotifier()
        self.cache = (
            feasibility.FeasibilityCache(max_signatures=settings.cache_signatures)
            if settings.feasibility_cache
            else None
        )
        self.gangs = gangs.GangCoordinator(
            state=state,
            binder=binder,
            notifier=self.notifier,
            settings=settings,
            placement=self,
            capacity_freed=self._retry_turned_away,
            timers=self.timers,
            clock=clock,
        )
        self.admission = admission.QueueAdmission(
            gangs=self.gangs,
            notifier=self.notifier,
            evictor=evictor,
            node_labels=self._node_labels,
            timers=self.timers,
            clock=clock,
            replicate_labels=settings.replicate_labels,
        )
        # Pods whose last filter passed no node for lack of room (uid -> (pod, when)), oldest
        # first, at most ``remembered_pods``.
        self._turned_away: dict[str, tuple[model.Pod, float]] = {}
        state.on_bound_change(self._bound_changed)
        # uid -> (resourceVersion, pod): converting a pod once per version, and the pod a
        # bind call refers to (the watch may not have delivered it yet).
        self._seen: cachetools.LRUCache[str, tuple[str, model.Pod]] = cachetools.LRUCache(
            maxsize=settings.remembered_pods
        )
        # spec encoding -> its conversion: pods of one template differ only in metadata.
        self._specs: cachetools.LRUCache[bytes, objects.PodSpec] = cachetools.LRUCache(maxsize=256)
        # Pods known only from scheduler calls, not yet from the watch: uid -> first seen,
        # oldest first.  Deleted pods' uids, so a late call cannot revive one.
        self._tentative: dict[str, float] = {}
        self._deleted: cachetools.TTLCache[str, bool] = cachetools.TTLCache(
            maxsize=settings.remembered_pods, ttl=DELETED_MEMORY_SECONDS, timer=clock
        )
        self._readiness_checks: list[Callable[[], str]] = []
        self._unhealthy_at = clock()

    def reading(self) -> metrics.ServiceReading:
        """What the metrics export about the service, read at scrape time."""
        stats = self.cache.stats if self.cache is not None else feasibility.Stats()
        return metrics.ServiceReading(
            nodes=len(self.state.nodes),
            pods=len(self.state.pods),
            synced=self.state.synced,
            gangs=self.gangs.phases(),
            cache={
                "hits": stats.hits,
                "partial_hits": stats.partial_hits,
                "misses": stats.misses,
                "rechecked": stats.rechecked,
                "evictions": stats.evictions,
            },
            cache_entries=len(self.cache) if self.cache is not None else 0,
            queues=self.admission.reading(),
        )

    def _node_labels(self, name: str) -> Mapping[str, str] | None:
        state = self.state.nodes.get(name)
        return state.node.labels if state is not None else None

    # -- placement policy (asked by gang planning) -------------------------------------------

    def may_place(self, pod: model.Pod) -> bool:
        return self.admission.may_place(pod)

    def constrain(self, pod: model.Pod) -> model.Pod:
        return self.admission.constrain(pod)

    def add_readiness_check(self, check: Callable[[], str]) -> None:
        """``check`` returns why the view is not current now ("" while it is): the watches."""
        self._readiness_checks.append(check)

    def readiness(self) -> str:
        """Why muster is not ready ("" when it is): the view has not synced, or a watch that
        keeps it current is failing."""
        if not self.state.synced:
            return "cluster view not synced yet"
        return "; ".join(problem for check in self._readiness_checks if (problem := check()))

    @property
    def ready(self) -> bool:
        return not self.readiness()

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
        """A fresh pod list: what it lacks is gone, except pods first seen in a scheduler call
        lately (created after the list was taken, the watch will tell)."""
        fresh = {pod.uid for pod in pods}
        recent = self.clock() - self.settings.tentative_seconds
        young = {uid for uid, since in self._tentative.items() if since >= recent}
        self._tentative = {uid: self._tentative[uid] for uid in young if uid not in fresh}
        for uid in list(self.gangs.group_of):
            if uid not in fresh and uid not in young:
                self.gangs.forget(uid)
        for uid in list(self.admission.waiting.pods):
            if uid not in fresh and uid not in young:
                self.admission.forget(uid)
        self.state.replace_pods(pods)
        for pod in pods:
            self.gangs.observe(pod)
        for pod in pods:
            self.admission.observe(pod)
        if self.state.synced:  # a relist: the scheduler may have given up on pods meanwhile
            self._retry_unschedulable()

    def apply_pod(self, pod: model.Pod) -> None:
        self._tentative.pop(pod.uid, None)
        self.state.upsert_pod(pod)
        self.gangs.observe(pod)
        self.admission.observe(pod)

    def replace_namespaces(self, namespaces: Sequence[model.Namespace]) -> None:
        self.admission.set_namespaces(namespaces)

    def apply_namespace(self, namespace: model.Namespace) -> None:
        self.admission.set_namespace(namespace)

    def remove_namespace(self, namespace: model.Namespace) -> None:
        self.admission.delete_namespace(namespace.name)

    def remove_pod(self, pod: model.Pod) -> None:
        """The pod is deleted: forget it everywhere, and remember that it was."""
        self._deleted[pod.uid] = True
        self._tentative.pop(pod.uid, None)
        self.state.delete_pod(pod.uid)
        self._forget(pod.uid)

    def _forget(self, uid: str) -> None:
        """Drop a pod from gangs, quota and every memory of scheduler calls about it."""
        self.gangs.forget(uid)
        self.admission.forget(uid)
        self.state.forget(uid)
        self._turned_away.pop(uid, None)
        self._seen.pop(uid, None)

    def replace_workloads(self, workloads: Sequence[gang.Workload]) -> None:
        for key in list(self.gangs.workloads):
            if key not in {(w.namespace, w.name) for w in workloads}:
                self.gangs.delete_workload(*key)
        for workload in workloads:
            self.gangs.set_workload(workload)
            self.admission.workload_changed(workload)

    def apply_workload(self, workload: gang.Workload) -> None:
        self.gangs.set_workload(workload)
        self.admission.workload_changed(workload)

    def remove_workload(self, workload: gang.Workload) -> None:
        self.gangs.delete_workload(workload.namespace, workload.name)

    def mark_synced(self) -> None:
        self.state.synced = True
        self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        """After the view (re)synced: pods the scheduler could not place (while muster was down
        or rebuilding, or turned away by muster) are nudged so it retries them now, not after
        its unschedulable timeout (60 s in 1.20, up to 5 min later)."""
        served = self.settings.scheduler_names
        pods = [
            pod
            for pod in self.state.pods.values()
            if not pod.node_name
            and not pod.terminated
            and not pod.deleting
            and pod.scheduler_name in served
            and (pod.unschedulable or pod.uid in self._turned_away)
        ]
        self._turned_away.clear()
        if pods:
            log.info("view synced: nudging %d pod(s) the scheduler could not place", len(pods))
            self.notifier.nudge(pods)

    def start(self) -> None:
        """Once the loop runs (the app's startup): the deferred work asked for while the
        service was built (before the loop ran) starts now."""
        self.timers.start()

    def close(self) -> None:
        """At shutdown: cancel the deferred work still pending (timers such as gang
        deadlines, PodsReady timeouts and the admission cycle asked for; tasks such as a
        gang's binds and queue evictions); none starts after."""
        self.timers.close()

    # -- housekeeping (every second, supervised by the app) --------------------------------

    def housekeep(self) -> None:
        """Drop pods known only from scheduler calls that a healthy watch never confirmed
        within ``tentative_seconds``: deleted before the watch saw them, or never real.  Not
        while the watch is failing (then it could confirm nothing)."""
        now = self.clock()
        if not self.ready:
            self._unhealthy_at = now
            return
        limit = now - self.settings.tentative_seconds
        if self._unhealthy_at > limit:
            return  # give the recovered watch the whole window
        for uid, since in list(self._tentative.items()):
            if since > limit:
                break
            del self._tentative[uid]
            if uid not in self.state.pods:
                log.info("pod uid %s was never confirmed by the watch: dropped", uid)
                metrics.tentative_pods_expired.inc()
                self._forget(uid)

    # -- pods from the wire -----------------------------------------------------------------

    def pod_from_wire(self, raw: Mapping[str, object], *, spec_key: bytes = b"") -> model.Pod:
        """Convert the request's Pod, reusing the conversion of the same uid and version, and
        of an equal spec: ``spec_key`` is the spec's encoding (equal keys, equal specs)."""
        meta = raw.get("metadata")
        if isinstance(meta, dict):
            uid, version = meta.get("uid"), meta.get("resourceVersion")
            if isinstance(uid, str) and uid and isinstance(version, str) and version:
                known = self._seen.get(uid)
                if known is not None and known[0] == version:
                    return known[1]
        spec = self._specs.get(spec_key) if spec_key else None
        if spec is None:
            spec = objects.to_pod_spec(raw.get("spec"))
            if spec_key:
                self._specs[spec_key] = spec
        pod = objects.to_pod(raw, spec=spec)
        if pod.uid:
            self._seen[pod.uid] = (pod.resource_version, pod)
        return pod

    def _check_names(self, names: Sequence[object]) -> None:
        """Raise ``RequestError`` unless every name is a node of the view.

        The cache's fast paths do not check names one by one: looking up a name that is no
        node fails (KeyError, TypeError) and lands here; a failure with good names is a bug
        and goes on up."""
        if not all(isinstance(name, str) for name in names):
            raise RequestError("NodeNames must be a list of strings")
        nodes = self.state.nodes
        missing = [name for name in names if name not in nodes]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise RequestError(f"unknown node(s) {shown}{more}: not in the extender's view")

    def _signature(self, pod: model.Pod) -> equivalence.Signature | None:
        return equivalence.signature(pod) if self.cache is not None else None

    def _used(self, name: str) -> resources.ResourceList:
        state = self.state.nodes.get(name)
        return state.used if state is not None else {}

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
        and only the usage on them from the view; such nodes need not be known.  Otherwise
        every name must be a node of the view (else ``RequestError``).
        """
        self._require_ready()
        if pod.uid in self._deleted:
            gone = f"pod {pod.key} is deleted"
            return FilterOutcome(unresolvable=dict.fromkeys(node_names, gone))
        if pod.uid not in self.state.pods and pod.uid not in self._tentative:
            self._tentative[pod.uid] = self.clock()
        if admission.queue_of(pod):
            # A queued gang member must be in its group before its workload is decided, or a
            # member the watch has not delivered yet would be admitted alone.
            self.gangs.observe(pod)
        verdict = self.admission.filter(pod)
        if verdict is not None and verdict.reason:
            if node_objects is None:
                self._check_names(node_names)  # a waiting pod's answer names every node
            _FILTER_UNRESOLVABLE.inc(len(node_names))
            return FilterOutcome(unresolvable=dict.fromkeys(node_names, verdict.reason))
        if verdict is not None:
            pod = verdict.pod  # admitted: held to its flavors' nodes
        try:
            outcome = self.gangs.filter(pod, node_names)
            if outcome is None:
                outcome = self._judge(pod, node_names, node_objects)
            elif node_objects is None:
                self._check_names(node_names)
        except (KeyError, TypeError):
            if node_objects is None:
                self._check_names(node_names)
            raise
        _FILTER_PASSED.inc(len(outcome.passed))
        _FILTER_FAILED.inc(len(outcome.failed))
        _FILTER_UNRESOLVABLE.inc(len(outcome.unresolvable))
        if outcome.passed or not outcome.failed:
            self._turned_away.pop(pod.uid, None)
        else:
            self._turn_away(pod)
        return outcome

    def _turn_away(self, pod: model.Pod) -> None:
        self._turned_away.pop(pod.uid, None)
        self._turned_away[pod.uid] = (pod, self.clock())
        if len(self._turned_away) > self.settings.remembered_pods:
            del self._turned_away[next(iter(self._turned_away))]

    def _retry_turned_away(self, since: float = float("-inf")) -> None:
        """Retry now the pods turned away for lack of room (since ``since``), not after the
        scheduler's unschedulable timeout.  Called when muster lets go capacity it held (a
        gang's reservation: no cluster event tells the scheduler) and, for recent rejections,
        when a pod leaves its node (``_bound_changed``)."""
        pods = []
        for uid in reversed(self._turned_away):  # newest first
            pod, when = self._turned_away[uid]
            if when < since:
                break
            pods.append(pod)
        for pod in pods:
            del self._turned_away[pod.uid]
        if pods:
            self.notifier.nudge(pods)

    def _bound_changed(self, uid: str, node: str) -> None:
        """A pod left its node: kube-scheduler retries its unschedulable pods on that event,
        maybe before muster's watch has seen it, so the ones turned away lately are retried
        once more (else they wait out the scheduler's 60 s unschedulable timeout)."""
        if not node and self._turned_away:
            self._retry_turned_away(since=self.clock() - STALE_VIEW_SECONDS)

    def _judge(
        self,
        pod: model.Pod,
        node_names: Sequence[str],
        node_objects: Mapping[str, model.Node] | None,
    ) -> FilterOutcome:
        if node_objects is not None:  # never cached: the objects are the request's

            def judge_object(name: str) -> predicates.Rejection | None:
                return predicates.check(pod, node_objects[name], self._used(name))

            return predicates.sort(node_names, judge_object)
        nodes = self.state.nodes

        def judge(name: str) -> predicates.Rejection | None:
            state = nodes[name]
            return predicates.check(pod, state.node, state.used)

        signature = self._signature(pod)
        if signature is None or self.cache is None:
            return predicates.sort(node_names, judge)
        names = node_names if isinstance(node_names, list) else list(node_names)
        return self.cache.filter(signature, names, judge, view=self.state)

    # -- prioritize -------------------------------------------------------------------------

    def prioritize(
        self,
        pod: model.Pod,
        node_names: Sequence[str],
        *,
        node_objects: Mapping[str, model.Node] | None = None,
    ) -> scoring.Scores:
        """Score each node 0..10 with the configured strategy (names as in ``filter``)."""
        self._require_ready()
        pod = self.admission.constrain(pod)  # the same cache entry as its filter call
        strategy, requests = self.settings.scoring, pod.requests
        if node_objects is not None:
            return scoring.Scores(
                node_names,
                [
                    scoring.score(strategy, requests, node_objects[name], self._used(name))
                    for name in node_names
                ],
            )
        nodes = self.state.nodes

        def score(name: str) -> int:
            state = nodes[name]
            return scoring.score(strategy, requests, state.node, state.used)

        signature = self._signature(pod)
        try:
            if signature is None or self.cache is None:
                return scoring.Scores(node_names, list(map(score, node_names)))
            return self.cache.scores(signature, node_names, score, view=self.state)
        except (KeyError, TypeError):
            self._check_names(node_names)
            raise

    # -- bind -------------------------------------------------------------------------------

    def _pod_for_bind(self, namespace: str, name: str, uid: str) -> model.Pod:
        """The pod a bind names, which must be the very pod (uid) muster knows by that name,
        of a scheduler muster serves.  Refusals never tell a caller the real uid."""
        key = f"{namespace}/{name}"
        if not uid:
            raise BindError(f"pod {key}: PodUID is required")
        if uid in self._deleted:
            raise BindError(f"pod {key} is deleted")
        known = self.state.pods_by_key.get(key)
        if known is not None:
            if known.uid != uid:
                raise BindError(f"pod {key}: PodUID {uid} does not match the pod of that name")
            pod = known
        else:
            seen = self._seen.get(uid)
            found = seen[1] if seen is not None else self.gangs.member(uid)
            if found is None or found.key != key:
                raise BindError(f"pod {key} (uid {uid}) is unknown to the extender")
            pod = found
        if pod.scheduler_name not in self.settings.scheduler_names:
            raise BindError(
                f"pod {key} is for scheduler {pod.scheduler_name!r}, which muster does not "
                f"serve (--scheduler-names)"
            )
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
        # 1. re-check the fit: the scheduler filters the next pod before this bind arrives, so
        #    two pods may have passed muster's filter on the same last free room;
        state = self.state.nodes[node_name]
        misfit = predicates.check(self.admission.constrain(pod), state.node, state.used)
        if misfit is not None:
            metrics.binds.labels("refused").inc()
            self._turn_away(pod)
            raise BindError(f"pod {pod.key} no longer fits {node_name}: {misfit.reason}")
        # 2. account the pod at once so the next filter sees the node fuller;
        self.state.assume(pod, node_name)
        # 3. create the binding; 4. undo the accounting if that failed.  Shielded: a scheduler
        #    that hangs up does not leave the accounting half done.
        await asyncio.shield(self._bind_one(pod, node_name))

    async def _bind_one(self, pod: model.Pod, node_name: str) -> None:
        try:
            await self.binder.bind(pod, node_name)
        except Exception as exc:
            self.state.forget(pod.uid)
            if isinstance(exc, NotFound) and pod.uid not in self.state.pods:
                self.remove_pod(pod)  # known only from the wire, and it does not exist
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
