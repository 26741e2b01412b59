"""Pending workloads: the queued pods that are alive, and which of them wait for quota,
grouped into the workloads the cycle admits whole (Kueue's queue manager).

A pod's workload is its elastic Job, its gang, or the pod alone (``workload_key``).  The ones
that cannot be queued yet (a gang short of its quorum, a missing WorkloadPriorityClass, a
workload held by a lifecycle rule ...) are kept in ``unqueued`` with the reason.  Pods seen
since the last cycle are ``arrivals``: the cycle's fast path looks at those alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from extender.core import admission_cycle, gang, kueue, lifecycle, model
from extender.service.admission.ledger import Ledger
from extender.service.ports import GangView


def queue_of(pod: model.Pod) -> str:
    """The LocalQueue a pod names (empty: it bypasses quota)."""
    return pod.labels.get(kueue.QUEUE_LABEL, "")


def _elastic(pod: model.Pod) -> bool:
    return pod.annotations.get(lifecycle.ELASTIC_ANNOTATION, "").lower() == "true"


@dataclass(slots=True, eq=False)
class QueuedPod:
    """Everything queue admission keeps about one queued pod, but its charge (the ledger's):
    forgetting the pod is deleting this record."""

    pod: model.Pod
    workload: model.WorkloadKey | None = None
    """The pending workload it waits in (set by each cycle that groups it)."""
    told: str = ""
    """The reason to wait last posted as an Event, its numbers masked."""
    constrained: tuple[model.Pod, model.Pod] | None = None
    """(a copy of the pod, that copy with its admitted flavors' node labels and tolerations):
    the last one made (filter and prioritize of one call ask with the same copy)."""


class PendingPods:
    def __init__(
        self,
        *,
        ledger: Ledger,
        gangs: GangView,
        holds: Callable[[model.WorkloadKey], str],
    ) -> None:
        self.ledger = ledger
        self.gangs = gangs
        self.holds = holds
        """Why a lifecycle rule keeps a workload from admission ("" when none does)."""
        self.pods: dict[str, QueuedPod] = {}
        """Queued pods that are alive (not finished, not being deleted), by uid."""
        self.uncharged: dict[str, model.Pod] = {}
        """Queued pods not charged yet: the only ones a cycle has to look at."""
        self.arrivals: set[str] = set()
        """Pods seen since the last cycle."""
        self.unqueued: dict[model.WorkloadKey, str] = {}
        """Workloads that cannot be queued yet and why."""

    def add(self, pod: model.Pod) -> bool:
        """A pod's latest state; returns whether it is new."""
        known = self.pods.get(pod.uid)
        if known is None:
            self.pods[pod.uid] = QueuedPod(pod)
            self.arrivals.add(pod.uid)
        else:
            known.pod = pod
        if pod.uid not in self.ledger.charges:
            self.uncharged[pod.uid] = pod
        return known is None

    def charged(self, uid: str) -> None:
        self.uncharged.pop(uid, None)

    def remove(self, uid: str) -> None:
        self.pods.pop(uid, None)
        self.uncharged.pop(uid, None)
        self.arrivals.discard(uid)

    def workload_of(self, uid: str) -> model.WorkloadKey | None:
        record = self.pods.get(uid)
        return record.workload if record is not None else None

    def take_arrivals(self) -> set[str]:
        arrivals, self.arrivals = self.arrivals, set()
        return arrivals

    def workload_key(self, pod: model.Pod) -> model.WorkloadKey:
        """The workload the pod is admitted with: its elastic Job, its gang, or itself."""
        if pod.owner is not None and pod.owner[0] == "Job" and _elastic(pod):
            return model.WorkloadKey(model.WorkloadKind.JOB, pod.namespace, pod.owner[1])
        member = gang.membership(pod)
        if member is not None:
            policy = self.gangs.policy(member.key)
            # A group not decided yet (its Workload or minCount unknown) is a gang until it is
            # known not to be one: its pods wait together, never admitted alone.
            if policy is not None and (policy.is_gang or policy.missing):
                key = member.key.workload_key
                admission = self.ledger.admissions.get(key)
                # Members arriving after their gang was admitted are admitted one by one;
                # replacements arriving while it is evicted wait for its next admission.
                if admission is None or admission.evicting or pod.uid in admission.pods:
                    return key
        return model.WorkloadKey(model.WorkloadKind.POD, pod.namespace, pod.name)

    def priority(self, pod: model.Pod) -> tuple[int, str]:
        """The pod's workload priority and, when it names a missing class, why it waits."""
        name = pod.labels.get(kueue.PRIORITY_CLASS_LABEL)
        if name is None:
            return pod.priority, ""
        wpc = self.ledger.config.priority_classes.get(name)
        if wpc is None:
            return 0, f"WorkloadPriorityClass {name} not found"
        return wpc.value, ""

    def workloads(self, only: set[str] | None = None) -> list[admission_cycle.Workload]:
        """Every pending workload from the queued pods not yet charged (or only the ones
        ``only`` pods belong to); records why the ones that cannot be queued yet wait."""
        grouped: dict[model.WorkloadKey, list[model.Pod]] = {}
        for pod in self.uncharged.values():
            grouped.setdefault(self.workload_key(pod), []).append(pod)
        if only is not None:
            wanted = {self.workload_key(self.pods[uid].pod) for uid in only if uid in self.pods}
            grouped = {k: v for k, v in grouped.items() if k in wanted}
        else:
            self.unqueued = {}
        admissions = self.ledger.admissions
        out = []
        for key, pods in grouped.items():
            pods.sort(key=lambda p: (p.created, p.name))
            admission = admissions.get(key)
            # An admitted elastic Job that grew: a new slice for the added pods, in the
            # flavors the workload already has.
            pending_key = key.growth if admission is not None else key
            for pod in pods:
                self.pods[pod.uid].workload = pending_key
            priorities = [self.priority(p) for p in pods]
            why = (
                self._short_of_quorum(key, pods)
                or next((w for _, w in priorities if w), "")
                or _refused(key, pods)
                or self.holds(key)
            )
            if not why and admission is not None and admission.evicting:
                why = f"waiting until the pods of {key}, being evicted, are gone"
            if why:
                self.unqueued[pending_key] = why
                continue
            self.unqueued.pop(pending_key, None)
            first = pods[0]
            out.append(
                admission_cycle.Workload(
                    key=pending_key,
                    namespace=first.namespace,
                    queue=queue_of(first),
                    priority=max(p for p, _ in priorities),
                    created=first.created,
                    pods=tuple(pods),
                    pinned=admission.flavors if admission else {},
                )
            )
        return out

    def _short_of_quorum(self, key: model.WorkloadKey, pods: list[model.Pod]) -> str:
        """Why a gang's pending pods cannot be queued yet ("" once they can)."""
        if key.kind is not model.WorkloadKind.GANG:
            return ""
        member = gang.membership(pods[0])
        policy = self.gangs.policy(member.key) if member else None
        if member is None or policy is None or policy.missing:
            return f"waiting for gang: {policy.missing if policy else 'unknown'}"
        admission = self.ledger.admissions.get(key)
        admitted = len(admission.pods) if admission else 0
        if len(pods) + admitted < policy.min_count:
            return f"waiting for gang {member.key}: {len(pods)}/{policy.min_count} pods"
        return ""


def _refused(key: model.WorkloadKey, pods: list[model.Pod]) -> str:
    """Why a workload's pods ask for something a queue cannot give ("" if they do not)."""
    offender = next((p for p in pods if p.requests_pods), None)
    if offender is not None:
        return (
            f"pod {offender.key} requests the reserved resource pods; the queue counts pods itself"
        )
    if (
        key.kind is model.WorkloadKind.JOB
        and lifecycle.MIN_PARALLELISM_ANNOTATION in pods[0].annotations
    ):
        return (
            f"an elastic Job ({lifecycle.ELASTIC_ANNOTATION}) cannot use partial "
            f"admission ({lifecycle.MIN_PARALLELISM_ANNOTATION}): remove one of them"
        )
    return ""
