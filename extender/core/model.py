"""The domain's value types: pods, nodes, taints, tolerations and node selector terms.

Frozen, slotted dataclasses built once from raw Kubernetes JSON by ``core.objects``; everything
past the edge of the process works on these, never on raw dicts or client model classes.  The
matching rules that belong to a value live on it: a toleration against a taint, a selector
requirement against a label map.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from extender.core import resources

SUCCEEDED = "Succeeded"
FAILED = "Failed"

# Possessive: a long run of digits that ends in something else fails without backtracking.
_INTEGER = re.compile(r"[+-]?+[0-9]++")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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
    """One ``matchExpressions``/``matchFields`` entry of a node selector term, or one
    ``matchExpressions`` entry of a label selector (where Gt and Lt are refused when parsed)."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def holds(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy the requirement, as Kubernetes' selectors decide it."""
        op = self.operator
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        value = labels.get(self.key)
        if op is Operator.NOT_IN:  # an absent label is "not in" any set
            return value not in self.values
        if value is None:
            return False
        if op is Operator.IN:
            return value in self.values
        # Gt / Lt compare integers as Go's strconv.ParseInt(s, 10, 64) reads them; a value that
        # is no such integer (or not a single value) never matches.
        if len(self.values) != 1:
            return False
        have, bound = parse_int64(value), parse_int64(self.values[0])
        if have is None or bound is None:
            return False
        return have > bound if op is Operator.GT else have < bound


def parse_int64(text: str) -> int | None:
    """``text`` as Go's ``strconv.ParseInt(text, 10, 64)`` reads it (an optional sign, decimal
    digits, leading zeros allowed), or None when that fails, e.g. outside the int64 range.
    Cheap for any length: at most 19 significant digits are ever converted."""
    if not _INTEGER.fullmatch(text):
        return None
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 19:
        return None
    number = -int(digits) if text[0] == "-" else int(digits)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


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


class WorkloadKind(enum.StrEnum):
    POD = "pod"
    """A queued pod admitted on its own."""
    GANG = "gang"
    """A pod group admitted whole."""
    JOB = "job"
    """An elastic Job's pods, admitted as one workload that may grow and shrink."""


class WorkloadKey(NamedTuple):
    """What is admitted as a whole, as Kueue's ``workload.Reference`` names it: typed parts,
    never a string taken apart.  ``str()`` is the name people read (Events, ``/debug``):
    ``pod/<ns>/<pod>``, ``gang/<ns>/<workload>/<group>``, ``job/<ns>/<job>``, and
    ``#grown`` after the pending part of an admitted elastic Job that grew.

    A tuple, not a dataclass: one is made per queued pod and filter call, and a tuple is
    built and hashed several times faster."""

    kind: WorkloadKind
    namespace: str
    name: str
    """The pod's, the Job's or the gang's Workload's name."""
    group: str = ""
    """Gangs: the pod group, with ``/<replica key>`` when the group is replicated."""
    grown: bool = False
    """The pods an admitted elastic workload added, waiting for quota of their own."""

    def __str__(self) -> str:
        text = f"{self.kind.value}/{self.namespace}/{self.name}"
        if self.group:
            text = f"{text}/{self.group}"
        return f"{text}#grown" if self.grown else text

    @property
    def admitted(self) -> WorkloadKey:
        """The key of the admission this workload belongs to (itself, unless it grew)."""
        return self._replace(grown=False) if self.grown else self

    @property
    def growth(self) -> WorkloadKey:
        """The key of the pods this admitted workload adds."""
        return self._replace(grown=True)


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
