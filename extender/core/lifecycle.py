"""Workload lifecycle rules (Kueue's Workload concept): status and conditions, requeueing with
exponential backoff after a PodsReady timeout, deactivation at the backoff limit, and the
maximum execution time summed over admissions.

Pure: callers pass the wall-clock time (seconds since the epoch, since requeueAt and the
accumulated time outlive the process) and a jitter draw in [0, 1); nothing here sleeps or
reads a clock.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from extender.core import model

ACTIVE_ANNOTATION = "muster.dev/active"
"""``"false"`` on a workload's pods (or its Workload object) deactivates it."""
REQUEUE_COUNT_ANNOTATION = "muster.dev/requeue-count"
REQUEUE_AT_ANNOTATION = "muster.dev/requeue-at"
ACCUMULATED_ANNOTATION = "muster.dev/accumulated-execution-seconds"
DEACTIVATED_ANNOTATION = "muster.dev/deactivation-reason"
MAX_EXEC_LABEL = "kueue.x-k8s.io/max-exec-time-seconds"
ELASTIC_ANNOTATION = "kueue.x-k8s.io/elastic-job"
MIN_PARALLELISM_ANNOTATION = "kueue.x-k8s.io/job-min-parallelism"

JITTER_FRACTION = 0.0001
"""Kueue stretches each backoff by up to 0.01 % so requeued workloads do not line up."""


class Status(enum.StrEnum):
    PENDING = "Pending"
    QUOTA_RESERVED = "QuotaReserved"
    ADMITTED = "Admitted"
    EVICTED = "Evicted"
    FINISHED = "Finished"
    DEACTIVATED = "Deactivated"


class Reason(enum.StrEnum):
    PODS_READY_TIMEOUT = "PodsReadyTimeout"
    REQUEUING_LIMIT_EXCEEDED = "RequeuingLimitExceeded"
    MAXIMUM_EXECUTION_TIME_EXCEEDED = "MaximumExecutionTimeExceeded"
    DEACTIVATED = "InactiveWorkload"
    PREEMPTED = "Preempted"
    DRAINED = "ClusterQueueStopped"
    REPLACED = "WorkloadSliceReplaced"


@dataclass(frozen=True, slots=True)
class WaitForPodsReady:
    """Kueue's ``waitForPodsReady``: an admitted workload's pods must all be Ready in time."""

    enabled: bool = False
    timeout: float = 300.0
    recovery_timeout: float | None = None
    """For a workload that was ready and lost a pod's readiness; None: same as ``timeout``."""
    backoff_base: float = 60.0
    backoff_max: float = 3600.0
    backoff_limit: int | None = None
    """Requeues before the workload is deactivated instead; None: requeue forever."""

    @property
    def recovery(self) -> float:
        return self.timeout if self.recovery_timeout is None else self.recovery_timeout


@dataclass(frozen=True, slots=True)
class RequeueState:
    count: int = 0
    requeue_at: float = 0.0
    """Wall-clock time before which the workload is not admitted again (0: none)."""


MAX_PERSISTED = 2.0**53
"""The largest number read back from a persisted annotation (larger ones are not ours)."""


def backoff(count: int, policy: WaitForPodsReady, *, jitter: float = 0.0) -> float:
    """Seconds to wait before the ``count``-th requeue: ``min(base * 2^(count-1), max)``
    stretched by ``jitter`` x 0.01 %.  Defaults: 60, 120, 240, ... 1920, 3600, 3600."""
    exponent = min(max(0, count - 1), 64)  # 2**64 x any base is past any cap; no overflow
    delay = min(policy.backoff_base * 2.0**exponent, policy.backoff_max)
    return delay * (1 + jitter * JITTER_FRACTION)


@dataclass(frozen=True, slots=True)
class Requeue:
    state: RequeueState


@dataclass(frozen=True, slots=True)
class Deactivate:
    reason: Reason
    message: str


def after_pods_ready_timeout(
    state: RequeueState, policy: WaitForPodsReady, *, now: float, jitter: float = 0.0
) -> Requeue | Deactivate:
    """What follows an eviction for PodsReady timeout: a requeue with backoff, or, once the
    requeue count would pass ``backoff_limit``, deactivation."""
    count = state.count + 1
    if policy.backoff_limit is not None and count > policy.backoff_limit:
        return Deactivate(
            Reason.REQUEUING_LIMIT_EXCEEDED,
            f"requeued {state.count} time(s); backoffLimitCount is {policy.backoff_limit}",
        )
    return Requeue(RequeueState(count, now + backoff(count, policy, jitter=jitter)))


def exceeds_max_execution(
    limit: float | None, *, accumulated: float, admitted_at: float | None, now: float
) -> bool:
    """Whether the time spent admitted, over every admission so far, is past ``limit``."""
    if limit is None:
        return False
    running = (now - admitted_at) if admitted_at is not None else 0.0
    return accumulated + running > limit


def max_execution_seconds(labels: Mapping[str, str]) -> float | None:
    """The ``kueue.x-k8s.io/max-exec-time-seconds`` label (a positive integer), or None."""
    raw = labels.get(MAX_EXEC_LABEL)
    try:
        value = int(raw) if raw is not None else 0
    except ValueError:
        return None
    return float(value) if value > 0 else None


# -- the record -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str
    time: float


@dataclass(slots=True)
class Record:
    """One workload's lifecycle: what ``GET /debug/workloads`` shows and what is persisted."""

    key: model.WorkloadKey
    namespace: str
    status: Status = Status.PENDING
    conditions: dict[str, Condition] = field(default_factory=dict)
    requeue: RequeueState = field(default_factory=RequeueState)
    accumulated: float = 0.0
    """Seconds admitted in earlier admissions (the current one not included)."""
    admitted_at: float | None = None
    """Wall-clock start of the current admission."""
    ready_at: float | None = None
    """When every admitted pod was last seen Ready (None: not all Ready)."""
    active: bool = True
    deactivation: str = ""
    reclaimed: int = 0
    """Pods of the current admission that finished (their quota already returned)."""
    admitted_count: int = 0
    slice: int = 0
    """Elastic workloads: the current slice (0 before the first admission)."""
    labels: dict[str, str] = field(default_factory=dict)

    def condition(self, kind: str, status: bool, reason: str, message: str, *, now: float) -> bool:
        """Set a condition; returns whether it changed (its time moves only then)."""
        old = self.conditions.get(kind)
        if old is not None and (old.status, old.reason, old.message) == (status, reason, message):
            return False
        self.conditions[kind] = Condition(kind, status, reason, message, now)
        return True

    def persisted(self) -> dict[str, str]:
        """The state that must survive a restart, as pod annotations."""
        out = {
            REQUEUE_COUNT_ANNOTATION: str(self.requeue.count),
            REQUEUE_AT_ANNOTATION: f"{self.requeue.requeue_at:.3f}",
            ACCUMULATED_ANNOTATION: f"{self.accumulated:.3f}",
        }
        if not self.active:
            out[ACTIVE_ANNOTATION] = "false"
            out[DEACTIVATED_ANNOTATION] = self.deactivation
        return out

    def restore(self, annotations: Mapping[str, str]) -> None:
        """Take persisted state from one pod's annotations (the larger values win)."""

        def number(key: str) -> float:
            """A persisted number; anything else (a person's edit: text, NaN, infinity, a
            negative or absurd value) reads as 0."""
            try:
                value = float(annotations.get(key, "0"))
            except ValueError:
                return 0.0
            return value if math.isfinite(value) and 0 <= value <= MAX_PERSISTED else 0.0

        count = int(number(REQUEUE_COUNT_ANNOTATION))
        if count > self.requeue.count:
            self.requeue = RequeueState(count, number(REQUEUE_AT_ANNOTATION))
        self.accumulated = max(self.accumulated, number(ACCUMULATED_ANNOTATION))
        if annotations.get(DEACTIVATED_ANNOTATION) and not self.deactivation:
            self.deactivation = annotations[DEACTIVATED_ANNOTATION]

    def reset_requeue(self) -> None:
        self.requeue = replace(self.requeue, count=0, requeue_at=0.0)

    # -- transitions (``now``: the wall clock) --------------------------------------------------

    def admit(self, pods: int, *, now: float) -> None:
        """Quota was reserved for the workload's ``pods``."""
        self.status = Status.ADMITTED
        self.admitted_at = now
        self.ready_at = None
        self.reclaimed = 0
        self.admitted_count = pods
        self.slice = max(self.slice, 1)
        self.condition("QuotaReserved", True, "QuotaReserved", "quota reserved", now=now)
        self.condition("Admitted", True, "Admitted", "admitted", now=now)
        self.condition("Evicted", False, "Admitted", "", now=now)
        if "Preempted" in self.conditions:
            self.condition("Preempted", False, "Admitted", "", now=now)

    def grow(self, added: int, *, now: float) -> str:
        """An admitted elastic workload got quota for ``added`` more pods: a new slice, with
        the same flavor, replaces the old one.  Returns what happened, for people."""
        self.slice += 1
        self.admitted_count += added
        message = f"slice {self.slice - 1} replaced by slice {self.slice} (+{added} pods)"
        self.condition("SliceReplaced", True, Reason.REPLACED, message, now=now)
        return message

    def stop_clock(self, now: float) -> None:
        """The current admission ends: its time joins the accumulated execution time."""
        if self.admitted_at is not None:
            self.accumulated += max(0.0, now - self.admitted_at)
            self.admitted_at = None
        self.ready_at = None

    def evict(self, reason: str, message: str, *, preempted: str = "", now: float) -> None:
        """The workload's pods are being evicted; ``preempted`` is Kueue's preemption reason
        (``InClusterQueue``...) when it was preempted."""
        self.stop_clock(now)
        self.status = Status.EVICTED
        self.condition("Evicted", True, reason, message, now=now)
        self.condition("Admitted", False, reason, message, now=now)
        self.condition("QuotaReserved", False, reason, message, now=now)
        if preempted:
            self.condition("Preempted", True, preempted, message, now=now)

    def release(self, *, finished: bool, now: float) -> None:
        """No pod of the workload holds quota any more (``finished``: they all ended)."""
        self.stop_clock(now)
        if finished and self.status is Status.ADMITTED:
            self.status = Status.FINISHED
            self.condition("Finished", True, "Succeeded", "every pod finished", now=now)
        elif self.status in (Status.ADMITTED, Status.EVICTED):
            self.status = Status.PENDING if self.active else Status.DEACTIVATED

    def deactivate(self, reason: Reason, message: str, *, now: float) -> None:
        """Never admitted again until activated (``muster.dev/active: "true"``)."""
        self.active = False
        self.deactivation = f"{reason}: {message}"
        self.status = Status.DEACTIVATED
        if reason is Reason.MAXIMUM_EXECUTION_TIME_EXCEEDED:
            self.accumulated = 0.0  # Kueue resets the sum on deactivation
        self.condition("Active", False, reason, message, now=now)

    def activate(self, *, now: float) -> None:
        """Queued again, with a fresh requeue state."""
        self.active = True
        self.deactivation = ""
        self.reset_requeue()
        self.status = Status.PENDING
        self.condition("Active", True, "Activated", f"{ACTIVE_ANNOTATION} is true", now=now)


def is_active(annotations: Mapping[str, str]) -> bool:
    return annotations.get(ACTIVE_ANNOTATION, "true").strip().lower() != "false"
