"""The extender's use-cases: filter, prioritize, bind and preempt, over the cluster view.

``ExtenderService`` is built here, in one place, from its parts: the node judge
(``judging``), gang scheduling (``gangs``), queue admission (``admission``), the bind verb
(``binds``) and the memory of the scheduler's calls (``calls``).  It feeds them the cluster
(watches, or the simulation) and answers the scheduler's verbs.  It talks to the outside world
only through the ports (``ports``), so the same service runs on a live cluster (``kube/``), on
the simulated one (``simulation``) and under unit tests.  State changes are synchronous; the
only ``await`` is the binder's API call, and state is made consistent before and after it,
never across it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from extender import metrics
from extender.core import cluster, gang, model, scoring
from extender.core.predicates import FilterOutcome
from extender.service import admission, gangs
from extender.service.binds import Binds
from extender.service.calls import CalledPods
from extender.service.judging import NodeJudge
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
        wall: Clock = time.time,
        timers: Timers | None = None,
    ) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock
        self.timers: Timers = timers if timers is not None else LoopTimers()
        """The one owner of the deferred work of every part; ``close`` cancels it."""
        self.notifier = notifier or QuietNotifier()
        self.judge = NodeJudge(state=state, settings=settings)
        self.calls = CalledPods(remembered=settings.remembered_pods, clock=clock)
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
            wall=wall,
            replicate_labels=settings.replicate_labels,
        )
        self.binds = Binds(
            state=state,
            binder=binder,
            gangs=self.gangs,
            calls=self.calls,
            constrain=self.admission.constrain,
            scheduler_names=settings.scheduler_names,
            vanished=self.remove_pod,
        )
        state.on_bound_change(self._bound_changed)
        self._readiness_checks: list[Callable[[], str]] = []
        self._unhealthy_at = clock()

    def reading(self) -> metrics.ServiceReading:
        """What the metrics export about the service, read at scrape time."""
        counters, entries = self.judge.stats()
        return metrics.ServiceReading(
            nodes=len(self.state.nodes),
            pods=len(self.state.pods),
            synced=self.state.synced,
            gangs=self.gangs.phases(),
            cache=counters,
            cache_entries=entries,
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

    # -- readiness ----------------------------------------------------------------------------

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
        young = self.calls.keep_young(fresh, self.settings.tentative_seconds)
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
        self.calls.confirmed(pod.uid)
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
        self.calls.deleted(pod.uid)
        self.state.delete_pod(pod.uid)
        self._forget(pod.uid)

    def _forget(self, uid: str) -> None:
        """Drop a pod from every part: gangs, quota, the view's accounting, the calls."""
        self.gangs.forget(uid)
        self.admission.forget(uid)
        self.state.forget(uid)
        self.calls.forget(uid)

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
        turned_away = {pod.uid for pod in self.calls.take_turned_away()}
        pods = [
            pod
            for pod in self.state.pods.values()
            if not pod.node_name
            and not pod.terminated
            and not pod.deleting
            and pod.scheduler_name in served
            and (pod.unschedulable or pod.uid in turned_away)
        ]
        if pods:
            log.info("view synced: nudging %d pod(s) the scheduler could not place", len(pods))
            self.notifier.nudge(pods)

    def _retry_turned_away(self, since: float = float("-inf")) -> None:
        """Retry now the pods turned away for lack of room (since ``since``), not after the
        scheduler's unschedulable timeout.  Called when muster lets go capacity it held (a
        gang's reservation: no cluster event tells the scheduler) and, for recent rejections,
        when a pod leaves its node (``_bound_changed``)."""
        pods = self.calls.take_turned_away(since)
        if pods:
            self.notifier.nudge(pods)

    def _bound_changed(self, uid: str, node: str) -> None:
        """A pod left its node: kube-scheduler retries its unschedulable pods on that event,
        maybe before muster's watch has seen it, so the ones turned away lately are retried
        once more (else they wait out the scheduler's 60 s unschedulable timeout)."""
        if not node and self.calls.turned_away:
            self._retry_turned_away(since=self.clock() - STALE_VIEW_SECONDS)

    # -- lifetime and housekeeping (the app calls these) --------------------------------------

    def start(self) -> None:
        """Once the loop runs (the app's startup): the deferred work asked for while the
        service was built (before the loop ran) starts now."""
        self.timers.start()

    def close(self) -> None:
        """At shutdown: cancel the deferred work still pending (timers such as gang
        deadlines, PodsReady timeouts and the admission cycle asked for; tasks such as a
        gang's binds and queue evictions); none starts after."""
        self.timers.close()

    def housekeep(self) -> None:
        """Every second: drop pods known only from scheduler calls that a healthy watch never
        confirmed within ``tentative_seconds``: deleted before the watch saw them, or never
        real.  Not while the watch is failing (then it could confirm nothing)."""
        now = self.clock()
        if not self.ready:
            self._unhealthy_at = now
            return
        limit = now - self.settings.tentative_seconds
        if self._unhealthy_at > limit:
            return  # give the recovered watch the whole window
        for uid in self.calls.unconfirmed(limit):
            if uid not in self.state.pods:
                log.info("pod uid %s was never confirmed by the watch: dropped", uid)
                metrics.tentative_pods_expired.inc()
                self._forget(uid)

    # -- the verbs ------------------------------------------------------------------------------

    def pod_from_wire(self, raw: Mapping[str, object], *, spec_key: bytes = b"") -> model.Pod:
        """The request's Pod, converted once per version (see ``CalledPods.convert``)."""
        return self.calls.convert(raw, spec_key=spec_key)

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
        if self.calls.is_deleted(pod.uid):
            gone = f"pod {pod.key} is deleted"
            return FilterOutcome(unresolvable=dict.fromkeys(node_names, gone))
        if pod.uid not in self.state.pods:
            self.calls.called(pod.uid)
        if admission.queue_of(pod):
            # A queued gang member must be in its group before its workload is decided, or a
            # member the watch has not delivered yet would be admitted alone.
            self.gangs.observe(pod)
        verdict = self.admission.filter(pod)
        if verdict is not None and verdict.reason:
            if node_objects is None:
                self.judge.check_names(node_names)  # a waiting pod's answer names every node
            _FILTER_UNRESOLVABLE.inc(len(node_names))
            return FilterOutcome(unresolvable=dict.fromkeys(node_names, verdict.reason))
        if verdict is not None:
            pod = verdict.pod  # admitted: held to its flavors' nodes
        try:
            outcome = self.gangs.filter(pod, node_names)
            if outcome is None:
                outcome = self.judge.judge(pod, node_names, node_objects)
            elif node_objects is None:
                self.judge.check_names(node_names)
        except (KeyError, TypeError):
            if node_objects is None:
                self.judge.check_names(node_names)
            raise
        _FILTER_PASSED.inc(len(outcome.passed))
        _FILTER_FAILED.inc(len(outcome.failed))
        _FILTER_UNRESOLVABLE.inc(len(outcome.unresolvable))
        if outcome.passed or not outcome.failed:
            self.calls.placed(pod.uid)
        else:
            self.calls.turn_away(pod)
        return outcome

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
        return self.judge.scores(pod, node_names, node_objects)

    async def bind(self, *, namespace: str, name: str, uid: str, node_name: str) -> None:
        """Create the pod's binding (see ``service.binds``)."""
        self._require_ready()
        await self.binds.bind(namespace=namespace, name=name, uid=uid, node_name=node_name)

    def preempt(self, pod: model.Pod, candidates: Mapping[str, Victims]) -> dict[str, Victims]:
        """The scheduler's candidates, minus nodes whose victims would take only part of a
        gang: all bound members of a gang are victims, or none."""
        self._require_ready()
        return self.gangs.whole_gangs_only(candidates)
