"""Quota: how much each ClusterQueue uses per (flavor, resource), what it can still take, which
flavor a workload gets, and which admitted workloads to preempt for it.

Usage follows Kueue's resource tree: a ClusterQueue keeps ``guaranteed = nominal -
lendingLimit`` for itself (0 without a lending limit) and lends the rest to its cohort; usage
above ``guaranteed`` counts against the cohort.  What a queue can take is what is left of its
guaranteed part plus what is left in the cohort, the latter capped by its ``borrowingLimit``.
Without a cohort a queue takes exactly its ``nominalQuota``.  Example: cohort of A (nominal 9)
and B (nominal 6, borrowingLimit 2); A uses 8, B uses 4: B can take min(9 + 6 - 12, 6 - 4 + 2)
= 3.  Pure and synchronous: callers own the ``QuotaBook`` and mutate it on the event loop.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import NamedTuple

from extender.core import kueue, model, predicates, resources

FlavorResource = tuple[str, str]
"""(flavor name, resource name)."""

Usage = Mapping[FlavorResource, int]


class QuotaBook:
    """Usage per ClusterQueue and per cohort, kept incrementally for O(1) availability."""

    def __init__(self, config: kueue.QueueConfig) -> None:
        self.config = config
        self.usage: dict[str, dict[FlavorResource, int]] = {}
        self._cohort_usage: dict[str, dict[FlavorResource, int]] = {}
        self._cohort_quota: dict[str, dict[FlavorResource, int]] = {}
        for cq in config.cluster_queues.values():
            if not cq.cohort:
                continue
            totals = self._cohort_quota.setdefault(cq.cohort, {})
            for fr, quota in quotas(cq):
                totals[fr] = totals.get(fr, 0) + quota.nominal - quota.guaranteed

    def copy(self) -> QuotaBook:
        twin = QuotaBook.__new__(QuotaBook)
        twin.config = self.config
        twin.usage = {k: dict(v) for k, v in self.usage.items()}
        twin._cohort_usage = {k: dict(v) for k, v in self._cohort_usage.items()}
        twin._cohort_quota = self._cohort_quota
        return twin

    def used(self, cq: str, fr: FlavorResource) -> int:
        return self.usage.get(cq, {}).get(fr, 0)

    def add(self, cq: str, usage: Usage, *, sign: int = 1) -> None:
        """Charge (or with ``sign=-1`` release) ``usage`` to queue ``cq`` and its cohort."""
        queue = self.config.cluster_queues.get(cq)
        own = self.usage.setdefault(cq, {})
        for fr, amount in usage.items():
            before = own.get(fr, 0)
            after = before + sign * amount
            if after:
                own[fr] = after
            else:
                own.pop(fr, None)
            if queue is None or not queue.cohort:
                continue
            quota = queue.quota(*fr)
            guaranteed = quota.guaranteed if quota else 0
            delta = max(0, after - guaranteed) - max(0, before - guaranteed)
            if delta:
                cohort = self._cohort_usage.setdefault(queue.cohort, {})
                cohort[fr] = cohort.get(fr, 0) + delta

    def remove(self, cq: str, usage: Usage) -> None:
        self.add(cq, usage, sign=-1)

    def available(self, cq: kueue.ClusterQueue, fr: FlavorResource) -> int:
        """What ``cq`` can still take of ``fr`` now (negative when over-admitted)."""
        quota = cq.quota(*fr)
        nominal = quota.nominal if quota else 0
        used = self.used(cq.name, fr)
        if not cq.cohort:
            return nominal - used
        guaranteed = quota.guaranteed if quota else 0
        local = max(0, guaranteed - used)
        in_cohort = self._cohort_quota.get(cq.cohort, {}).get(fr, 0) - self._cohort_usage.get(
            cq.cohort, {}
        ).get(fr, 0)
        if quota is not None and quota.borrowing_limit is not None:
            stored = nominal - guaranteed
            used_in_cohort = max(0, used - guaranteed)
            in_cohort = min(stored - used_in_cohort + quota.borrowing_limit, in_cohort)
        return local + in_cohort

    def potential(self, cq: kueue.ClusterQueue, fr: FlavorResource) -> int:
        """The most ``cq`` could ever take of ``fr`` (nothing used anywhere)."""
        quota = cq.quota(*fr)
        nominal = quota.nominal if quota else 0
        if not cq.cohort:
            return nominal
        guaranteed = quota.guaranteed if quota else 0
        total = guaranteed + self._cohort_quota.get(cq.cohort, {}).get(fr, 0)
        if quota is not None and quota.borrowing_limit is not None:
            total = min(total, nominal + quota.borrowing_limit)
        return total

    def borrowing(self, cq: kueue.ClusterQueue, frs: Iterable[FlavorResource]) -> bool:
        """Whether ``cq`` uses more than its nominal quota of any of ``frs``."""
        for fr in frs:
            quota = cq.quota(*fr)
            if self.used(cq.name, fr) > (quota.nominal if quota else 0):
                return True
        return False


def quotas(cq: kueue.ClusterQueue) -> Iterable[tuple[FlavorResource, kueue.Quota]]:
    """Every (flavor, resource) the queue has a quota for, with that quota."""
    for group in cq.resource_groups:
        for fq in group.flavors:
            for resource, quota in fq.quotas.items():
                yield (fq.flavor, resource), quota


# -- flavor assignment ----------------------------------------------------------------------


class Mode(enum.IntEnum):
    """How a workload fits, best first."""

    FIT = 0
    PREEMPT = 1
    """Fits only once some admitted workloads are gone."""
    NO_FIT = 2


@dataclass(frozen=True, slots=True)
class Assignment:
    mode: Mode
    flavors: Mapping[str, str] = field(default_factory=dict)
    """resource -> flavor (for FIT, and for PREEMPT the flavor to preempt in)."""
    usage: Mapping[FlavorResource, int] = field(default_factory=dict)
    borrows: bool = False
    reason: str = ""
    """Why it does not fit now (empty for FIT)."""


def quota_request(cq: kueue.ClusterQueue, requests: resources.ResourceList) -> dict[str, int]:
    """The requests that count against ``cq``: ``pods`` only when the queue covers it."""
    return {
        name: amount
        for name, amount in requests.items()
        if amount and (name != resources.PODS or cq.group_of(name) is not None)
    }


def pod_usage(
    cq: kueue.ClusterQueue, pod: model.Pod, flavors: Mapping[str, str]
) -> dict[FlavorResource, int]:
    """One pod's usage under an assignment's flavors."""
    return {
        (flavors[name], name): amount
        for name, amount in quota_request(cq, pod.requests).items()
        if name in flavors
    }


def flavor_conflict(flavor: kueue.ResourceFlavor, pod: model.Pod) -> str:
    """Why ``pod`` cannot use ``flavor`` (empty when it can): flavor node labels against the
    pod's nodeSelector and required node affinity, flavor taints against its tolerations."""
    labels = flavor.node_labels
    for key, value in pod.node_selector.items():
        if key in labels and labels[key] != value:
            return f"nodeSelector {key}={value} conflicts with the flavor's node labels"
    if pod.required_terms is not None and labels:
        node = model.Node(name="", labels=labels)
        satisfiable = False
        for term in pod.required_terms:
            relevant = tuple(r for r in term.expressions if r.key in labels)
            if not relevant or predicates.term_matches(
                model.SelectorTerm(expressions=relevant), node
            ):
                satisfiable = True
                break
        if not satisfiable:
            return "required node affinity conflicts with the flavor's node labels"
    for taint in flavor.node_taints:
        if taint.effect in predicates.FILTERED_EFFECTS and not any(
            t.tolerates(taint) for t in pod.tolerations
        ):
            return f"taint {{{taint.key}: {taint.value}}} of the flavor is not tolerated"
    return ""


def _shortfall(
    cq: kueue.ClusterQueue, flavor: str, resource: str, want: int, book: QuotaBook
) -> str:
    fr = (flavor, resource)
    quota = cq.quota(flavor, resource)
    nominal = quota.nominal if quota else 0
    free = max(0, book.available(cq, fr))
    fmt = resources.format_amount
    text = (
        f"{resource} {fmt(resource, want)} requested, {fmt(resource, free)} of "
        f"{fmt(resource, nominal)} free in flavor {flavor}"
    )
    ceiling = book.potential(cq, fr)
    if want > ceiling:
        text += f" (never fits: at most {fmt(resource, ceiling)})"
    return text


def assign(
    cq: kueue.ClusterQueue,
    requests: resources.ResourceList,
    pods: Sequence[model.Pod],
    book: QuotaBook,
    *,
    pinned: Mapping[str, str] | None = None,
) -> Assignment:
    """Pick a flavor per resource group, walking each group's flavors in order (Kueue's
    defaults: a flavor that fits, with or without borrowing, ends the search; one that fits only
    by preempting is remembered and the next flavor is tried).  ``pinned`` (resource -> flavor)
    leaves only that flavor to a group covering the resource."""
    wanted = quota_request(cq, requests)
    for name in wanted:
        if cq.group_of(name) is None:
            return Assignment(
                Mode.NO_FIT, reason=f"resource {name} is not covered by ClusterQueue {cq.name}"
            )
    flavors: dict[str, str] = {}
    usage: dict[FlavorResource, int] = {}
    mode, borrows, reasons = Mode.FIT, False, []
    config = book.config
    for group in cq.resource_groups:
        names = [n for n in group.covered if n in wanted]
        if not names:
            continue
        chosen: str = ""
        preemptible: str = ""
        only = next((pinned[n] for n in names if pinned and n in pinned), None)
        for fq in group.flavors:
            if only is not None and fq.flavor != only:
                continue
            flavor = config.flavors.get(fq.flavor)
            conflict = (
                next((c for c in (flavor_conflict(flavor, p) for p in pods) if c), "")
                if flavor
                else "flavor not defined"
            )
            if conflict:
                reasons.append(f"flavor {fq.flavor}: {conflict}")
                continue
            short = [n for n in names if wanted[n] > book.available(cq, (fq.flavor, n))]
            if not short:
                chosen = fq.flavor
                break
            reasons.extend(_shortfall(cq, fq.flavor, n, wanted[n], book) for n in short)
            if not preemptible and all(
                wanted[n] <= book.potential(cq, (fq.flavor, n)) for n in names
            ):
                preemptible = fq.flavor
        picked = chosen or preemptible
        if not chosen:
            mode = max(mode, Mode.PREEMPT if preemptible else Mode.NO_FIT)
        if not picked:
            continue
        for n in names:
            flavors[n] = picked
            usage[(picked, n)] = wanted[n]
            quota = cq.quota(picked, n)
            if book.used(cq.name, (picked, n)) + wanted[n] > (quota.nominal if quota else 0):
                borrows = True
    if mode is Mode.FIT:
        return Assignment(Mode.FIT, flavors, usage, borrows)
    return Assignment(mode, flavors, usage, borrows, "; ".join(reasons))


# -- preemption -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Admitted:
    """An admitted workload as preemption sees it."""

    key: model.WorkloadKey
    cluster_queue: str
    priority: int
    created: float
    admitted_at: float
    usage: Usage


class PreemptionReason(enum.StrEnum):
    """Why a workload is preempted: Kueue's reasons, in the Preempted condition and Events."""

    IN_CLUSTER_QUEUE = "InClusterQueue"
    IN_COHORT_RECLAMATION = "InCohortReclamation"
    IN_COHORT_RECLAIM_WHILE_BORROWING = "InCohortReclaimWhileBorrowing"


class Target(NamedTuple):
    victim: Admitted
    reason: PreemptionReason


def _can_preempt(
    policy: kueue.WithinClusterQueue | kueue.ReclaimWithinCohort,
    *,
    priority: int,
    created: float,
    victim: Admitted,
) -> bool:
    if policy is kueue.WithinClusterQueue.NEVER or policy is kueue.ReclaimWithinCohort.NEVER:
        return False
    if policy is kueue.ReclaimWithinCohort.ANY or victim.priority < priority:
        return True
    return (
        policy is kueue.WithinClusterQueue.LOWER_OR_NEWER_EQUAL_PRIORITY
        and victim.priority == priority
        and victim.created > created
    )


def preemption_targets(
    cq: kueue.ClusterQueue,
    assignment: Assignment,
    *,
    priority: int,
    created: float,
    admitted: Sequence[Admitted],
    book: QuotaBook,
    exclude: Set[model.WorkloadKey] = frozenset(),
) -> list[Target]:
    """The admitted workloads to evict so that ``assignment`` fits, each with its reason, or
    [] when no allowed set of victims makes room.

    Kueue's classic preemption.  Candidates: workloads of the same queue allowed by
    ``withinClusterQueue``, and workloads of cohort queues that borrow, allowed by
    ``reclaimWithinCohort``.  A cohort candidate may be taken while the preemptor ends up
    borrowing only if the preemptor fits its own nominal quota anyway, or ``borrowWithinCohort``
    allows it (lower priority, at most ``maxPriorityThreshold``); the others only when the
    preemptor then needs no borrowing.  Order: other queues' first, then lowest priority, then
    most recently admitted.  Victims are taken greedily until the preemptor fits (a queue that
    stopped borrowing is skipped), then any victim not needed after all is given back.  This
    is tried twice, as Kueue does: letting the preemptor borrow (with only the candidates
    allowed then) and not; the first attempt that finds victims wins.
    """
    may_reclaim = bool(cq.cohort) and (
        cq.reclaim_within_cohort is not kueue.ReclaimWithinCohort.NEVER
    )
    if cq.within_cluster_queue is kueue.WithinClusterQueue.NEVER and not may_reclaim:
        return []
    need = assignment.usage
    config = book.config

    def nominal(fr: FlavorResource) -> int:
        quota = cq.quota(*fr)
        return quota.nominal if quota else 0

    short = {fr for fr, amount in need.items() if amount > book.available(cq, fr)}
    within_nominal = all(
        book.used(cq.name, fr) + amount <= nominal(fr) for fr, amount in need.items()
    )
    candidates: list[tuple[Target, bool]] = []  # (target, may be taken while borrowing)
    for victim in admitted:
        if victim.key in exclude or short.isdisjoint(victim.usage):
            continue
        if victim.cluster_queue == cq.name:
            if _can_preempt(
                cq.within_cluster_queue, priority=priority, created=created, victim=victim
            ):
                candidates.append((Target(victim, PreemptionReason.IN_CLUSTER_QUEUE), True))
            continue
        other = config.cluster_queues.get(victim.cluster_queue)
        if (
            other is None
            or not may_reclaim
            or other.cohort != cq.cohort
            or not book.borrowing(other, short)
            or not _can_preempt(
                cq.reclaim_within_cohort, priority=priority, created=created, victim=victim
            )
        ):
            continue
        if within_nominal:
            candidates.append((Target(victim, PreemptionReason.IN_COHORT_RECLAMATION), True))
        elif cq.borrow_within_cohort.allows(victim=victim.priority, preemptor=priority):
            reason = PreemptionReason.IN_COHORT_RECLAIM_WHILE_BORROWING
            candidates.append((Target(victim, reason), True))
        else:
            candidates.append((Target(victim, PreemptionReason.IN_COHORT_RECLAMATION), False))
    candidates.sort(
        key=lambda c: (
            c[0].victim.cluster_queue == cq.name,
            c[0].victim.priority,
            -c[0].victim.admitted_at,
            c[0].victim.key,
        )
    )

    def attempt(borrowing: bool) -> list[Target]:
        trial = book.copy()

        def fits() -> bool:
            return all(
                amount <= trial.available(cq, fr)
                and (borrowing or trial.used(cq.name, fr) + amount <= nominal(fr))
                for fr, amount in need.items()
            )

        chosen: list[Target] = []
        for target, while_borrowing in candidates:
            victim = target.victim
            if victim.cluster_queue != cq.name and (
                (borrowing and not while_borrowing)
                or not trial.borrowing(config.cluster_queues[victim.cluster_queue], short)
            ):
                continue
            trial.remove(victim.cluster_queue, victim.usage)
            chosen.append(target)
            if fits():
                break
        else:
            return []
        for target in reversed(chosen[:-1]):
            victim = target.victim
            trial.add(victim.cluster_queue, victim.usage)
            if fits():
                chosen = [t for t in chosen if t is not target]
            else:
                trial.remove(victim.cluster_queue, victim.usage)
        return chosen

    # Kueue's order of the two attempts, for cohorts without hierarchy.
    forbidden = cq.borrow_within_cohort.policy is kueue.BorrowWithinCohortPolicy.NEVER
    if not any(c[0].victim.cluster_queue != cq.name for c in candidates) or (
        forbidden and any(book.used(cq.name, fr) >= nominal(fr) for fr in short)
    ):
        return attempt(True)
    if forbidden and not within_nominal:
        return attempt(False) or attempt(True)
    return attempt(True) or attempt(False)
