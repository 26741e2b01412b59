"""Node checks: one small pure function per rule, each answering with a ``Rejection`` or None.

The reasons mirror kube-scheduler's own plugin messages so users recognise them in
FailedScheduling events.  ``UNRESOLVABLE`` means preemption cannot help (the node's labels,
taints or cordon decide it); ``UNSCHEDULABLE`` means freeing capacity could.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from extender.core import model, resources


class Code(enum.Enum):
    UNSCHEDULABLE = "Unschedulable"
    UNRESOLVABLE = "UnschedulableAndUnresolvable"


@dataclass(frozen=True, slots=True)
class Rejection:
    code: Code
    reason: str


REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_SELECTOR = "node(s) didn't match node selector"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity"
REASON_TOO_MANY_PODS = "Too many pods"

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
FILTERED_EFFECTS = ("NoSchedule", "NoExecute")
"""The taint effects a pod must tolerate to be placed; PreferNoSchedule is left to scoring."""

_CORDONED = Rejection(Code.UNRESOLVABLE, REASON_UNSCHEDULABLE)
_SELECTOR = Rejection(Code.UNRESOLVABLE, REASON_SELECTOR)
_AFFINITY = Rejection(Code.UNRESOLVABLE, REASON_AFFINITY)


def is_schedulable(pod: model.Pod, node: model.Node) -> Rejection | None:
    """A cordoned node takes only pods tolerating its ``unschedulable`` taint."""
    if not node.unschedulable:
        return None
    taint = model.Taint(key=UNSCHEDULABLE_TAINT, effect="NoSchedule")
    if any(t.tolerates(taint) for t in pod.tolerations):
        return None
    return _CORDONED


def matches_node_selector(pod: model.Pod, node: model.Node) -> Rejection | None:
    """Every ``nodeSelector`` label must be on the node with the same value."""
    labels = node.labels
    for key, value in pod.node_selector.items():
        if labels.get(key) != value:
            return _SELECTOR
    return None


def term_matches(term: model.SelectorTerm, node: model.Node) -> bool:
    """All requirements of the term hold; a term with none matches nothing."""
    if not term.expressions and not term.fields:
        return False
    fields = {"metadata.name": node.name}
    return all(r.holds(node.labels) for r in term.expressions) and all(
        r.holds(fields) for r in term.fields
    )


def matches_required_affinity(pod: model.Pod, node: model.Node) -> Rejection | None:
    """At least one required node selector term matches (terms are ORed)."""
    if pod.required_terms is None:
        return None
    if any(term_matches(term, node) for term in pod.required_terms):
        return None
    return _AFFINITY


def tolerates_taints(pod: model.Pod, node: model.Node) -> Rejection | None:
    """Every NoSchedule/NoExecute taint must be tolerated; PreferNoSchedule is for scoring."""
    for taint in node.taints:
        if taint.effect not in FILTERED_EFFECTS:
            continue
        if not any(t.tolerates(taint) for t in pod.tolerations):
            shown = f"{taint.key}: {taint.value}" if taint.value else taint.key
            return Rejection(
                Code.UNRESOLVABLE, f"node(s) had taint {{{shown}}}, that the pod didn't tolerate"
            )
    return None


def fits_resources(
    request: resources.ResourceList, node: model.Node, used: resources.ResourceList
) -> Rejection | None:
    """The request fits the node's allocatable minus what is already used or held there."""
    short = resources.insufficient(request, allocatable=node.allocatable, used=used)
    if not short:
        return None
    reasons = [REASON_TOO_MANY_PODS if n == resources.PODS else f"Insufficient {n}" for n in short]
    return Rejection(Code.UNSCHEDULABLE, ", ".join(reasons))


def check_static(pod: model.Pod, node: model.Node) -> Rejection | None:
    """The checks that depend only on the pod and the node object, not on what runs there."""
    return (
        is_schedulable(pod, node)
        or matches_node_selector(pod, node)
        or matches_required_affinity(pod, node)
        or tolerates_taints(pod, node)
    )


def check(pod: model.Pod, node: model.Node, used: resources.ResourceList) -> Rejection | None:
    """All filter checks, cheapest and unresolvable first; the first failure wins."""
    return check_static(pod, node) or fits_resources(pod.requests, node, used)


@dataclass(slots=True)
class FilterOutcome:
    """Nodes sorted by verdict, as filter answers: ``passed`` in the offered order, and the
    reason of every rejected node, split by whether preemption could help."""

    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Unschedulable: freeing capacity could make the node fit."""
    unresolvable: dict[str, str] = field(default_factory=dict)


def sort(names: Iterable[str], judge: Callable[[str], Rejection | None]) -> FilterOutcome:
    """Judge each named node once and sort it into passed, failed or unresolvable."""
    passed: list[str] = []
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    for name in names:
        verdict = judge(name)
        if verdict is None:
            passed.append(name)
        elif verdict.code is Code.UNRESOLVABLE:
            unresolvable[name] = verdict.reason
        else:
            failed[name] = verdict.reason
    return FilterOutcome(passed, failed, unresolvable)
