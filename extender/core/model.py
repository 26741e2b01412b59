"""The domain's value types: pods, nodes, taints, tolerations and node selector terms.

Frozen, slotted dataclasses built once from raw Kubernetes JSON by ``core.objects``; everything
past the edge of the process works on these, never on raw dicts or client model classes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from extender.core import resources

SUCCEEDED = "Succeeded"
FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = ""


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' ``Toleration.ToleratesTaint``: effect, key and value (or Exists) match."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.operator in ("Equal", "") and self.value == taint.value


class Operator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions``/``matchFields`` entry of a node selector term."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SelectorTerm:
    """A node selector term: every requirement must hold (an empty term matches no node)."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()


@dataclass(frozen=True, slots=True)
class PreferredTerm:
    weight: int
    term: SelectorTerm


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    allocatable: resources.ResourceList = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    """``spec.workloadRef`` (Kubernetes 1.35): the pod's Workload and pod group."""

    name: str
    pod_group: str
    replica_key: str = ""


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod as the extender sees it, with its effective requests computed once.

    ``requests`` already follows Kubernetes' rules (containers summed, init containers maxed,
    sidecars added, overhead added, limits standing in for missing requests) and includes
    ``pods: 1``.
    """

    uid: str
    namespace: str
    name: str
    requests: resources.ResourceList = field(default_factory=dict)
    node_name: str = ""
    phase: str = "Pending"
    deleting: bool = False
    priority: int = 0
    created: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    required_terms: tuple[SelectorTerm, ...] | None = None
    preferred_terms: tuple[PreferredTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    host_ports: tuple[int, ...] = ()
    has_pod_affinity: bool = False
    has_topology_spread: bool = False
    resource_version: str = ""
    workload_ref: WorkloadRef | None = None
    scheduling_group: str = ""
    """``spec.schedulingGroup.podGroupName`` (Kubernetes 1.36+)."""
    ready: bool = False
    """``status.conditions`` has Ready=True (the kubelet's readiness)."""
    unschedulable: bool = False
    """``status.conditions`` has PodScheduled=False: a scheduler tried the pod and could not
    place it (no node fit, or an extender call failed)."""
    scheduler_name: str = "default-scheduler"
    """``spec.schedulerName``: the scheduler (profile) responsible for the pod."""
    owner: tuple[str, str] | None = None
    """The controlling owner's (kind, name), e.g. ``("Job", "train")``."""
    requests_pods: bool = False
    """The spec itself requests the ``pods`` resource (``requests`` counts it as 1 anyway);
    Kueue reserves that name for its own pod count, so a queued pod doing this is refused."""

    @property
    def key(self) -> str:
        """``namespace/name``, the pod's identity for humans and the API."""
        return f"{self.namespace}/{self.name}"

    @property
    def terminated(self) -> bool:
        """Succeeded or Failed pods hold no node resources."""
        return self.phase in (SUCCEEDED, FAILED)
