"""Workload lifecycle: one record per workload (a gang, an elastic Job, or a queued pod) from
first sight to finish, with Kueue's rules on top of admission.

Queue admission tells ``Lifecycles`` what happens (a pod seen, a workload admitted, evicted,
finished); ``Lifecycles`` keeps the record, posts Events, persists what must survive a restart
as annotations on the workload's pods, and asks back (``evict``, ``changed``) when a rule fires:

* ``muster.dev/active: "false"`` (pods or Workload object) evicts and never requeues; ``"true"``
  queues it again with a fresh requeue state.
* ``waitForPodsReady``: admitted pods not all Ready within the timeout (or not Ready again
  within the recovery timeout) are evicted and the workload waits ``backoff`` before it may be
  admitted again; past ``backoffLimitCount`` requeues it is deactivated instead.
* ``kueue.x-k8s.io/max-exec-time-seconds``: time admitted, summed over admissions, beyond the
  limit deactivates the workload (and the sum starts again from zero).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import cachetools

from extender.core import lifecycle, model
from extender.service.ports import Cancellable, Clock, Notifier, Timers

log = logging.getLogger(__name__)

Reason = lifecycle.Reason


_WORKLOAD_INACTIVE = "the Workload object is inactive"


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


class Lifecycles:
    """Every workload's record, and the timers of the admitted ones."""

    def __init__(
        self,
        *,
        notifier: Notifier,
        evict: Callable[[model.WorkloadKey, str], None],
        changed: Callable[[], None],
        timers: Timers,
        wall: Clock = time.time,
        jitter: Callable[[], float] = random.random,
        replicate_labels: Iterable[str] = (),
        forgotten: int = 10000,
    ) -> None:
        self.notifier = notifier
        self.evict = evict
        self.changed = changed
        self.timers = timers
        """Runs the rules' timers: the service's one owner, so that one ``close`` cancels
        them with the rest."""
        self.wall = wall
        self.jitter = jitter
        self.replicate_labels = tuple(replicate_labels)
        self.policy = lifecycle.WaitForPodsReady()
        self.records: dict[model.WorkloadKey, lifecycle.Record] = {}
        self.pods: dict[model.WorkloadKey, dict[str, model.Pod]] = {}
        """Live pods of each workload (uid -> pod)."""
        self._key_of: dict[str, model.WorkloadKey] = {}
        """uid -> the workload whose record the pod belongs to."""
        # Records of workloads without pods that carry state worth keeping (requeued,
        # deactivated): their pods come back when a controller recreates them.
        self._resting: cachetools.LRUCache[model.WorkloadKey, lifecycle.Record] = (
            cachetools.LRUCache(forgotten)
        )
        self._timers: dict[model.WorkloadKey, list[Cancellable]] = {}

    # -- what queue admission tells -----------------------------------------------------------

    def record(self, key: model.WorkloadKey, namespace: str) -> lifecycle.Record:
        found = self.records.get(key)
        if found is None:
            found = self._resting.pop(key, None) or lifecycle.Record(key, namespace)
            self.records[key] = found
        return found

    def observe(self, key: model.WorkloadKey, pod: model.Pod, *, admitted: bool) -> None:
        """A live pod of workload ``key``: restore persisted state from it, follow its
        ``muster.dev/active`` annotation and readiness, and persist onto it."""
        before = self._key_of.get(pod.uid)
        if before is not None and before != key:
            self.gone(pod.uid)  # its workload changed (e.g. its gang became known)
        self._key_of[pod.uid] = key
        record = self.record(key, pod.namespace)
        members = self.pods.setdefault(key, {})
        new = pod.uid not in members
        members[pod.uid] = pod
        if new:
            record.restore(pod.annotations)
            for label in self.replicate_labels:
                if label in pod.labels:
                    record.labels[label] = pod.labels[label]
        explicit = pod.annotations.get(lifecycle.ACTIVE_ANNOTATION, "").strip().lower()
        if explicit == "false" and record.active and not record.deactivation:
            self._deactivate(record, Reason.DEACTIVATED, f"{lifecycle.ACTIVE_ANNOTATION} is false")
        elif explicit == "true" and not record.active:
            self._activate(record)
        elif new and record.deactivation and record.active:
            record.active = False  # restored from a pod after a restart
        if new and (record.requeue.count or record.accumulated or not record.active):
            self._persist(record, [pod])
        if admitted:
            self._readiness(record)

    def workload_object(self, key: model.WorkloadKey, active: bool) -> None:
        """The Workload object of a gang says ``spec.active`` (or the annotation)."""
        record = self.records.get(key)
        if record is None:
            return
        if not active and record.active:
            self._deactivate(record, Reason.DEACTIVATED, _WORKLOAD_INACTIVE)
        elif active and not record.active and record.deactivation.endswith(_WORKLOAD_INACTIVE):
            self._activate(record)

    def gone(self, uid: str) -> None:
        """A pod left its workload (finished, deleted, or moved to another)."""
        key = self._key_of.pop(uid, None)
        if key is None:
            return
        members = self.pods.get(key)
        if members is not None:
            members.pop(uid, None)
            if not members:
                del self.pods[key]
                record = self.records.get(key)
                if record is not None and record.admitted_at is None:
                    self._rest(key)

    def holds(self, key: model.WorkloadKey) -> str:
        """Why the workload may not be admitted now (empty: it may)."""
        record = self.records.get(key)
        if record is None:
            return ""
        if not record.active:
            return f"workload deactivated: {record.deactivation}"
        now = self.wall()
        if record.requeue.requeue_at > now:
            return (
                f"requeued {record.requeue.count} time(s) after PodsReady timeout; waiting "
                f"until {_stamp(record.requeue.requeue_at)} "
                f"({record.requeue.requeue_at - now:.0f}s)"
            )
        return ""

    def grew(self, key: model.WorkloadKey, added: int) -> None:
        """An admitted elastic workload got quota for ``added`` more pods: a new slice, with
        the same flavor, replaces the old one."""
        record = self.records.get(key)
        if record is None:
            return
        message = record.grow(added, now=self.wall())
        self._event_all(record, "WorkloadSliceReplaced", f"{message}, same flavor")

    def shrank(self, key: model.WorkloadKey) -> None:
        """A pod of an admitted elastic workload went away: the count shrinks in place."""
        record = self.records.get(key)
        if record is not None and record.admitted_count:
            record.admitted_count -= 1

    def admitted(self, key: model.WorkloadKey, namespace: str) -> None:
        """Quota was reserved for the workload's pods."""
        record = self.record(key, namespace)
        record.admit(len(self.pods.get(key, {})), now=self.wall())
        self._arm(record)
        self._readiness(record)

    def evicted(
        self, key: model.WorkloadKey, reason: Reason, message: str, *, preempted: str = ""
    ) -> None:
        """The workload's pods are being evicted (preemption, draining, or a rule here);
        ``preempted`` is Kueue's preemption reason (``InClusterQueue``...) when preempted."""
        record = self.records.get(key)
        if record is None:
            return
        record.evict(reason, message, preempted=preempted, now=self.wall())
        self._cancel(key)
        self._persist(record)

    def finished_pod(self, key: model.WorkloadKey) -> None:
        """A pod of an admitted workload succeeded or failed: its quota went back already."""
        record = self.records.get(key)
        if record is not None:
            record.reclaimed += 1

    def released(self, key: model.WorkloadKey, *, finished: bool) -> None:
        """No pod of the workload holds quota any more."""
        record = self.records.get(key)
        if record is None:
            return
        record.release(finished=finished, now=self.wall())
        self._cancel(key)
        if key not in self.pods:
            self._rest(key)

    # -- rules ------------------------------------------------------------------------------

    def _readiness(self, record: lifecycle.Record) -> None:
        """Follow whether every admitted pod is Ready (PodsReady) and time the recovery."""
        members = self.pods.get(record.key, {})
        ready = bool(members) and all(p.ready for p in members.values())
        now = self.wall()
        if ready and record.ready_at is None:
            record.ready_at = now
            record.condition("PodsReady", True, "PodsReady", "every pod is Ready", now=now)
        elif not ready and record.ready_at is not None:
            record.ready_at = None
            record.condition("PodsReady", False, "PodNotReady", "a pod is not Ready", now=now)
            if self.policy.enabled:
                self._later(record, self.policy.recovery, self._check_ready, record.admitted_at)

    def _arm(self, record: lifecycle.Record) -> None:
        self._cancel(record.key)
        if self.policy.enabled:
            self._later(record, self.policy.timeout, self._check_ready, record.admitted_at)
        limit = self._max_execution(record)
        if limit is not None:
            left = max(0.0, limit - record.accumulated)
            self._later(record, left, self._check_max_execution, record.admitted_at)

    def _max_execution(self, record: lifecycle.Record) -> float | None:
        limits = [
            lifecycle.max_execution_seconds(p.labels)
            for p in self.pods.get(record.key, {}).values()
        ]
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None

    def _check_ready(self, key: model.WorkloadKey, admitted_at: float | None) -> None:
        record = self.records.get(key)
        if (
            record is None
            or record.admitted_at is None
            or record.admitted_at != admitted_at
            or record.ready_at is not None
        ):
            return
        now = self.wall()
        outcome = lifecycle.after_pods_ready_timeout(
            record.requeue, self.policy, now=now, jitter=self.jitter()
        )
        lost = record.conditions.get("PodsReady")
        if lost is not None and lost.reason == "PodNotReady":
            message = f"a pod was not Ready again within {self.policy.recovery:g}s"
        else:
            message = f"not every pod was Ready within {self.policy.timeout:g}s"
        if isinstance(outcome, lifecycle.Deactivate):
            self._deactivate(record, outcome.reason, f"{message}; {outcome.message}")
            return
        record.requeue = outcome.state
        self.evict(key, f"{Reason.PODS_READY_TIMEOUT}: {message}")
        self.evicted(key, Reason.PODS_READY_TIMEOUT, message)
        record.condition(
            "Requeued",
            True,
            "Backoff",
            f"requeue {outcome.state.count} at {_stamp(outcome.state.requeue_at)}",
            now=now,
        )
        self._event_all(
            record,
            "WorkloadRequeued",
            f"{message}; requeued ({outcome.state.count}) at {_stamp(outcome.state.requeue_at)}",
            warning=True,
        )
        self._persist(record)
        self.timers.later(max(0.0, outcome.state.requeue_at - now) + 0.05, self.changed)

    def _check_max_execution(self, key: model.WorkloadKey, admitted_at: float | None) -> None:
        record = self.records.get(key)
        if record is None or record.admitted_at is None or record.admitted_at != admitted_at:
            return
        limit = self._max_execution(record)
        now = self.wall()
        if not lifecycle.exceeds_max_execution(
            limit, accumulated=record.accumulated, admitted_at=record.admitted_at, now=now + 0.001
        ):
            return
        self._deactivate(
            record,
            Reason.MAXIMUM_EXECUTION_TIME_EXCEEDED,
            f"admitted for more than {lifecycle.MAX_EXEC_LABEL} = {limit:.0f}s in total",
        )

    def _deactivate(self, record: lifecycle.Record, reason: Reason, message: str) -> None:
        admitted = record.admitted_at is not None
        if admitted:
            self.evict(record.key, f"{reason}: {message}")
            self.evicted(record.key, reason, message)
        record.deactivate(reason, message, now=self.wall())
        self._event_all(record, "WorkloadDeactivated", f"{reason}: {message}", warning=True)
        self._persist(record)
        self.changed()

    def _activate(self, record: lifecycle.Record) -> None:
        record.activate(now=self.wall())
        self._event_all(record, "WorkloadActivated", "queued again; requeue state reset")
        self._persist(
            record,
            extra={lifecycle.ACTIVE_ANNOTATION: "true", lifecycle.DEACTIVATED_ANNOTATION: ""},
        )
        self.changed()

    # -- plumbing ---------------------------------------------------------------------------

    def _later(
        self,
        record: lifecycle.Record,
        delay: float,
        fn: Callable[[model.WorkloadKey, float | None], None],
        admitted_at: float | None,
    ) -> None:
        """Run ``fn(key, admitted_at)`` after ``delay`` unless the record's timers are
        cancelled first (``_cancel``): a check finds its admission by ``admitted_at``."""
        handle = self.timers.later(delay, fn, record.key, admitted_at)
        self._timers.setdefault(record.key, []).append(handle)

    def _cancel(self, key: model.WorkloadKey) -> None:
        for handle in self._timers.pop(key, []):
            handle.cancel()

    def _rest(self, key: model.WorkloadKey) -> None:
        record = self.records.pop(key, None)
        self._cancel(key)
        if record is not None and (record.requeue.count or not record.active or record.accumulated):
            self._resting[key] = record

    def _persist(
        self,
        record: lifecycle.Record,
        pods: Iterable[model.Pod] | None = None,
        *,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        values = {**record.persisted(), **(extra or {})}
        targets = list(pods) if pods is not None else list(self.pods.get(record.key, {}).values())
        for pod in targets:
            if any(pod.annotations.get(k) != v for k, v in values.items()):
                self.notifier.annotate(pod, values)

    def _event_all(
        self, record: lifecycle.Record, reason: str, message: str, *, warning: bool = False
    ) -> None:
        for pod in self.pods.get(record.key, {}).values():
            self.notifier.event(pod, reason=reason, message=message, warning=warning)

    def describe(self) -> list[dict[str, Any]]:
        """Every record, for ``GET /debug/workloads``."""
        return describe([*self.records.values(), *self._resting.values()], self.pods, self.wall())


def describe(
    records: Iterable[lifecycle.Record],
    pods: Mapping[model.WorkloadKey, Mapping[str, model.Pod]],
    now: float,
) -> list[dict[str, Any]]:
    """The records as ``GET /debug/workloads`` shows them (``now``: the wall clock)."""
    out = []
    for record in sorted(records, key=lambda r: str(r.key)):
        out.append(
            {
                "key": str(record.key),
                "namespace": record.namespace,
                "status": record.status.value,
                "active": record.active,
                "pods": sorted(p.name for p in pods.get(record.key, {}).values()),
                "admittedCount": record.admitted_count,
                "reclaimablePods": record.reclaimed,
                "slice": record.slice,
                "requeueState": {
                    "count": record.requeue.count,
                    "requeueAt": _stamp(record.requeue.requeue_at)
                    if record.requeue.requeue_at
                    else None,
                },
                "accumulatedExecutionSeconds": round(
                    record.accumulated + (now - record.admitted_at if record.admitted_at else 0.0),
                    3,
                ),
                "labels": record.labels,
                "conditions": [
                    {
                        "type": c.type,
                        "status": "True" if c.status else "False",
                        "reason": c.reason,
                        "message": c.message,
                        "lastTransitionTime": _stamp(c.time),
                    }
                    for c in record.conditions.values()
                ],
            }
        )
    return out
