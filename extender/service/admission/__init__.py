"""Queue admission: which workloads may run under the ClusterQueues' quota, and in what order.

Pods carrying ``kueue.x-k8s.io/queue-name`` are *queued*: filter rejects them (unresolvable,
with the numbers and their place in line) until their workload is admitted, then passes them
with the flavor's node labels added to their nodeSelector and its tolerations added, exactly as
Kueue injects them.  Usage is charged per pod from admission until the pod finishes or is
deleted.  After a restart, bound queued pods are charged again in the flavor their node belongs
to, so a restart never over-admits.  Pods without the label bypass quota.

``QueueAdmission`` is the one entry point; the parts split the way Kueue splits them:

* ``pending``  — the queued pods, grouped into the workloads that wait (the queue manager);
* ``ledger``   — the configuration, the quota book, admissions and per-pod charges (the cache);
* ``cycle``    — the admission cycle in numbered phases, preemption and eviction (the
  scheduler);
* ``views``    — ``/debug/queues`` and the metrics, read-only;
* ``service.lifecycles`` — each workload's record and Kueue's rules after admission.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from extender import metrics
from extender.core import gang, kueue, model
from extender.service.admission import views
from extender.service.admission.cycle import AdmissionCycle
from extender.service.admission.ledger import Admission, Ledger
from extender.service.admission.pending import PendingPods, queue_of
from extender.service.lifecycles import Lifecycles
from extender.service.ports import Clock, Evictor, GangView, Notifier, Timers

__all__ = ["QueueAdmission", "Verdict", "queue_of"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A queued pod's filter verdict: pass ``pod`` (with its flavor's constraints), or reject
    every node with ``reason``."""

    pod: model.Pod
    reason: str = ""


class QueueAdmission:
    def __init__(
        self,
        *,
        gangs: GangView,
        notifier: Notifier,
        evictor: Evictor | None,
        node_labels: Callable[[str], Mapping[str, str] | None],
        timers: Timers,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        replicate_labels: tuple[str, ...] = (),
    ) -> None:
        self.gangs = gangs
        self.node_labels = node_labels
        self.clock = clock
        self.config_error = ""
        """Why the last change of the configuration source was rejected (empty: none)."""
        self.namespaces: dict[str, Mapping[str, str]] = {}
        self.ledger = Ledger()
        self.lifecycle = Lifecycles(
            notifier=notifier,
            evict=self._evict,
            changed=self._changed,
            timers=timers,
            wall=wall,
            replicate_labels=replicate_labels,
        )
        self.waiting = PendingPods(ledger=self.ledger, gangs=gangs, holds=self.lifecycle.holds)
        self.cycle = AdmissionCycle(
            ledger=self.ledger,
            waiting=self.waiting,
            lifecycle=self.lifecycle,
            notifier=notifier,
            evictor=evictor,
            namespace_labels=self._namespace_labels,
            timers=timers,
            clock=clock,
        )

    def _evict(self, key: model.WorkloadKey, reason: str) -> None:
        self.cycle.evict(key, reason)

    def _changed(self) -> None:
        self.cycle.changed()

    # -- configuration and namespaces -------------------------------------------------------

    @property
    def config(self) -> kueue.QueueConfig:
        return self.ledger.config

    def configure(self, config: kueue.QueueConfig) -> None:
        """Put a new configuration in force; usage already charged stays charged."""
        self.ledger.configure(config)
        self.lifecycle.policy = config.wait_for_pods_ready
        self.cycle.changed()

    def config_rejected(self, error: str) -> None:
        """The configuration source rejected a change (``error``), or accepted one ("")."""
        self.config_error = error

    def set_namespaces(self, namespaces: Iterable[model.Namespace]) -> None:
        """A fresh list of namespaces (after a relist)."""
        self.namespaces = {ns.name: ns.labels for ns in namespaces}
        self.cycle.changed()

    def set_namespace(self, namespace: model.Namespace) -> None:
        if self.namespaces.get(namespace.name) != namespace.labels:
            self.namespaces[namespace.name] = namespace.labels
            self.cycle.changed()

    def delete_namespace(self, name: str) -> None:
        self.namespaces.pop(name, None)

    def _namespace_labels(self, name: str) -> Mapping[str, str]:
        labels = self.namespaces.get(name)
        if labels is None:
            return {kueue.NAMESPACE_NAME_LABEL: name}
        return {kueue.NAMESPACE_NAME_LABEL: name, **labels}

    # -- pods and Workload objects from the watch ---------------------------------------------

    def observe(self, pod: model.Pod) -> None:
        """A pod's latest state (watch, relist or filter call)."""
        if not queue_of(pod):
            if pod.uid in self.waiting.pods:
                self.forget(pod.uid)
            return
        if pod.terminated or pod.deleting:
            self.forget(pod.uid, finished=pod.terminated)
            return
        record = self.waiting.pods.get(pod.uid)
        known = record.pod if record is not None else None
        if known is not None and (
            known is pod
            or (pod.resource_version and known.resource_version == pod.resource_version)
        ):
            return  # this version was seen already (the watch, then the filter call)
        if self.waiting.add(pod):
            self.cycle.changed(full=False)
        charges = self.ledger.charges
        if pod.node_name and pod.uid not in charges:
            self.ledger.admit_bound(
                pod,
                self.waiting.workload_key(pod),
                local_queue=queue_of(pod),
                node_labels=self.node_labels(pod.node_name) or {},
                priority=self.waiting.priority(pod)[0],
                now=self.clock(),
            )
            if pod.uid in charges:
                self.waiting.charged(pod.uid)
        charge = charges.get(pod.uid)
        key = charge.workload if charge is not None else self.waiting.workload_key(pod)
        self.lifecycle.observe(key, pod, admitted=charge is not None)
        if key.kind is model.WorkloadKind.GANG:
            workload = self.gangs.workload(key.namespace, key.name)
            if workload is not None:
                self.lifecycle.workload_object(key, workload.active)

    def workload_changed(self, workload: gang.Workload) -> None:
        """A Workload object changed (its ``spec.active`` may have)."""
        for key in list(self.lifecycle.records):
            if (key.kind, key.namespace, key.name) == (
                model.WorkloadKind.GANG,
                workload.namespace,
                workload.name,
            ):
                self.lifecycle.workload_object(key, workload.active)

    def forget(self, uid: str, *, finished: bool = False) -> None:
        """A queued pod finished (``finished``) or is gone: release what it was charged (at
        once, so waiting workloads start sooner: Kueue's dynamic reclaim)."""
        self.waiting.remove(uid)
        released = self.ledger.release(uid)
        if released is not None:
            charge, admission = released
            key = charge.workload
            if finished:
                self.lifecycle.finished_pod(key)
                if admission is not None:
                    admission.finished += 1
            elif key.kind is model.WorkloadKind.JOB and admission and not admission.evicting:
                self.lifecycle.shrank(key)
            if admission is not None and not admission.pods:
                self.ledger.discard(key)
                self.cycle.victim_gone(key)
                self.lifecycle.released(
                    key, finished=admission.finished > 0 and not admission.evicting
                )
        self.lifecycle.gone(uid)
        self.cycle.changed()

    # -- filter and placement -----------------------------------------------------------------

    def filter(self, pod: model.Pod) -> Verdict | None:
        """None for pods that bypass quota; else pass the admitted pod (constrained to its
        flavor) or reject it with why it waits."""
        if not queue_of(pod):
            return None
        self.observe(pod)
        if self.cycle.due:
            self.cycle.run(current=pod)
        if pod.uid not in self.ledger.charges:
            return Verdict(pod, self.cycle.explain(pod) or f"queue {queue_of(pod)}: not admitted")
        admission = self.ledger.admission_of(pod.uid)
        if admission is None:
            return Verdict(pod)
        if admission.evicting:
            return Verdict(pod, f"workload {admission.key} is being evicted: {admission.evicting}")
        return Verdict(self._constrained(pod, admission))

    def _constrained(self, pod: model.Pod, admission: Admission) -> model.Pod:
        """The pod with its flavors' node labels and tolerations added (kept on its record)."""
        record = self.waiting.pods.get(pod.uid)
        if record is not None and record.constrained is not None and record.constrained[0] is pod:
            return record.constrained[1]
        selector = dict(pod.node_selector)
        tolerations = list(pod.tolerations)
        flavors = self.ledger.config.flavors
        for name in sorted(set(admission.flavors.values())):
            flavor = flavors.get(name)
            if flavor is not None:
                selector.update(flavor.node_labels)
                tolerations.extend(t for t in flavor.tolerations if t not in tolerations)
        effective = dataclasses.replace(pod, node_selector=selector, tolerations=tuple(tolerations))
        if record is not None:
            record.constrained = (pod, effective)
        return effective

    def may_place(self, pod: model.Pod) -> bool:
        """Whether the pod may take capacity: it bypasses quota, or it is admitted."""
        return not queue_of(pod) or pod.uid in self.ledger.charges

    def constrain(self, pod: model.Pod) -> model.Pod:
        """A pod as placement must see it: with its admitted flavors' constraints."""
        admission = self.ledger.admission_of(pod.uid)
        return self._constrained(pod, admission) if admission else pod

    def run_cycle(self) -> None:
        self.cycle.run()

    # -- reporting --------------------------------------------------------------------------

    def explain(self, pod: model.Pod) -> str:
        return self.cycle.explain(pod)

    def describe(self) -> dict[str, Any]:
        return views.describe(self.ledger, self.cycle, self.waiting, self.config_error)

    def reading(self) -> metrics.QueueReading:
        return views.reading(self.ledger, self.cycle)
