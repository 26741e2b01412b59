"""The admission ledger: the queue configuration in force, the quota book built on it, every
admitted workload and what each of its pods is charged.

Kueue keeps this in its cache (``pkg/cache``): admissions are recorded pod by pod, so a pod
that finishes or goes away gives its share back at once (dynamic reclaim), and a new
configuration is put in force without forgetting what is charged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from extender.core import admission_cycle, kueue, model, quota


@dataclass(slots=True)
class Charge:
    cluster_queue: str
    workload: model.WorkloadKey
    usage: quota.Usage


@dataclass(slots=True)
class Admission:
    """An admitted workload."""

    key: model.WorkloadKey
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


class Ledger:
    def __init__(self) -> None:
        self.config = kueue.QueueConfig()
        self.book = quota.QuotaBook(self.config)
        self.charges: dict[str, Charge] = {}
        """uid -> what the pod is charged."""
        self.admissions: dict[model.WorkloadKey, Admission] = {}

    def configure(self, config: kueue.QueueConfig) -> None:
        """Put a new configuration in force; usage already charged stays charged."""
        self.config = config
        self.book = quota.QuotaBook(config)
        for charge in self.charges.values():
            self.book.add(charge.cluster_queue, charge.usage)

    def admission_of(self, uid: str) -> Admission | None:
        charge = self.charges.get(uid)
        return self.admissions.get(charge.workload) if charge is not None else None

    def admit(
        self,
        workload: admission_cycle.Workload,
        cluster_queue: str,
        assignment: quota.Assignment,
        *,
        now: float,
    ) -> tuple[Admission, bool]:
        """Record an admission (or an admitted workload's growth: True) pod by pod."""
        key = workload.key.admitted
        grown = key in self.admissions
        admission = self.admissions.get(key)
        if admission is None:
            admission = self.admissions[key] = Admission(
                key=key,
                namespace=workload.namespace,
                local_queue=workload.queue,
                cluster_queue=cluster_queue,
                flavors=assignment.flavors,
                priority=workload.priority,
                created=workload.created,
                admitted_at=now,
            )
        cq = self.config.cluster_queues[cluster_queue]
        for pod in workload.pods:
            self._charge(admission, pod, cq)
        return admission, grown

    def admit_bound(
        self,
        pod: model.Pod,
        key: model.WorkloadKey,
        *,
        local_queue: str,
        node_labels: Mapping[str, str],
        priority: int,
        now: float,
    ) -> None:
        """A bound pod that was never admitted here (a restart, or bound by another
        scheduler): charge it in the flavor its node carries, so quota reflects what runs."""
        local = self.config.local_queues.get((pod.namespace, local_queue))
        cq = self.config.cluster_queues.get(local.cluster_queue) if local else None
        if local is None or cq is None:
            return
        flavors: dict[str, str] = {}
        for group in cq.resource_groups:
            matching = [
                fq.flavor
                for fq in group.flavors
                if (f := self.config.flavors.get(fq.flavor)) is not None
                and all(node_labels.get(k) == v for k, v in f.node_labels.items())
            ]
            chosen = matching[0] if matching else group.flavors[0].flavor
            flavors.update(dict.fromkeys(group.covered, chosen))
        admission = self.admissions.get(key)
        if admission is None:
            admission = self.admissions[key] = Admission(
                key=key,
                namespace=pod.namespace,
                local_queue=local.name,
                cluster_queue=cq.name,
                flavors=flavors,
                priority=priority,
                created=pod.created,
                admitted_at=now,
            )
        self._charge(admission, pod, cq)

    def _charge(self, admission: Admission, pod: model.Pod, cq: kueue.ClusterQueue) -> None:
        usage = quota.pod_usage(cq, pod, admission.flavors)
        self.charges[pod.uid] = Charge(cq.name, admission.key, usage)
        self.book.add(cq.name, usage)
        admission.pods.add(pod.uid)

    def release(self, uid: str) -> tuple[Charge, Admission | None] | None:
        """Give back what a pod was charged; the admission it belonged to, if any, stays
        recorded until its last pod is released (then ``discard``)."""
        charge = self.charges.pop(uid, None)
        if charge is None:
            return None
        self.book.remove(charge.cluster_queue, charge.usage)
        admission = self.admissions.get(charge.workload)
        if admission is not None:
            admission.pods.discard(uid)
        return charge, admission

    def discard(self, key: model.WorkloadKey) -> None:
        del self.admissions[key]

    def usage(self, admission: Admission) -> dict[quota.FlavorResource, int]:
        total: dict[quota.FlavorResource, int] = {}
        for uid in admission.pods:
            charge = self.charges.get(uid)
            if charge is not None:
                for fr, amount in charge.usage.items():
                    total[fr] = total.get(fr, 0) + amount
        return total

    def running(self) -> list[quota.Admitted]:
        """The admitted workloads preemption may choose from (none while no ClusterQueue
        preempts: building them costs O(admitted pods))."""
        preemptive = any(
            cq.within_cluster_queue is not kueue.WithinClusterQueue.NEVER
            or (cq.cohort and cq.reclaim_within_cohort is not kueue.ReclaimWithinCohort.NEVER)
            for cq in self.config.cluster_queues.values()
        )
        if not preemptive:
            return []
        return [
            quota.Admitted(
                key=a.key,
                cluster_queue=a.cluster_queue,
                priority=a.priority,
                created=a.created,
                admitted_at=a.admitted_at,
                usage=self.usage(a),
            )
            for a in self.admissions.values()
            if not a.evicting
        ]
