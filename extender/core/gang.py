"""Gangs: who belongs to which pod group, what its minCount is, and where the whole group fits.

Membership, first match wins: ``spec.workloadRef`` (1.35) or ``spec.schedulingGroup`` (1.36+);
the ``muster.dev/workload`` + ``muster.dev/pod-group`` labels; then the keys of coscheduling,
Kueue pod groups and Volcano.  ``minCount`` comes from the Workload object when there is one,
else from annotations.  ``plan`` places all members at once against the cluster view,
preferring the fewest topology domains.  Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from extender.core import cluster, model, predicates, resources

WORKLOAD_LABEL = "muster.dev/workload"
POD_GROUP_LABEL = "muster.dev/pod-group"
REPLICA_KEY_LABEL = "muster.dev/replica-key"
MIN_COUNT_ANNOTATION = "muster.dev/min-count"
TIMEOUT_ANNOTATION = "muster.dev/gang-timeout-seconds"
COSCHEDULING_LABEL = "scheduling.x-k8s.io/pod-group"
KUEUE_GROUP_LABEL = "kueue.x-k8s.io/pod-group-name"
KUEUE_TOTAL_ANNOTATION = "kueue.x-k8s.io/pod-group-total-count"
VOLCANO_ANNOTATION = "scheduling.k8s.io/group-name"
DEFAULT_POD_GROUP = "main"


@dataclass(frozen=True, slots=True, order=True)
class GroupKey:
    namespace: str
    workload: str
    pod_group: str
    replica_key: str = ""

    def __str__(self) -> str:
        base = f"{self.namespace}/{self.workload}/{self.pod_group}"
        return f"{base}/{self.replica_key}" if self.replica_key else base

    @property
    def workload_key(self) -> model.WorkloadKey:
        """The key the group is admitted under, when it is a gang."""
        group = f"{self.pod_group}/{self.replica_key}" if self.replica_key else self.pod_group
        return model.WorkloadKey(model.WorkloadKind.GANG, self.namespace, self.workload, group)


@dataclass(frozen=True, slots=True)
class Membership:
    key: GroupKey
    source: str
    """Which rule matched: ``workloadRef``, ``schedulingGroup``, ``labels``, ``coscheduling``,
    ``kueue`` or ``volcano``."""


def membership(pod: model.Pod) -> Membership | None:
    """The pod's group, or None for a pod that belongs to no group."""
    ns, labels, annotations = pod.namespace, pod.labels, pod.annotations
    ref = pod.workload_ref
    if ref is not None:
        return Membership(GroupKey(ns, ref.name, ref.pod_group, ref.replica_key), "workloadRef")
    if pod.scheduling_group:
        return Membership(GroupKey(ns, "", pod.scheduling_group), "schedulingGroup")
    if WORKLOAD_LABEL in labels:
        key = GroupKey(
            ns,
            labels[WORKLOAD_LABEL],
            labels.get(POD_GROUP_LABEL) or DEFAULT_POD_GROUP,
            labels.get(REPLICA_KEY_LABEL, ""),
        )
        return Membership(key, "labels")
    for source, names, name_key in (
        ("coscheduling", labels, COSCHEDULING_LABEL),
        ("kueue", labels, KUEUE_GROUP_LABEL),
        ("volcano", annotations, VOLCANO_ANNOTATION),
    ):
        if name_key in names:
            return Membership(GroupKey(ns, names[name_key], DEFAULT_POD_GROUP), source)
    return None


# -- policy ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PodGroupPolicy:
    """One ``spec.podGroups[]`` entry of a Workload: ``gang`` with a minCount, or ``basic``."""

    gang: bool
    min_count: int = 1


@dataclass(frozen=True, slots=True)
class Workload:
    """A Workload object (``scheduling.k8s.io/v1alpha1`` or muster's CRD of the same schema)."""

    namespace: str
    name: str
    pod_groups: Mapping[str, PodGroupPolicy]
    active: bool = True
    """``spec.active`` (false: the workload is deactivated, see ``core.lifecycle``)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """What the group is: a gang of ``min_count`` (``min_count`` 0: not a gang), or a reason
    it cannot be decided yet (``missing``)."""

    min_count: int = 0
    timeout_seconds: float = 0.0
    missing: str = ""

    @property
    def is_gang(self) -> bool:
        return self.min_count > 0


def _positive_int(value: str | None) -> int | None:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number > 0 else None


def policy(
    member: Membership,
    pod: model.Pod,
    *,
    workloads: Mapping[tuple[str, str], Workload],
    default_timeout: float,
) -> Policy:
    """Resolve minCount and deadline for a member pod.

    Order: the Workload object's pod group (``basic`` -> not a gang), then the
    ``muster.dev/min-count`` annotation, then Kueue's ``pod-group-total-count``.
    """
    timeout = default_timeout
    raw_timeout = pod.annotations.get(TIMEOUT_ANNOTATION)
    if raw_timeout is not None:
        try:
            timeout = max(1.0, float(raw_timeout))
        except ValueError:
            pass
    key = member.key
    workload = workloads.get((key.namespace, key.workload)) if key.workload else None
    if workload is not None:
        group = workload.pod_groups.get(key.pod_group)
        if group is None:
            return Policy(
                missing=f"pod group {key.pod_group!r} not in Workload "
                f"{key.namespace}/{key.workload}"
            )
        return Policy(min_count=group.min_count if group.gang else 0, timeout_seconds=timeout)
    count = _positive_int(pod.annotations.get(MIN_COUNT_ANNOTATION))
    if count is None and member.source == "kueue":
        count = _positive_int(pod.annotations.get(KUEUE_TOTAL_ANNOTATION))
    if count is not None:
        return Policy(min_count=count, timeout_seconds=timeout)
    if member.source in ("workloadRef", "labels"):
        return Policy(
            missing=f"Workload {key.namespace}/{key.workload} not found "
            f"and no {MIN_COUNT_ANNOTATION} annotation"
        )
    return Policy(missing=f"no {MIN_COUNT_ANNOTATION} annotation")


# -- planning -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    nodes: Mapping[str, str]
    """Member uid -> node name."""

    domain: str
    """The topology domain used, e.g. ``muster.dev/rack=rack-0003``, or ``cluster``."""


@dataclass(frozen=True, slots=True)
class Unplaceable:
    reason: str


Shape = tuple[object, ...]


def _shape(pod: model.Pod) -> Shape:
    """Members with equal shapes are interchangeable for placement."""
    return (
        tuple(sorted(pod.requests.items())),
        tuple(sorted(pod.node_selector.items())),
        pod.required_terms,
        pod.tolerations,
    )


def _fit(
    members: Sequence[tuple[model.Pod, Shape]], nodes: Sequence[cluster.NodeState]
) -> dict[str, str]:
    """First-fit of the members onto ``nodes`` (in the given order), with the capacity the
    earlier members took.  Identical members resume where the previous one fit, so a run of
    identical members costs O(nodes + members)."""
    placed: dict[str, str] = {}
    extra: dict[str, dict[str, int]] = {}
    resume: dict[Shape, int] = {}
    static: dict[tuple[Shape, str], bool] = {}
    for pod, shape in members:
        start = resume.get(shape, 0)
        for index in range(start, len(nodes)):
            state = nodes[index]
            node = state.node
            ok = static.get((shape, node.name))
            if ok is None:
                ok = predicates.check_static(pod, node) is None
                static[(shape, node.name)] = ok
            if not ok:
                continue
            taken = extra.get(node.name)
            used: resources.ResourceList = state.used
            if taken:
                merged = dict(state.used)
                resources.add(merged, taken)
                used = merged
            if resources.insufficient(pod.requests, allocatable=node.allocatable, used=used):
                continue
            placed[pod.uid] = node.name
            resources.add(extra.setdefault(node.name, {}), pod.requests)
            resume[shape] = index
            break
        else:
            resume[shape] = len(nodes)
    return placed


def could_hold(need: resources.ResourceList | None, free: resources.ResourceList) -> bool:
    """False when a domain with ``free`` (its nodes' free capacity summed) certainly cannot
    hold members needing ``need`` in total; ``need`` None (a negative request somewhere, so
    the sum proves nothing) never rules a domain out.

    Sound because a member is placed on a node only if its request fits in what the node has
    left, so what one domain gives all members is at most its summed free capacity.  Example:
    a rack of 20 nodes with 4 cpu each holds at most 80 cpu of a 1000 x 100m gang (100 cpu),
    so it is skipped without trying a single member.
    """
    if need is None:
        return True
    return all(amount <= free.get(name, 0) for name, amount in need.items() if amount > 0)


def total_need(members: Iterable[model.Pod]) -> dict[str, int] | None:
    """The members' requests summed, or None if any amount is negative."""
    need: dict[str, int] = {}
    for pod in members:
        for name, amount in pod.requests.items():
            if amount < 0:
                return None
            need[name] = need.get(name, 0) + amount
    return need


def describe_need(members: Sequence[model.Pod]) -> str:
    """``8 x {cpu: 4, memory: 8Gi}`` for identical members, else the total."""
    shown = [{k: v for k, v in p.requests.items() if k != resources.PODS} for p in members]
    if all(s == shown[0] for s in shown):
        return f"{len(members)} x {resources.describe(shown[0])}"
    return f"{len(members)} pods, {resources.describe(resources.total(shown))} in total"


def plan(
    members: Sequence[model.Pod],
    view: cluster.ClusterState,
    *,
    topology_keys: Sequence[str] = (),
) -> Placement | Unplaceable:
    """Place every member at once, in the narrowest topology domain that holds them all.

    Levels are tried in order (e.g. rack, then zone), domains within a level by name, then the
    whole cluster.  Example: 8 members of 1 cpu, racks of 4-cpu nodes: the first rack with 8
    free cpus (counted node by node, not summed) wins.  Domains whose summed free capacity
    cannot hold the members' total are skipped untried (``could_hold``): a skipped domain
    could not have held the gang, so the result is the same as trying every domain; only
    the "best domain fits" count of an unplaceable gang is taken over the domains tried
    (the whole cluster always is).
    """
    ordered = sorted(members, key=lambda p: (-p.requests.get(resources.CPU, 0), p.uid))
    shaped = [(pod, _shape(pod)) for pod in ordered]
    need = total_need(ordered)
    best = 0
    for key in topology_keys:
        for domain in view.domains(key):
            if not could_hold(need, domain.free):
                continue
            placed = _fit(shaped, list(domain.nodes.values()))
            if len(placed) == len(ordered):
                return Placement(placed, domain.name)
            best = max(best, len(placed))
    placed = _fit(shaped, list(view.nodes.values()))
    if len(placed) == len(ordered):
        return Placement(placed, "cluster")
    best = max(best, len(placed))
    return Unplaceable(f"gang needs {describe_need(ordered)}; best domain fits {best}")
