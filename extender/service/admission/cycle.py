"""The admission cycle (Kueue's scheduler): decide which pending workloads are admitted, in
what order the rest wait and why, which admitted workloads are preempted or drained.

A cycle runs soon after anything that can change a decision (``changed`` asks the service's
``Timers`` for it), at most once per turn of the event loop, and at once when a filter call
finds one due.  Its phases:

1. build the pending workloads from the queued pods (all, or only the arrivals);
2. take what the quota book and the admitted workloads are now;
3. run the core cycle (``core.admission_cycle.cycle``): its fast path when only new pods arrived,
   else the full cycle;
4. apply its decisions: record admissions pod by pod in the ledger, start preemptions, tell
   the pods whose reason to wait changed;
5. evict: preemption victims and the workloads of queues stopped with ``HoldAndDrain``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping

from extender import metrics
from extender.core import admission_cycle, kueue, lifecycle, model, quota
from extender.service.admission.ledger import Admission, Ledger
from extender.service.admission.pending import PendingPods, queue_of
from extender.service.lifecycles import Lifecycles
from extender.service.ports import Clock, Evictor, Notifier, Timers

log = logging.getLogger(__name__)

_PREEMPTION_CAUSES = {
    quota.PreemptionReason.IN_CLUSTER_QUEUE: "within its ClusterQueue",
    quota.PreemptionReason.IN_COHORT_RECLAMATION: "to reclaim quota lent to the cohort",
    quota.PreemptionReason.IN_COHORT_RECLAIM_WHILE_BORROWING: (
        "while borrowing from the cohort (borrowWithinCohort)"
    ),
}


def _fold(text: str) -> str:
    """A reason with its numbers masked, so changing counts do not repeat an Event."""
    return re.sub(r"\d+", "#", text)


class AdmissionCycle:
    def __init__(
        self,
        *,
        ledger: Ledger,
        waiting: PendingPods,
        lifecycle: Lifecycles,
        notifier: Notifier,
        evictor: Evictor | None,
        namespace_labels: Callable[[str], Mapping[str, str]],
        timers: Timers,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.waiting = waiting
        self.lifecycle = lifecycle
        self.notifier = notifier
        self.evictor = evictor
        self.namespace_labels = namespace_labels
        self.timers = timers
        self.clock = clock
        self.pending: dict[model.WorkloadKey, admission_cycle.Pending] = {}
        """The last decisions about the workloads that wait, with their place in line."""
        self.lines: dict[str, admission_cycle.Line] = {}
        self._preemptors: dict[model.WorkloadKey, set[model.WorkloadKey]] = {}
        """Preemptor workload -> victim workloads still being evicted."""
        self._full = False
        """Something besides arrivals changed: the next cycle looks at everything."""
        self.due = False
        self._scheduled = False

    def changed(self, *, full: bool = True) -> None:
        """Something that can change a decision happened: run a cycle soon.  ``full=False``:
        only new pods arrived, which the fast path can judge on their own."""
        self.due = True
        self._full = self._full or full
        if self._scheduled:
            return
        self._scheduled = True
        self.timers.soon(self._soon)

    def _soon(self) -> None:
        self._scheduled = False
        if self.due:
            self.run()

    def victim_gone(self, key: model.WorkloadKey) -> None:
        for victims in self._preemptors.values():
            victims.discard(key)

    # -- the cycle ----------------------------------------------------------------------------

    def run(self, *, current: model.Pod | None = None) -> None:
        """Admit what fits, start the preemptions that make room, drain stopped queues.
        ``current``: the pod a filter call is answering (not nudged: it is being answered)."""
        self.due = False
        started = time.perf_counter()
        arrivals = self.waiting.take_arrivals()
        if not self._full:
            fast = self._arrivals(arrivals)
            if fast is not None:
                metrics.queue_cycle_seconds.observe(time.perf_counter() - started)
                self._apply(fast, current=current, merge=True)
                return
        self._full = False
        self._drain()  # 5 first: what is drained is no victim and frees no quota now
        previous_unqueued = self.waiting.unqueued
        decisions = admission_cycle.cycle(  # 1, 2, 3
            self.waiting.workloads(),
            config=self.ledger.config,
            book=self.ledger.book,
            admitted=self.ledger.running(),
            namespace_labels=self.namespace_labels,
            waiting_for_victims={k: len(v) for k, v in self._preemptors.items() if v},
        )
        assert decisions is not None  # only the fast path declines
        metrics.queue_cycle_seconds.observe(time.perf_counter() - started)
        changed = self._apply(decisions, current=current, merge=False)
        changed.update(
            k for k, why in self.waiting.unqueued.items() if previous_unqueued.get(k) != why
        )
        for pod in self._pods_of(changed):
            self._tell_pending(pod)

    def _arrivals(self, arrivals: set[str]) -> admission_cycle.Decisions | None:
        """The fast path's decisions, or None when the full cycle must decide."""
        if not arrivals:
            return admission_cycle.Decisions()
        new = [w for w in self.waiting.workloads(only=arrivals) if w.key not in self.pending]
        return admission_cycle.cycle(
            new,
            config=self.ledger.config,
            book=self.ledger.book,
            admitted=(),
            namespace_labels=self.namespace_labels,
            arrivals_after=self.lines,
        )

    def _apply(
        self, decisions: admission_cycle.Decisions, *, current: model.Pod | None, merge: bool
    ) -> set[model.WorkloadKey]:
        """Phase 4: record admissions, start preemptions, take the new line-up.  Returns the
        workloads whose reason to wait changed (the arrivals' pods are told here)."""
        nudge: list[model.Pod] = []
        for workload, cq_name, assignment in decisions.admitted:
            # The cycle charged the whole workload; the ledger records it pod by pod.
            self.ledger.book.remove(cq_name, assignment.usage)
            self._admit(workload, cq_name, assignment, current=current, nudge=nudge)
        for preemptor, targets in decisions.preemptions:
            self._preemptors[preemptor.key] = {t.victim.key for t in targets}
            for victim, why in targets:
                message = (
                    f"preempted to admit {preemptor.key} (priority {preemptor.priority}) "
                    f"{_PREEMPTION_CAUSES[why]}"
                )
                self.evict(victim.key, message)
                self.lifecycle.evicted(
                    victim.key, lifecycle.Reason.PREEMPTED, message, preempted=why
                )
                metrics.queue_preemptions.labels(victim.cluster_queue).inc()
        if merge:
            self.pending.update(decisions.pending)
            for pod in self._pods_of(set(decisions.pending)):
                self._tell_pending(pod)
            changed: set[model.WorkloadKey] = set()
        else:
            previous, self.pending = self.pending, decisions.pending
            self.lines = decisions.lines
            changed = {
                key
                for key, waiting in decisions.pending.items()
                if key not in previous or previous[key].reason != waiting.reason
            }
        if nudge:
            self.notifier.nudge(nudge)
        return changed

    def _admit(
        self,
        workload: admission_cycle.Workload,
        cq_name: str,
        assignment: quota.Assignment,
        *,
        current: model.Pod | None,
        nudge: list[model.Pod],
    ) -> None:
        """Record an admission, tell the pods, and collect the ones to nudge (all but
        ``current``, which is being answered)."""
        admission, grown = self.ledger.admit(workload, cq_name, assignment, now=self.clock())
        for pod in workload.pods:
            self.waiting.charged(pod.uid)
        if grown:
            self.lifecycle.grew(admission.key, len(workload.pods))
        else:
            self.lifecycle.admitted(admission.key, workload.namespace)
        self.pending.pop(workload.key, None)
        self._preemptors.pop(workload.key, None)
        flavors = ", ".join(sorted(set(assignment.flavors.values()))) or "no flavor"
        message = f"admitted by ClusterQueue {cq_name} in {flavors}"
        for pod in workload.pods:
            self.notifier.event(pod, reason="QueueAdmitted", message=message)
            record = self.waiting.pods.get(pod.uid)
            if record is not None:
                record.told = ""
        nudge.extend(p for p in workload.pods if current is None or p.uid != current.uid)
        metrics.queue_admissions.labels(cq_name).inc()

    def _pods_of(self, keys: set[model.WorkloadKey]) -> list[model.Pod]:
        queued = self.waiting.pods
        return [p for p in self.waiting.uncharged.values() if queued[p.uid].workload in keys]

    def _tell_pending(self, pod: model.Pod) -> None:
        reason = self.explain(pod)
        record = self.waiting.pods.get(pod.uid)
        if reason and record is not None and record.told != _fold(reason):
            record.told = _fold(reason)
            self.notifier.event(pod, reason="QueuePending", message=reason)

    def explain(self, pod: model.Pod) -> str:
        """Why a queued pod waits, for its FailedScheduling message and Events."""
        queue = f"{pod.namespace}/{queue_of(pod)}"
        key = self.waiting.workload_of(pod.uid)
        if key is None:
            return ""
        unqueued = self.waiting.unqueued.get(key)
        if unqueued is not None:
            return f"queue {queue}: {unqueued}"
        pending = self.pending.get(key)
        if pending is None:
            return ""
        if not pending.position:
            return f"queue {queue}: {pending.reason}"
        line = self.lines.get(pending.cluster_queue)
        queued = line.length if line is not None else pending.position
        return (
            f"queue {queue} -> {pending.cluster_queue}: {pending.reason}; "
            f"position {pending.position} of {queued}"
        )

    # -- eviction ---------------------------------------------------------------------------

    def _drain(self) -> None:
        """Evict the admitted workloads of queues stopped with ``HoldAndDrain``."""
        drain = kueue.StopPolicy.HOLD_AND_DRAIN
        config = self.ledger.config
        for admission in list(self.ledger.admissions.values()):
            if admission.evicting:
                continue
            cq = config.cluster_queues.get(admission.cluster_queue)
            local = config.local_queues.get((admission.namespace, admission.local_queue))
            if (cq is not None and cq.stop_policy is drain) or (
                local is not None and local.stop_policy is drain
            ):
                message = "drained: its queue is stopped with HoldAndDrain"
                self.evict(admission.key, message)
                self.lifecycle.evicted(admission.key, lifecycle.Reason.DRAINED, message)

    def evict(self, key: model.WorkloadKey, reason: str) -> None:
        """Evict an admitted workload's pods; it keeps its quota until they are gone."""
        admission: Admission | None = self.ledger.admissions.get(key)
        if admission is None or admission.evicting:
            return
        admission.evicting = reason
        alive = self.waiting.pods
        pods = [alive[uid].pod for uid in sorted(admission.pods) if uid in alive]
        for pod in pods:
            self.notifier.event(pod, reason="QueueEvicted", message=reason, warning=True)
        log.info("evicting workload %s (%d pods): %s", key, len(pods), reason)
        if self.evictor is None:
            return
        for pod in pods:
            self.timers.spawn(self._evict_pod(pod, reason), name=f"evict {pod.key}")

    async def _evict_pod(self, pod: model.Pod, reason: str) -> None:
        assert self.evictor is not None
        try:
            await self.evictor.evict(pod, reason=reason)
        except Exception as exc:
            log.warning("eviction of %s failed: %s", pod.key, exc)
