"""Node scores for prioritize: integers 0..10 (kube-scheduler's MaxExtenderPriority).

``LeastAllocated`` spreads pods (emptier nodes score higher), ``MostAllocated`` packs them
(fuller nodes score higher).  The fraction is taken per resource against allocatable, with the
pod's own request included, and averaged over the weighted resources, as NodeResourcesFit does.
Scores are absolute (not rescaled per call), so the same node state always scores the same.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from extender.core import model, resources

MAX_SCORE = 10

# kube-scheduler scores a pod without requests as if it asked for 100m cpu and 200Mi memory.
_NON_ZERO_DEFAULTS = {resources.CPU: 100, resources.MEMORY: 200 * 2**20}
DEFAULT_WEIGHTS: Mapping[str, int] = {resources.CPU: 1, resources.MEMORY: 1}


class Scores(NamedTuple):
    """Prioritize's answer as two parallel lists: ``values[i]`` scores ``hosts[i]`` (no pair
    objects: a run of identical pods answers hundreds of hosts per call)."""

    hosts: Sequence[str]
    values: Sequence[int]

    def pairs(self) -> list[tuple[str, int]]:
        return list(zip(self.hosts, self.values, strict=True))


class Strategy(enum.StrEnum):
    LEAST_ALLOCATED = "LeastAllocated"
    MOST_ALLOCATED = "MostAllocated"


def score(
    strategy: Strategy,
    request: resources.ResourceList,
    node: model.Node,
    used: resources.ResourceList,
    *,
    weights: Mapping[str, int] = DEFAULT_WEIGHTS,
) -> int:
    """Score one node for a pod.  Example (LeastAllocated): 4 cpu node, 1 cpu used, pod asks
    1 cpu -> cpu fraction free 2/4 -> 5; memory 8Gi, none used, pod 2Gi -> 7 (7.5 rounded
    down); average (5 + 7) // 2 = 6.
    """
    total = 0
    weight_sum = 0
    for name, weight in weights.items():
        capacity = node.allocatable.get(name, 0)
        if capacity <= 0:
            continue
        want = request.get(name) or _NON_ZERO_DEFAULTS.get(name, 0)
        requested = used.get(name, 0) + want
        if strategy is Strategy.LEAST_ALLOCATED:
            part = 0 if requested >= capacity else (capacity - requested) * MAX_SCORE // capacity
        else:
            part = MAX_SCORE if requested >= capacity else requested * MAX_SCORE // capacity
        total += part * weight
        weight_sum += weight
    if weight_sum <= 0:
        return 0
    result = total // weight_sum
    # Only inputs Kubernetes forbids (a negative request or usage) leave 0..10; the scheduler
    # would take such a score as it is (it does not clamp), so clamp it here.
    return result if 0 <= result <= MAX_SCORE else max(0, min(result, MAX_SCORE))
