"""Queueing: the order of pending workloads and one admission cycle over every ClusterQueue.

A *workload* is what is admitted as a whole: a gang (all its members) or a single pod.  Each
ClusterQueue orders its pending workloads by priority, then creation time.  A cycle repeatedly
takes the head of every queue, admits heads that fit (those that fit without borrowing first, so
a queue gets its own nominal quota back before others borrow it), asks for preemptions where
the queue's policy allows them, and moves on: under ``StrictFIFO`` an inadmissible head blocks
its queue, under ``BestEffortFIFO`` the next workload gets its turn.  Pure: the caller passes
the quota book (which the cycle charges for what it admits) and applies the decisions.

The same cycle has a fast path, for when only new workloads arrived since the last cycle and
nothing was freed: what waited still waits, so each arrival is judged on its own at the end of
its line, in O(arrivals) rather than O(everything pending).  It answers only where that gives
exactly what the full cycle would, and otherwise changes nothing and asks for the full cycle
(``tests/core/test_admission_cycle_fast_path.py`` checks this property).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from extender.core import kueue, model, quota, resources


@dataclass(frozen=True, slots=True)
class Workload:
    key: model.WorkloadKey
    namespace: str
    queue: str
    """The LocalQueue's name (in ``namespace``)."""
    priority: int
    created: float
    pods: tuple[model.Pod, ...]
    """The pods admitted together (their requests are summed)."""
    pinned: Mapping[str, str] = field(default_factory=dict)
    """resource -> the only flavor it may get (an elastic workload's new slice)."""
    requests: Mapping[str, int] = field(init=False)
    shape: Hashable = field(init=False)
    """What quota assignment reads: equal shapes get equal answers from the same book."""

    def __post_init__(self) -> None:
        requests = resources.total(p.requests for p in self.pods)
        constraints = frozenset(
            (tuple(sorted(p.node_selector.items())), p.required_terms, p.tolerations)
            for p in self.pods
        )
        object.__setattr__(self, "requests", requests)
        pinned = tuple(sorted(self.pinned.items()))
        object.__setattr__(self, "shape", (tuple(sorted(requests.items())), constraints, pinned))

    def order(self) -> Order:
        """Queue order: higher priority first, then older, then by key."""
        return (-self.priority, self.created, self.key)


Order = tuple[int, float, model.WorkloadKey]


@dataclass(frozen=True, slots=True)
class Pending:
    cluster_queue: str
    reason: str
    """Why it waits, e.g. ``cpu 12 requested, 3 of 9 free in flavor default``."""
    position: int = 0
    """1-based place in its ClusterQueue's order (0: not queued, e.g. no such LocalQueue)."""


@dataclass(slots=True)
class Line:
    """One ClusterQueue's waiting workloads as a cycle left them: enough to put an arrival
    at their end."""

    length: int
    head: model.WorkloadKey
    """The first in line (under StrictFIFO, the one everything else waits behind)."""
    end: Order
    """The queue order of the last in line."""


@dataclass(slots=True)
class Decisions:
    admitted: list[tuple[Workload, str, quota.Assignment]] = field(default_factory=list)
    """(workload, ClusterQueue name, assignment) — already charged to the book."""
    preemptions: list[tuple[Workload, list[quota.Target]]] = field(default_factory=list)
    pending: dict[model.WorkloadKey, Pending] = field(default_factory=dict)
    """The full cycle: every workload that waits.  The fast path: the arrivals that wait."""
    lines: dict[str, Line] = field(default_factory=dict)
    """Every ClusterQueue's line after the decisions (the fast path updates the lines it was
    given in place, and returns them)."""


def route(
    workload: Workload,
    config: kueue.QueueConfig,
    namespace_labels: Mapping[str, str],
) -> tuple[kueue.ClusterQueue | None, str]:
    """The workload's ClusterQueue, or None and why it cannot be queued there."""
    local = config.local_queues.get((workload.namespace, workload.queue))
    if local is None:
        return None, f"LocalQueue {workload.namespace}/{workload.queue} not found"
    cq = config.cluster_queues.get(local.cluster_queue)
    if cq is None:
        return None, f"ClusterQueue {local.cluster_queue} of LocalQueue {local.key} not found"
    if not cq.admits_namespace(namespace_labels):
        return None, f"namespace {workload.namespace} is not selected by ClusterQueue {cq.name}"
    if local.stop_policy is not kueue.StopPolicy.NONE:
        return None, f"LocalQueue {local.key} is stopped ({local.stop_policy.value})"
    if cq.stop_policy is not kueue.StopPolicy.NONE:
        return None, f"ClusterQueue {cq.name} is stopped ({cq.stop_policy.value})"
    return cq, ""


def cycle(
    pending: Sequence[Workload],
    *,
    config: kueue.QueueConfig,
    book: quota.QuotaBook,
    admitted: Sequence[quota.Admitted],
    namespace_labels: Callable[[str], Mapping[str, str]],
    waiting_for_victims: Mapping[model.WorkloadKey, int] | None = None,
    arrivals_after: dict[str, Line] | None = None,
) -> Decisions | None:
    """Decide which pending workloads are admitted now, and which preemptions to start.

    ``waiting_for_victims``: workloads whose victims are still going (key -> how many); they
    keep their place but start no new preemption.

    ``arrivals_after``: the fast path.  ``pending`` are only the workloads that arrived since
    the cycle that left these lines, and nothing was freed since.  Returns None, with the book
    and the lines as they were, when judging the arrivals alone could differ from a full
    cycle: an arrival would go ahead of a waiting workload, would need preemption, or competes
    with another arrival for a cohort's quota.
    """
    if arrivals_after is not None:
        return _arrivals(pending, config, book, namespace_labels, arrivals_after)
    return _full(pending, config, book, admitted, namespace_labels, waiting_for_victims or {})


def _unroutable(workload: Workload, config: kueue.QueueConfig, why: str) -> Pending:
    local = config.local_queues.get((workload.namespace, workload.queue))
    return Pending(local.cluster_queue if local else "", why)


def _arrivals(
    arrivals: Sequence[Workload],
    config: kueue.QueueConfig,
    book: quota.QuotaBook,
    namespace_labels: Callable[[str], Mapping[str, str]],
    lines: dict[str, Line],
) -> Decisions | None:
    decisions = Decisions(lines=lines)
    routed: list[tuple[kueue.ClusterQueue, Workload]] = []
    for workload in sorted(arrivals, key=Workload.order):
        cq, why = route(workload, config, namespace_labels(workload.namespace))
        if cq is None:
            decisions.pending[workload.key] = _unroutable(workload, config, why)
            continue
        line = lines.get(cq.name)
        if line is not None and workload.order() < line.end:
            return None  # it goes ahead of a waiting workload: positions change
        routed.append((cq, workload))
    cohorts: dict[str, str] = {}
    for cq, _ in routed:
        if cq.cohort and cohorts.setdefault(cq.cohort, cq.name) != cq.name:
            return None  # the full cycle interleaves the queues of a cohort
    grown: dict[str, Line] = {}
    charged: list[tuple[str, quota.Usage]] = []

    def undo() -> None:
        for name, usage in charged:
            book.remove(name, usage)

    for cq, workload in routed:
        line = grown.get(cq.name) or lines.get(cq.name)
        if line is not None and cq.strategy is kueue.QueueingStrategy.STRICT_FIFO:
            reason = f"waiting behind {line.head} (StrictFIFO)"
        else:
            choice = quota.assign(
                cq, workload.requests, workload.pods, book, pinned=workload.pinned
            )
            if choice.mode is quota.Mode.FIT:
                book.add(cq.name, choice.usage)
                charged.append((cq.name, choice.usage))
                decisions.admitted.append((workload, cq.name, choice))
                continue
            if choice.mode is quota.Mode.PREEMPT and (
                cq.within_cluster_queue is not kueue.WithinClusterQueue.NEVER
                or cq.reclaim_within_cohort is not kueue.ReclaimWithinCohort.NEVER
            ):
                undo()
                return None
            reason = choice.reason
        length = line.length + 1 if line is not None else 1
        head = line.head if line is not None else workload.key
        grown[cq.name] = Line(length, head, workload.order())
        decisions.pending[workload.key] = Pending(cq.name, reason, length)
    lines.update(grown)
    return decisions


def _full(
    pending: Sequence[Workload],
    config: kueue.QueueConfig,
    book: quota.QuotaBook,
    admitted: Sequence[quota.Admitted],
    namespace_labels: Callable[[str], Mapping[str, str]],
    in_flight: Mapping[model.WorkloadKey, int],
) -> Decisions:
    decisions = Decisions()
    lines: dict[str, list[Workload]] = {}
    for workload in pending:
        cq, why = route(workload, config, namespace_labels(workload.namespace))
        if cq is None:
            decisions.pending[workload.key] = _unroutable(workload, config, why)
            continue
        lines.setdefault(cq.name, []).append(workload)
    for line in lines.values():
        line.sort(key=Workload.order)

    # Within a cycle usage only grows, so a shape that did not fit a queue still does not fit
    # while nothing was admitted since: answer it from memory (Kueue's equivalence hashing).
    tried: dict[tuple[str, Hashable], tuple[int, quota.Assignment]] = {}
    admissions = 0

    def assign(cq: kueue.ClusterQueue, workload: Workload) -> quota.Assignment:
        key = (cq.name, workload.shape)
        known = tried.get(key)
        if known is not None and known[0] == admissions:
            return known[1]
        choice = quota.assign(cq, workload.requests, workload.pods, book, pinned=workload.pinned)
        tried[key] = (admissions, choice)
        return choice

    cursor = dict.fromkeys(lines, 0)
    blocked: dict[str, model.WorkloadKey] = {}  # StrictFIFO queue -> the head that blocks it
    claimed: set[model.WorkloadKey] = set()  # victims already chosen in this cycle
    reasons: dict[model.WorkloadKey, str] = {}
    while True:
        heads = [
            (config.cluster_queues[name], line[cursor[name]])
            for name, line in lines.items()
            if name not in blocked and cursor[name] < len(line)
        ]
        if not heads:
            break
        first_look = {w.key: assign(cq, w) for cq, w in heads}
        heads.sort(
            key=lambda h: (
                first_look[h[1].key].mode,
                first_look[h[1].key].borrows,
                h[1].order(),
            )
        )
        for cq, workload in heads:
            cursor[cq.name] += 1
            choice = assign(cq, workload)
            if choice.mode is quota.Mode.FIT:
                book.add(cq.name, choice.usage)
                admissions += 1
                decisions.admitted.append((workload, cq.name, choice))
                continue
            reason = choice.reason
            if workload.key in in_flight:
                reason += f"; waiting for {in_flight[workload.key]} preempted workload(s) to stop"
            elif choice.mode is quota.Mode.PREEMPT:
                victims = quota.preemption_targets(
                    cq,
                    choice,
                    priority=workload.priority,
                    created=workload.created,
                    admitted=admitted,
                    book=book,
                    exclude=claimed,
                )
                if victims:
                    claimed.update(t.victim.key for t in victims)
                    decisions.preemptions.append((workload, victims))
                    reason += f"; preempting {len(victims)} workload(s)"
            reasons[workload.key] = reason
            if cq.strategy is kueue.QueueingStrategy.STRICT_FIFO:
                blocked[cq.name] = workload.key

    admitted_now = {w.key for w, _, _ in decisions.admitted}
    for name, line in lines.items():
        waiting = [w for w in line if w.key not in admitted_now]
        if not waiting:
            continue
        head = blocked.get(name)
        default = f"waiting behind {head} (StrictFIFO)" if head else "not reached"
        for position, workload in enumerate(waiting, start=1):
            reason = reasons.get(workload.key, default)
            decisions.pending[workload.key] = Pending(name, reason, position)
        decisions.lines[name] = Line(len(waiting), waiting[0].key, waiting[-1].order())
    return decisions
