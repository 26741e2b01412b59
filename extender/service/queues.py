"""Queue admission: which workloads may run under the ClusterQueues' quota, and in what order.

The ``QueueManager`` owns the queue configuration, the quota book, the admitted workloads and
the pods they are charged for.  Pods carrying ``kueue.x-k8s.io/queue-name`` are *queued*: filter
rejects them (unresolvable, with the numbers and their place in line) until their workload is
admitted, then passes them with the flavor's node labels added to their nodeSelector and its
tolerations added, exactly as Kueue injects them.  Usage is charged per pod from admission
until the pod finishes or is deleted.  After a restart, bound queued pods are charged again in
the flavor their node belongs to, so a restart never over-admits.  Pods without the label
bypass quota.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extender import metrics
from extender.core import gang, lifecycle, model, queueing, queues, quota
from extender.service.gangs import GangCoordinator
from extender.service.ports import Clock, Evictor, Notifier
from extender.service.workloads import Lifecycles

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Charge:
    cluster_queue: str
    workload: str
    usage: quota.Usage


@dataclass(slots=True)
class Admission:
    """An admitted workload."""

    key: str
    namespace: str
    local_queue: str
    cluster_queue: str
    flavors: Mapping[str, str]
    priority: int
    created: float
    admitted_at: float
    pods: set[str] = field(default_factory=set)
    """uids of the pods charged to it."""
    evicting: str = ""
    """Why it is being evicted (preempted, drained); empty while it runs."""
    finished: int = 0
    """Pods that finished (succeeded or failed) while it was admitted."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A queued pod's filter verdict: pass ``pod`` (with its flavor's constraints), or reject
    every node with ``reason``."""

    pod: model.Pod
    reason: str = ""


SLICE_SUFFIX = "#grown"
"""Marks the pending workload of the pods an admitted elastic Job added."""


_PREEMPTION_CAUSES = {
    quota.PreemptionReason.IN_CLUSTER_QUEUE: "within its ClusterQueue",
    quota.PreemptionReason.IN_COHORT_RECLAMATION: "to reclaim quota lent to the cohort",
    quota.PreemptionReason.IN_COHORT_RECLAIM_WHILE_BORROWING: (
        "while borrowing from the cohort (borrowWithinCohort)"
    ),
}


def _elastic(pod: model.Pod) -> bool:
    return pod.annotations.get(lifecycle.ELASTIC_ANNOTATION, "").lower() == "true"


def _fold(text: str) -> str:
    """A reason with its numbers masked, so changing counts do not repeat an Event."""
    return re.sub(r"\d+", "#", text)


class QueueManager:
    def __init__(
        self,
        *,
        gangs: GangCoordinator,
        notifier: Notifier,
        evictor: Evictor | None,
        node_labels: Callable[[str], Mapping[str, str] | None],
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        replicate_labels: tuple[str, ...] = (),
    ) -> None:
        self.gangs = gangs
        self.notifier = notifier
        self.evictor = evictor
        self.node_labels = node_labels
        self.clock = clock
        self.config = queues.QueueConfig()
        self.book = quota.QuotaBook(self.config)
        self.pods: dict[str, model.Pod] = {}
        """Queued pods that are alive (not finished, not being deleted), by uid."""
        self.charges: dict[str, Charge] = {}
        self.admissions: dict[str, Admission] = {}
        self.pending: dict[str, queueing.Pending] = {}
        self.unqueued: dict[str, str] = {}
        """Workloads that cannot be queued yet (no quorum, unknown queue ...) and why."""
        self.namespaces: dict[str, Mapping[str, str]] = {}
        self._workload_of: dict[str, str] = {}
        """uid -> the pending workload a pod waits in (for ``explain``)."""
        self._record_of: dict[str, str] = {}
        """uid -> the lifecycle record a pod belongs to."""
        self._preemptors: dict[str, set[str]] = {}
        """Preemptor workload -> victim workloads still being evicted."""
        self._effective: dict[str, tuple[model.Pod, model.Pod]] = {}
        self._told: dict[str, str] = {}
        self._uncharged: dict[str, model.Pod] = {}
        """Queued pods not charged yet: the only ones a cycle has to look at."""
        self._arrivals: set[str] = set()
        """Pods seen since the last cycle, when nothing else changed (the fast path)."""
        self._full = False
        """Something besides arrivals changed: the next cycle looks at everything."""
        self._line_lengths: dict[str, int] = {}
        self._line_ends: dict[str, tuple[int, float, str]] = {}
        """Per ClusterQueue: how many workloads wait, and the queue order of the last one."""
        self._dirty = False
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.config_error = ""
        """Why the last change of the configuration source was rejected (empty: none)."""
        self.lifecycle = Lifecycles(
            notifier=notifier,
            evict=self._evict,
            changed=self._changed,
            wall=wall,
            replicate_labels=replicate_labels,
        )
        metrics.queues.reading = self.reading

    # -- configuration and namespaces -------------------------------------------------------

    def configure(self, config: queues.QueueConfig) -> None:
        """Put a new configuration in force; usage already charged stays charged."""
        self.config = config
        self.lifecycle.policy = config.wait_for_pods_ready
        self.book = quota.QuotaBook(config)
        for charge in self.charges.values():
            self.book.add(charge.cluster_queue, charge.usage)
        self._changed()

    def config_rejected(self, error: str) -> None:
        """The configuration source rejected a change (``error``), or accepted one ("")."""
        self.config_error = error

    def set_namespaces(self, namespaces: Iterable[model.Namespace]) -> None:
        """A fresh list of namespaces (after a relist)."""
        self.namespaces = {ns.name: ns.labels for ns in namespaces}
        self._changed()

    def set_namespace(self, namespace: model.Namespace) -> None:
        if self.namespaces.get(namespace.name) != namespace.labels:
            self.namespaces[namespace.name] = namespace.labels
            self._changed()

    def delete_namespace(self, name: str) -> None:
        self.namespaces.pop(name, None)

    def _namespace_labels(self, name: str) -> Mapping[str, str]:
        labels = self.namespaces.get(name)
        if labels is None:
            return {queues.NAMESPACE_NAME_LABEL: name}
        return {queues.NAMESPACE_NAME_LABEL: name, **labels}

    # -- pods from the watch ----------------------------------------------------------------

    @staticmethod
    def queue_of(pod: model.Pod) -> str:
        return pod.labels.get(queues.QUEUE_LABEL, "")

    def observe(self, pod: model.Pod) -> None:
        """A pod's latest state (watch, relist or filter call)."""
        if not self.queue_of(pod):
            if pod.uid in self.pods:
                self.forget(pod.uid)
            return
        if pod.terminated or pod.deleting:
            self.forget(pod.uid, finished=pod.terminated)
            return
        known = self.pods.get(pod.uid)
        if known is not None and (
            known is pod
            or (pod.resource_version and known.resource_version == pod.resource_version)
        ):
            return  # this version was seen already (the watch, then the filter call)
        self.pods[pod.uid] = pod
        if pod.uid not in self.charges:
            self._uncharged[pod.uid] = pod
        if known is None:
            self._arrivals.add(pod.uid)
            self._changed(full=False)
        if pod.node_name and pod.uid not in self.charges:
            self._charge_bound(pod)
        key = self._lifecycle_key(pod)
        self._record_of[pod.uid] = key
        self.lifecycle.observe(key, pod, admitted=pod.uid in self.charges)
        if key.startswith("gang/"):
            workload = self.gangs.workloads.get((pod.namespace, key.split("/")[2]))
            if workload is not None:
                self.lifecycle.workload_object(key, workload.active)

    def workload_changed(self, workload: gang.Workload) -> None:
        """A Workload object changed (its ``spec.active`` may have)."""
        prefix = f"gang/{workload.namespace}/{workload.name}/"
        for key in [k for k in self.lifecycle.records if k.startswith(prefix)]:
            self.lifecycle.workload_object(key, workload.active)

    def _lifecycle_key(self, pod: model.Pod) -> str:
        """The record a pod belongs to: its admission's, else the workload it would join."""
        charge = self.charges.get(pod.uid)
        return charge.workload if charge is not None else self._workload_key(pod)

    def forget(self, uid: str, *, finished: bool = False) -> None:
        """A queued pod finished (``finished``) or is gone: release what it was charged (at
        once, so waiting workloads start sooner: Kueue's dynamic reclaim)."""
        self.pods.pop(uid, None)
        self._uncharged.pop(uid, None)
        self._arrivals.discard(uid)
        self._effective.pop(uid, None)
        self._told.pop(uid, None)
        self._workload_of.pop(uid, None)
        key = self._record_of.pop(uid, None)
        charge = self.charges.pop(uid, None)
        if charge is not None:
            self.book.remove(charge.cluster_queue, charge.usage)
            admission = self.admissions.get(charge.workload)
            if finished:
                self.lifecycle.finished_pod(charge.workload)
                if admission is not None:
                    admission.finished += 1
            elif charge.workload.startswith("job/") and admission and not admission.evicting:
                self.lifecycle.shrank(charge.workload)
            if admission is not None:
                admission.pods.discard(uid)
                if not admission.pods:
                    del self.admissions[charge.workload]
                    self._victim_gone(charge.workload)
                    self.lifecycle.released(
                        charge.workload, finished=admission.finished > 0 and not admission.evicting
                    )
        if key is not None:
            self.lifecycle.gone(key, uid)
        self._changed()

    def _charge_bound(self, pod: model.Pod) -> None:
        """A bound pod that was never admitted here (a restart, or bound by another scheduler):
        charge it in the flavor its node carries, so quota reflects what runs."""
        local = self.config.local_queues.get((pod.namespace, self.queue_of(pod)))
        cq = self.config.cluster_queues.get(local.cluster_queue) if local else None
        if local is None or cq is None:
            return
        labels = self.node_labels(pod.node_name) or {}
        flavors: dict[str, str] = {}
        for group in cq.resource_groups:
            matching = [
                fq.flavor
                for fq in group.flavors
                if (f := self.config.flavors.get(fq.flavor)) is not None
                and all(labels.get(k) == v for k, v in f.node_labels.items())
            ]
            chosen = matching[0] if matching else group.flavors[0].flavor
            flavors.update(dict.fromkeys(group.covered, chosen))
        key = self._workload_key(pod)
        admission = self.admissions.get(key)
        if admission is None:
            admission = self.admissions[key] = Admission(
                key=key,
                namespace=pod.namespace,
                local_queue=local.name,
                cluster_queue=cq.name,
                flavors=flavors,
                priority=self._priority(pod)[0],
                created=pod.created,
                admitted_at=self.clock(),
            )
        self._charge(admission, pod, cq)

    def _charge(self, admission: Admission, pod: model.Pod, cq: queues.ClusterQueue) -> None:
        usage = quota.pod_usage(cq, pod, admission.flavors)
        self.charges[pod.uid] = Charge(cq.name, admission.key, usage)
        self._uncharged.pop(pod.uid, None)
        self.book.add(cq.name, usage)
        admission.pods.add(pod.uid)

    # -- workloads --------------------------------------------------------------------------

    def _workload_key(self, pod: model.Pod) -> str:
        if pod.owner is not None and pod.owner[0] == "Job" and _elastic(pod):
            return f"job/{pod.namespace}/{pod.owner[1]}"
        member = gang.membership(pod)
        if member is not None:
            group = self.gangs.groups.get(member.key)
            # A group not decided yet (its Workload or minCount unknown) is a gang until it is
            # known not to be one: its pods wait together, never admitted alone.
            if group is not None and (group.policy.is_gang or group.policy.missing):
                key = f"gang/{member.key}"
                admission = self.admissions.get(key)
                # Members arriving after their gang was admitted are admitted one by one;
                # replacements arriving while it is evicted wait for its next admission.
                if admission is None or admission.evicting or pod.uid in admission.pods:
                    return key
        return f"pod/{pod.key}"

    def _priority(self, pod: model.Pod) -> tuple[int, str]:
        """The pod's workload priority and, when it names a missing class, why it waits."""
        name = pod.labels.get(queues.PRIORITY_CLASS_LABEL)
        if name is None:
            return pod.priority, ""
        wpc = self.config.priority_classes.get(name)
        if wpc is None:
            return 0, f"WorkloadPriorityClass {name} not found"
        return wpc.value, ""

    def _workloads(self, only: set[str] | None = None) -> list[queueing.Workload]:
        """Every pending workload from the queued pods not yet charged (or only the ones
        ``only`` pods belong to); records why the ones that cannot be queued yet wait."""
        grouped: dict[str, list[model.Pod]] = {}
        for pod in self._uncharged.values():
            grouped.setdefault(self._workload_key(pod), []).append(pod)
        if only is not None:
            wanted = {self._workload_key(self.pods[uid]) for uid in only if uid in self.pods}
            grouped = {k: v for k, v in grouped.items() if k in wanted}
        else:
            self.unqueued = {}
        out = []
        for key, pods in grouped.items():
            first = min(pods, key=lambda p: (p.created, p.name))
            pending_key = f"{key}{SLICE_SUFFIX}" if key in self.admissions else key
            for pod in pods:
                self._workload_of[pod.uid] = pending_key
            why = ""
            if key.startswith("gang/"):
                member = gang.membership(first)
                group = self.gangs.groups.get(member.key) if member else None
                if group is None or group.policy.missing:
                    why = f"waiting for gang: {group.policy.missing if group else 'unknown'}"
                elif len(pods) + len(self._admitted_members(key)) < group.policy.min_count:
                    why = f"waiting for gang {group.key}: {len(pods)}/{group.policy.min_count} pods"
            priorities = [self._priority(p) for p in pods]
            why = why or next((w for _, w in priorities if w), "")
            if not why and any(p.requests_pods for p in pods):
                why = (
                    f"pod {next(p.key for p in pods if p.requests_pods)} requests the reserved "
                    "resource pods; the queue counts pods itself"
                )
            if (
                not why
                and key.startswith("job/")
                and lifecycle.MIN_PARALLELISM_ANNOTATION in (first.annotations)
            ):
                why = (
                    f"an elastic Job ({lifecycle.ELASTIC_ANNOTATION}) cannot use partial "
                    f"admission ({lifecycle.MIN_PARALLELISM_ANNOTATION}): remove one of them"
                )
            why = why or self.lifecycle.holds(key)
            evicted = self.admissions.get(key)
            if not why and evicted is not None and evicted.evicting:
                why = f"waiting until the pods of {key}, being evicted, are gone"
            if why:
                self.unqueued[pending_key] = why
                continue
            self.unqueued.pop(pending_key, None)
            admission = self.admissions.get(key)
            # An admitted elastic Job that grew: a new slice for the added pods, in the
            # flavors the workload already has.
            out.append(
                queueing.Workload(
                    key=pending_key,
                    namespace=first.namespace,
                    queue=self.queue_of(first),
                    priority=max(p for p, _ in priorities),
                    created=first.created,
                    pods=tuple(sorted(pods, key=lambda p: (p.created, p.name))),
                    pinned=admission.flavors if admission else {},
                )
            )
        return out

    def _admitted_members(self, key: str) -> set[str]:
        admission = self.admissions.get(key)
        return admission.pods if admission else set()

    # -- the admission cycle ----------------------------------------------------------------

    def _changed(self, *, full: bool = True) -> None:
        """Something that can change a decision happened: run a cycle soon.  ``full=False``:
        only new pods arrived, which the fast path can judge on their own."""
        self._dirty = True
        self._full = self._full or full
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (sync tests): the next filter call runs the cycle
        self._scheduled = True
        loop.call_soon(self._soon)

    def _soon(self) -> None:
        self._scheduled = False
        if self._dirty:
            self.run_cycle()

    def run_cycle(self, *, current: model.Pod | None = None) -> None:
        """Admit what fits, start the preemptions that make room, drain stopped queues."""
        self._dirty = False
        started = time.perf_counter()
        arrivals, self._arrivals = self._arrivals, set()
        if not self._full and self._admit_arrivals(arrivals, current):
            metrics.queue_cycle_seconds.observe(time.perf_counter() - started)
            return
        self._full = False
        self._drain()
        preemptive = any(
            cq.within_cluster_queue is not queues.WithinClusterQueue.NEVER
            or (cq.cohort and cq.reclaim_within_cohort is not queues.ReclaimWithinCohort.NEVER)
            for cq in self.config.cluster_queues.values()
        )
        admitted = (
            []
            if not preemptive
            else [
                quota.Admitted(
                    key=a.key,
                    cluster_queue=a.cluster_queue,
                    priority=a.priority,
                    created=a.created,
                    admitted_at=a.admitted_at,
                    usage=self._usage(a),
                )
                for a in self.admissions.values()
                if not a.evicting
            ]
        )
        waiting = {key: len(victims) for key, victims in self._preemptors.items() if victims}
        previous_unqueued = self.unqueued
        pending = self._workloads()
        decisions = queueing.cycle(
            pending,
            config=self.config,
            book=self.book,
            admitted=admitted,
            namespace_labels=self._namespace_labels,
            waiting_for_victims=waiting,
        )
        metrics.queue_cycle_seconds.observe(time.perf_counter() - started)
        nudge: list[model.Pod] = []
        for workload, cq_name, assignment in decisions.admitted:
            # The cycle charged the whole workload; record it pod by pod.
            self.book.remove(cq_name, assignment.usage)
            self._admit(workload, cq_name, assignment, current=current, nudge=nudge)
        for preemptor, targets in decisions.preemptions:
            self._preemptors[preemptor.key] = {t.victim.key for t in targets}
            for victim, why in targets:
                message = (
                    f"preempted to admit {preemptor.key} (priority {preemptor.priority}) "
                    f"{_PREEMPTION_CAUSES[why]}"
                )
                self._evict(victim.key, message)
                self.lifecycle.evicted(
                    victim.key, lifecycle.Reason.PREEMPTED, message, preempted=why
                )
                metrics.queue_preemptions.labels(victim.cluster_queue).inc()
        previous, self.pending = self.pending, decisions.pending
        order = {w.key: w.order() for w in pending}
        self._line_lengths, self._line_ends = {}, {}
        for key, waiting_now in decisions.pending.items():
            if waiting_now.position:
                name = waiting_now.cluster_queue
                self._line_lengths[name] = self._line_lengths.get(name, 0) + 1
                self._line_ends[name] = max(self._line_ends.get(name, order[key]), order[key])
        changed = {
            key
            for key, waiting in decisions.pending.items()
            if key not in previous or previous[key].reason != waiting.reason
        }
        changed.update(k for k, why in self.unqueued.items() if previous_unqueued.get(k) != why)
        for pod in self._pods_of(changed):
            self._tell_pending(pod)
        if nudge:
            self.notifier.nudge(nudge)

    def _admit_arrivals(self, arrivals: set[str], current: model.Pod | None) -> bool:
        """The fast path when only new pods arrived since the last cycle: nothing was freed,
        so what waited still waits, and each new workload can be judged on its own, in order.
        Returns False (a full cycle is needed) when a new workload would go ahead of one
        already waiting, or would need preemption."""
        if not arrivals:
            return True
        workloads = sorted(self._workloads(only=arrivals), key=queueing.Workload.order)
        lines = self._line_lengths
        last = self._line_ends
        nudge: list[model.Pod] = []
        for workload in workloads:
            if workload.key in self.pending:
                continue  # it waits already; more pods make it no likelier to fit
            cq, why = queueing.route(
                workload, self.config, self._namespace_labels(workload.namespace)
            )
            if cq is None:
                local = self.config.local_queues.get((workload.namespace, workload.queue))
                self.pending[workload.key] = queueing.Pending(
                    local.cluster_queue if local else "", why
                )
                continue
            behind = last.get(cq.name)
            if behind is not None and workload.order() < behind:
                self._arrivals |= {p.uid for p in workload.pods}
                return False  # it goes ahead of someone: positions change
            count = lines.get(cq.name, 0)
            if count and cq.strategy is queues.QueueingStrategy.STRICT_FIFO:
                reason = "waiting behind an older workload (StrictFIFO)"
            else:
                choice = quota.assign(
                    cq, workload.requests, workload.pods, self.book, pinned=workload.pinned
                )
                if choice.mode is quota.Mode.FIT:
                    self._admit(workload, cq.name, choice, current=current, nudge=nudge)
                    continue
                if choice.mode is quota.Mode.PREEMPT and (
                    cq.within_cluster_queue is not queues.WithinClusterQueue.NEVER
                    or cq.reclaim_within_cohort is not queues.ReclaimWithinCohort.NEVER
                ):
                    self._arrivals |= {p.uid for p in workload.pods}
                    return False
                reason = choice.reason
            lines[cq.name] = count + 1
            last[cq.name] = workload.order()
            self.pending[workload.key] = queueing.Pending(cq.name, reason, count + 1, count + 1)
            for pod in workload.pods:
                self._tell_pending(pod)
        if nudge:
            self.notifier.nudge(nudge)
        return True

    def _admit(
        self,
        workload: queueing.Workload,
        cq_name: str,
        assignment: quota.Assignment,
        *,
        current: model.Pod | None,
        nudge: list[model.Pod],
    ) -> None:
        """Record an admission pod by pod (charging the book), tell the pods, and collect the
        ones to nudge (all but ``current``, which is being answered)."""
        now = self.clock()
        key = workload.key.removesuffix(SLICE_SUFFIX)
        grown = key in self.admissions
        admission = self.admissions.setdefault(
            key,
            Admission(
                key=key,
                namespace=workload.namespace,
                local_queue=workload.queue,
                cluster_queue=cq_name,
                flavors=assignment.flavors,
                priority=workload.priority,
                created=workload.created,
                admitted_at=now,
            ),
        )
        cq = self.config.cluster_queues[cq_name]
        for pod in workload.pods:
            self._charge(admission, pod, cq)
            self._record_of[pod.uid] = key
        if grown:
            self.lifecycle.grew(key, len(workload.pods))
        else:
            self.lifecycle.admitted(key, workload.namespace)
        self._preemptors.pop(workload.key, None)
        flavors = ", ".join(sorted(set(assignment.flavors.values()))) or "no flavor"
        message = f"admitted by ClusterQueue {cq_name} in {flavors}"
        for pod in workload.pods:
            self.notifier.event(pod, reason="QueueAdmitted", message=message)
            self._told.pop(pod.uid, None)
        nudge.extend(p for p in workload.pods if current is None or p.uid != current.uid)
        metrics.queue_admissions.labels(cq_name).inc()

    def _pods_of(self, keys: set[str]) -> list[model.Pod]:
        return [p for p in self._uncharged.values() if self._workload_of.get(p.uid) in keys]

    def _tell_pending(self, pod: model.Pod) -> None:
        reason = self.explain(pod)
        if reason and self._told.get(pod.uid) != _fold(reason):
            self._told[pod.uid] = _fold(reason)
            self.notifier.event(pod, reason="QueuePending", message=reason)

    def _usage(self, admission: Admission) -> dict[quota.FlavorResource, int]:
        total: dict[quota.FlavorResource, int] = {}
        for uid in admission.pods:
            charge = self.charges.get(uid)
            if charge is not None:
                for fr, amount in charge.usage.items():
                    total[fr] = total.get(fr, 0) + amount
        return total

    # -- eviction ---------------------------------------------------------------------------

    def _drain(self) -> None:
        """Evict the admitted workloads of queues stopped with ``HoldAndDrain``."""
        drain = queues.StopPolicy.HOLD_AND_DRAIN
        for admission in list(self.admissions.values()):
            if admission.evicting:
                continue
            cq = self.config.cluster_queues.get(admission.cluster_queue)
            local = self.config.local_queues.get((admission.namespace, admission.local_queue))
            if (cq is not None and cq.stop_policy is drain) or (
                local is not None and local.stop_policy is drain
            ):
                message = "drained: its queue is stopped with HoldAndDrain"
                self._evict(admission.key, message)
                self.lifecycle.evicted(admission.key, lifecycle.Reason.DRAINED, message)

    def _evict(self, key: str, reason: str) -> None:
        admission = self.admissions.get(key)
        if admission is None or admission.evicting:
            return
        admission.evicting = reason
        pods = [self.pods[uid] for uid in sorted(admission.pods) if uid in self.pods]
        for pod in pods:
            self.notifier.event(pod, reason="QueueEvicted", message=reason, warning=True)
        log.info("evicting workload %s (%d pods): %s", key, len(pods), reason)
        if self.evictor is None:
            return
        for pod in pods:
            task = asyncio.get_running_loop().create_task(self._evict_pod(pod, reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _evict_pod(self, pod: model.Pod, reason: str) -> None:
        assert self.evictor is not None
        try:
            await self.evictor.evict(pod, reason=reason)
        except Exception as exc:
            log.warning("eviction of %s failed: %s", pod.key, exc)

    def _victim_gone(self, key: str) -> None:
        for victims in self._preemptors.values():
            victims.discard(key)

    # -- filter -----------------------------------------------------------------------------

    def filter(self, pod: model.Pod) -> Verdict | None:
        """None for pods that bypass quota; else pass the admitted pod (constrained to its
        flavor) or reject it with why it waits."""
        if not self.queue_of(pod):
            return None
        self.observe(pod)
        if self._dirty:
            self.run_cycle(current=pod)
        charge = self.charges.get(pod.uid)
        if charge is None:
            return Verdict(pod, self.explain(pod) or f"queue {self.queue_of(pod)}: not admitted")
        admission = self.admissions.get(charge.workload)
        if admission is None:
            return Verdict(pod)
        if admission.evicting:
            return Verdict(pod, f"workload {admission.key} is being evicted: {admission.evicting}")
        return Verdict(self._constrained(pod, admission))

    def _constrained(self, pod: model.Pod, admission: Admission) -> model.Pod:
        """The pod with its flavors' node labels and tolerations added (cached per pod)."""
        cached = self._effective.get(pod.uid)
        if cached is not None and cached[0] is pod:
            return cached[1]
        selector = dict(pod.node_selector)
        tolerations = list(pod.tolerations)
        for name in sorted(set(admission.flavors.values())):
            flavor = self.config.flavors.get(name)
            if flavor is not None:
                selector.update(flavor.node_labels)
                tolerations.extend(t for t in flavor.tolerations if t not in tolerations)
        effective = dataclasses.replace(pod, node_selector=selector, tolerations=tuple(tolerations))
        self._effective[pod.uid] = (pod, effective)
        return effective

    def may_place(self, pod: model.Pod) -> bool:
        """Whether the pod may take capacity: it bypasses quota, or it is admitted."""
        return not self.queue_of(pod) or pod.uid in self.charges

    def constrain(self, pod: model.Pod) -> model.Pod:
        """A pod as placement must see it: with its admitted flavors' constraints."""
        charge = self.charges.get(pod.uid)
        admission = self.admissions.get(charge.workload) if charge else None
        return self._constrained(pod, admission) if admission else pod

    def explain(self, pod: model.Pod) -> str:
        """Why a queued pod waits, for its FailedScheduling message and Events."""
        queue = f"{pod.namespace}/{self.queue_of(pod)}"
        key = self._workload_of.get(pod.uid, "")
        if key in self.unqueued:
            return f"queue {queue}: {self.unqueued[key]}"
        pending = self.pending.get(key)
        if pending is None:
            return ""
        if not pending.position:
            return f"queue {queue}: {pending.reason}"
        return (
            f"queue {queue} -> {pending.cluster_queue}: {pending.reason}; "
            f"position {pending.position} of {pending.queued}"
        )

    # -- reporting --------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Every queue's usage, admitted workloads and pending workloads in order, with why."""
        config = self.config
        by_cq: dict[str, list[tuple[str, queueing.Pending]]] = {}
        for key, pending in self.pending.items():
            by_cq.setdefault(pending.cluster_queue, []).append((key, pending))
        out = []
        for cq in sorted(config.cluster_queues.values(), key=lambda c: c.name):
            usage = [
                {
                    "flavor": fr[0],
                    "resource": fr[1],
                    "used": (used := self.book.used(cq.name, fr)),
                    "nominal": q.nominal,
                    "borrowed": max(0, used - q.nominal),
                    "available": self.book.available(cq, fr),
                }
                for fr, q in quota.quotas(cq)
            ]
            waiting = sorted(by_cq.get(cq.name, []), key=lambda kp: kp[1].position or 1 << 30)
            out.append(
                {
                    "name": cq.name,
                    "cohort": cq.cohort,
                    "queueingStrategy": cq.strategy.value,
                    "stopPolicy": cq.stop_policy.value,
                    "usage": usage,
                    "admitted": sorted(
                        a.key for a in self.admissions.values() if a.cluster_queue == cq.name
                    ),
                    "pending": [
                        {"workload": key, "position": p.position, "reason": p.reason}
                        for key, p in waiting
                    ],
                }
            )
        return {
            "configError": self.config_error,
            "clusterQueues": out,
            "localQueues": [
                {
                    "namespace": lq.namespace,
                    "name": lq.name,
                    "clusterQueue": lq.cluster_queue,
                    "stopPolicy": lq.stop_policy.value,
                }
                for lq in sorted(config.local_queues.values(), key=lambda q: q.key)
            ],
            "notQueued": [{"workload": k, "reason": r} for k, r in sorted(self.unqueued.items())],
        }

    def reading(self) -> metrics.QueueReading:
        """Per ClusterQueue: pending and admitted workloads, usage and quota by flavor."""
        pending: dict[str, int] = {}
        for p in self.pending.values():
            if p.cluster_queue:
                pending[p.cluster_queue] = pending.get(p.cluster_queue, 0) + 1
        admitted: dict[str, int] = {}
        for a in self.admissions.values():
            admitted[a.cluster_queue] = admitted.get(a.cluster_queue, 0) + 1
        usage = [
            (cq.name, fr[0], fr[1], self.book.used(cq.name, fr), q.nominal)
            for cq in self.config.cluster_queues.values()
            for fr, q in quota.quotas(cq)
        ]
        names = sorted(self.config.cluster_queues)
        return metrics.QueueReading(
            pending={n: pending.get(n, 0) for n in names},
            admitted={n: admitted.get(n, 0) for n in names},
            usage=usage,
        )
