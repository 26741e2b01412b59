"""Raw Kubernetes JSON -> domain objects, converted once at the edge and validated on the way.

Inputs are plain dicts as decoded from the wire or a watch stream (camelCase keys, ``null`` for
empty values, as Go marshals them).  A malformed object raises ``ObjectError`` naming the path
of the offending field, so adapters can answer with a clear HTTP 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from extender.core import gang, lifecycle, model, resources

DEFAULT_SCHEDULER = "default-scheduler"
"""``spec.schedulerName`` when a pod names none (the API server's default)."""


class ObjectError(ValueError):
    """A Kubernetes object whose shape or values make no sense (the message names the field)."""


def _dict(parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ObjectError(f"{path}.{key} must be an object, got {type(value).__name__}")
    return value


def _list(parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ObjectError(f"{path}.{key} must be a list, got {type(value).__name__}")
    return value


def _str(parent: Mapping[str, Any], key: str, path: str, default: str = "") -> str:
    value = parent.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ObjectError(f"{path}.{key} must be a string, got {type(value).__name__}")
    return value


def _int(parent: Mapping[str, Any], key: str, path: str, default: int = 0) -> int:
    value = parent.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ObjectError(f"{path}.{key} must be an integer, got {type(value).__name__}")
    return value


def _str_map(parent: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    raw = _dict(parent, key, path)
    for name, value in raw.items():
        if not isinstance(value, str):
            raise ObjectError(f"{path}.{key}.{name} must be a string")
    return dict(raw)


def _quantities(parent: Mapping[str, Any], key: str, path: str) -> dict[str, int]:
    """A ``{resource: quantity}`` map as amounts.  Kubernetes refuses negative quantities in
    every map read here (requests, limits, overhead, capacity, allocatable), and so does this.
    Errors name the map and the resource: ``pod.spec.overhead: cpu: must not be negative``."""
    raw = _dict(parent, key, path)
    amounts = {}
    for name, value in raw.items():
        try:
            amount = resources.amount(name, value)
        except resources.QuantityError as exc:
            raise ObjectError(f"{path}.{key}: {name}: {exc}") from None
        if amount < 0:
            raise ObjectError(
                f"{path}.{key}: {name}: must not be negative, got {resources.shown(value)}"
            )
        amounts[name] = amount
    return amounts


def _timestamp(value: object, path: str) -> float:
    if value is None:
        return 0.0
    if not isinstance(value, str):
        raise ObjectError(f"{path} must be an RFC 3339 time string")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ObjectError(f"{path} is not an RFC 3339 time: {value!r}") from None


# -- nodes ----------------------------------------------------------------------------------


# A DNS-1123 subdomain, which the API server requires of every Node's name (ValidateNodeName).
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def to_node(raw: object) -> model.Node:
    """Convert a raw v1.Node.  Its name must be a DNS subdomain, as the API server demands, so
    node names never need escaping in JSON."""
    if not isinstance(raw, dict):
        raise ObjectError("Node must be an object")
    meta = _dict(raw, "metadata", "node")
    name = _str(meta, "name", "node.metadata")
    if not name:
        raise ObjectError("node.metadata.name is missing")
    if len(name) > 253 or not _NODE_NAME.fullmatch(name):
        raise ObjectError(
            f"node.metadata.name {name!r} is not a DNS subdomain "
            "(lower-case letters, digits, '-' and '.', at most 253 characters)"
        )
    spec = _dict(raw, "spec", "node")
    status = _dict(raw, "status", "node")
    allocatable = _quantities(status, "allocatable", "node.status") or _quantities(
        status, "capacity", "node.status"
    )
    taints = tuple(
        model.Taint(
            key=_str(t, "key", "node.spec.taints[]"),
            value=_str(t, "value", "node.spec.taints[]"),
            effect=_str(t, "effect", "node.spec.taints[]"),
        )
        for t in _list(spec, "taints", "node.spec")
        if isinstance(t, dict)
    )
    return model.Node(
        name=name,
        labels=_str_map(meta, "labels", "node.metadata"),
        allocatable=allocatable,
        taints=taints,
        unschedulable=bool(spec.get("unschedulable")),
    )


# -- pods -----------------------------------------------------------------------------------


def _container_requests(container: Mapping[str, Any], path: str) -> dict[str, int]:
    """A container's requests, with limits standing in for requests it does not set."""
    res = _dict(container, "resources", path)
    requests = _quantities(res, "requests", f"{path}.resources")
    for name, value in _quantities(res, "limits", f"{path}.resources").items():
        requests.setdefault(name, value)
    return requests


def effective_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """Kubernetes' effective pod request, plus ``pods: 1``.

    Containers are summed; restartable (sidecar) init containers add to everything after them;
    each regular init container needs its own request plus the sidecars started before it; the
    pod needs the maximum of the two, plus ``overhead``.  Example: containers 1 cpu + 1 cpu,
    init container 3 cpu, sidecar 500m -> max(2 + 0.5, 3) = 3 cpu.  Pod-level
    ``spec.resources.requests`` (PodLevelResources) replaces the aggregate where set.
    """
    containers: dict[str, int] = {}
    for i, container in enumerate(_list(spec, "containers", "pod.spec")):
        if not isinstance(container, dict):
            raise ObjectError(f"pod.spec.containers[{i}] must be an object")
        resources.add(containers, _container_requests(container, f"pod.spec.containers[{i}]"))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for i, container in enumerate(_list(spec, "initContainers", "pod.spec")):
        if not isinstance(container, dict):
            raise ObjectError(f"pod.spec.initContainers[{i}] must be an object")
        request = _container_requests(container, f"pod.spec.initContainers[{i}]")
        if container.get("restartPolicy") == "Always":
            resources.add(sidecars, request)
            init_peak = resources.maximum(init_peak, sidecars)
        else:
            running = dict(sidecars)
            resources.add(running, request)
            init_peak = resources.maximum(init_peak, running)
    resources.add(containers, sidecars)
    total = resources.maximum(containers, init_peak)
    pod_level = _quantities(_dict(spec, "resources", "pod.spec"), "requests", "pod.spec.resources")
    total.update(pod_level)
    resources.add(total, _quantities(spec, "overhead", "pod.spec"))
    total[resources.PODS] = 1
    return total


def _requirements(raw: list[Any], path: str) -> tuple[model.Requirement, ...]:
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ObjectError(f"{path}[{i}] must be an object")
        operator = _str(item, "operator", f"{path}[{i}]")
        try:
            op = model.Operator(operator)
        except ValueError:
            raise ObjectError(f"{path}[{i}].operator: {operator!r} is not an operator") from None
        values = _list(item, "values", f"{path}[{i}]")
        if not all(isinstance(v, str) for v in values):
            raise ObjectError(f"{path}[{i}].values must be strings")
        out.append(
            model.Requirement(
                key=_str(item, "key", f"{path}[{i}]"), operator=op, values=tuple(values)
            )
        )
    return tuple(out)


def _term(raw: object, path: str) -> model.SelectorTerm:
    if not isinstance(raw, dict):
        raise ObjectError(f"{path} must be an object")
    return model.SelectorTerm(
        expressions=_requirements(_list(raw, "matchExpressions", path), f"{path}.matchExpressions"),
        fields=_requirements(_list(raw, "matchFields", path), f"{path}.matchFields"),
    )


def _node_affinity(
    spec: Mapping[str, Any],
) -> tuple[tuple[model.SelectorTerm, ...] | None, tuple[model.PreferredTerm, ...]]:
    path = "pod.spec.affinity.nodeAffinity"
    affinity = _dict(_dict(spec, "affinity", "pod.spec"), "nodeAffinity", "pod.spec.affinity")
    required = None
    if affinity.get("requiredDuringSchedulingIgnoredDuringExecution") is not None:
        selector = _dict(affinity, "requiredDuringSchedulingIgnoredDuringExecution", path)
        terms = _list(selector, "nodeSelectorTerms", f"{path}.required")
        required = tuple(
            _term(t, f"{path}.required.nodeSelectorTerms[{i}]") for i, t in enumerate(terms)
        )
    preferred = []
    preferences = _list(affinity, "preferredDuringSchedulingIgnoredDuringExecution", path)
    for i, item in enumerate(preferences):
        where = f"{path}.preferred[{i}]"
        if not isinstance(item, dict):
            raise ObjectError(f"{where} must be an object")
        preferred.append(
            model.PreferredTerm(
                weight=_int(item, "weight", where), term=_term(item.get("preference") or {}, where)
            )
        )
    return required, tuple(preferred)


def _tolerations(spec: Mapping[str, Any]) -> tuple[model.Toleration, ...]:
    out = []
    for i, item in enumerate(_list(spec, "tolerations", "pod.spec")):
        where = f"pod.spec.tolerations[{i}]"
        if not isinstance(item, dict):
            raise ObjectError(f"{where} must be an object")
        out.append(
            model.Toleration(
                key=_str(item, "key", where),
                operator=_str(item, "operator", where, "Equal"),
                value=_str(item, "value", where),
                effect=_str(item, "effect", where),
            )
        )
    return tuple(out)


def _host_ports(spec: Mapping[str, Any]) -> tuple[int, ...]:
    ports = []
    for kind in ("containers", "initContainers"):
        for container in _list(spec, kind, "pod.spec"):
            for port in _list(container, "ports", f"pod.spec.{kind}[]"):
                if isinstance(port, dict) and port.get("hostPort"):
                    ports.append(_int(port, "hostPort", f"pod.spec.{kind}[].ports[]"))
    return tuple(ports)


def _workload_ref(spec: Mapping[str, Any]) -> model.WorkloadRef | None:
    ref = spec.get("workloadRef")
    if ref is None:
        return None
    if not isinstance(ref, dict):
        raise ObjectError("pod.spec.workloadRef must be an object")
    path = "pod.spec.workloadRef"
    name = _str(ref, "name", path)
    if not name:
        raise ObjectError(f"{path}.name is missing")
    return model.WorkloadRef(
        name=name,
        pod_group=_str(ref, "podGroup", path),
        replica_key=_str(ref, "podGroupReplicaKey", path),
    )


@dataclass(frozen=True, slots=True)
class PodSpec:
    """The converted ``spec`` of a pod: everything ``model.Pod`` takes from it.  Pods made
    from one template (a Job's or ReplicaSet's) have equal specs, so a caller may convert
    one spec once and reuse it for each of them (``to_pod(raw, spec=...)``)."""

    requests: dict[str, int]
    node_name: str
    priority: int
    node_selector: dict[str, str]
    required_terms: tuple[model.SelectorTerm, ...] | None
    preferred_terms: tuple[model.PreferredTerm, ...]
    tolerations: tuple[model.Toleration, ...]
    host_ports: tuple[int, ...]
    has_pod_affinity: bool
    has_topology_spread: bool
    workload_ref: model.WorkloadRef | None
    scheduling_group: str
    requests_pods: bool
    scheduler_name: str


def to_pod_spec(raw: object) -> PodSpec:
    """Convert a raw v1.PodSpec (``None`` is an empty spec)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ObjectError(f"pod.spec must be an object, got {type(raw).__name__}")
    spec: Mapping[str, Any] = raw
    affinity = _dict(spec, "affinity", "pod.spec")
    required, preferred = _node_affinity(spec)
    return PodSpec(
        requests=effective_requests(spec),
        node_name=_str(spec, "nodeName", "pod.spec"),
        priority=_int(spec, "priority", "pod.spec"),
        node_selector=_str_map(spec, "nodeSelector", "pod.spec"),
        required_terms=required,
        preferred_terms=preferred,
        tolerations=_tolerations(spec),
        host_ports=_host_ports(spec),
        has_pod_affinity=bool(affinity.get("podAffinity") or affinity.get("podAntiAffinity")),
        has_topology_spread=bool(spec.get("topologySpreadConstraints")),
        workload_ref=_workload_ref(spec),
        scheduling_group=_str(
            _dict(spec, "schedulingGroup", "pod.spec"), "podGroupName", "pod.spec.schedulingGroup"
        ),
        requests_pods=_requests_pods(spec),
        scheduler_name=_str(spec, "schedulerName", "pod.spec", DEFAULT_SCHEDULER),
    )


def _requests_pods(spec: Mapping[str, Any]) -> bool:
    """Whether any container, the pod-level resources or the overhead name ``pods``."""
    lists: list[object] = [
        _dict(spec, "overhead", "pod.spec"),
        _dict(_dict(spec, "resources", "pod.spec"), "requests", "pod.spec.resources"),
    ]
    for kind in ("containers", "initContainers"):
        for container in _list(spec, kind, "pod.spec"):
            res = container.get("resources") if isinstance(container, dict) else None
            if isinstance(res, dict):
                lists.extend((res.get("requests"), res.get("limits")))
    return any(isinstance(listed, dict) and resources.PODS in listed for listed in lists)


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """The pod condition of type ``kind`` (empty when it has none)."""
    for i, condition in enumerate(_list(status, "conditions", "pod.status")):
        if not isinstance(condition, dict):
            raise ObjectError(f"pod.status.conditions[{i}] must be an object")
        if condition.get("type") == kind:  # only what is read is checked
            _str(condition, "status", f"pod.status.conditions[{i}]")
            return condition
    return {}


def _is_ready(status: Mapping[str, Any]) -> bool:
    return _condition(status, "Ready").get("status") == "True"


def _unschedulable(status: Mapping[str, Any]) -> bool:
    """A scheduler tried the pod and could not place it: PodScheduled=False, with reason
    Unschedulable (no node fit) or SchedulerError (an extender call failed, e.g. muster was
    down); kube-scheduler 1.20 keeps both in its unschedulable pool for 60 s."""
    return _condition(status, "PodScheduled").get("status") == "False"


def _controller(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (kind, name) of the owner reference marked ``controller: true`` (only what is read
    is checked)."""
    for i, ref in enumerate(_list(meta, "ownerReferences", "pod.metadata")):
        where = f"pod.metadata.ownerReferences[{i}]"
        if not isinstance(ref, dict):
            raise ObjectError(f"{where} must be an object")
        controller = ref.get("controller")
        if controller is None or controller is False:
            continue
        if controller is not True:
            raise ObjectError(f"{where}.controller must be a boolean")
        kind, name = _str(ref, "kind", where), _str(ref, "name", where)
        if kind and name:
            return kind, name
    return None


def to_pod(raw: object, *, spec: PodSpec | None = None) -> model.Pod:
    """Convert a raw v1.Pod (as the scheduler sends it or a watch delivers it).

    ``spec``: the conversion of this pod's own ``spec``, when the caller already has it."""
    if not isinstance(raw, dict):
        raise ObjectError("Pod must be an object")
    meta = _dict(raw, "metadata", "pod")
    status = _dict(raw, "status", "pod")
    name = _str(meta, "name", "pod.metadata")
    if not name:
        raise ObjectError("pod.metadata.name is missing")
    if spec is None:
        spec = to_pod_spec(raw.get("spec"))
    return model.Pod(
        uid=_str(meta, "uid", "pod.metadata"),
        namespace=_str(meta, "namespace", "pod.metadata", "default"),
        name=name,
        requests=spec.requests,
        node_name=spec.node_name,
        phase=_str(status, "phase", "pod.status", "Pending"),
        deleting=meta.get("deletionTimestamp") is not None,
        priority=spec.priority,
        created=_timestamp(meta.get("creationTimestamp"), "pod.metadata.creationTimestamp"),
        labels=_str_map(meta, "labels", "pod.metadata"),
        annotations=_str_map(meta, "annotations", "pod.metadata"),
        node_selector=spec.node_selector,
        required_terms=spec.required_terms,
        preferred_terms=spec.preferred_terms,
        tolerations=spec.tolerations,
        host_ports=spec.host_ports,
        has_pod_affinity=spec.has_pod_affinity,
        has_topology_spread=spec.has_topology_spread,
        resource_version=_str(meta, "resourceVersion", "pod.metadata"),
        workload_ref=spec.workload_ref,
        scheduling_group=spec.scheduling_group,
        requests_pods=spec.requests_pods,
        ready=_is_ready(status),
        unschedulable=_unschedulable(status),
        scheduler_name=spec.scheduler_name,
        owner=_controller(meta),
    )


# -- workloads ------------------------------------------------------------------------------


def to_workload(raw: object) -> gang.Workload:
    """Convert a Workload (``scheduling.k8s.io/v1alpha1`` or muster's CRD of the same schema):
    ``spec.podGroups[] = {name, policy: {gang: {minCount}} | {basic: {}}}``."""
    if not isinstance(raw, dict):
        raise ObjectError("Workload must be an object")
    meta = _dict(raw, "metadata", "workload")
    name = _str(meta, "name", "workload.metadata")
    if not name:
        raise ObjectError("workload.metadata.name is missing")
    groups = {}
    for i, item in enumerate(_list(_dict(raw, "spec", "workload"), "podGroups", "workload.spec")):
        where = f"workload.spec.podGroups[{i}]"
        if not isinstance(item, dict):
            raise ObjectError(f"{where} must be an object")
        policy = _dict(item, "policy", where)
        if "gang" in policy:
            min_count = _int(
                _dict(policy, "gang", f"{where}.policy"), "minCount", f"{where}.policy.gang"
            )
            if min_count < 1:
                raise ObjectError(f"{where}.policy.gang.minCount must be positive")
            groups[_str(item, "name", where)] = gang.PodGroupPolicy(gang=True, min_count=min_count)
        else:
            groups[_str(item, "name", where)] = gang.PodGroupPolicy(gang=False)
    spec = _dict(raw, "spec", "workload")
    annotations = _str_map(meta, "annotations", "workload.metadata")
    active = spec.get("active", True) is not False and lifecycle.is_active(annotations)
    return gang.Workload(
        namespace=_str(meta, "namespace", "workload.metadata", "default"),
        name=name,
        pod_groups=groups,
        active=active,
    )


def to_namespace(raw: object) -> model.Namespace:
    """Convert a raw v1.Namespace (its name and labels: what namespaceSelectors read)."""
    if not isinstance(raw, dict):
        raise ObjectError("Namespace must be an object")
    meta = _dict(raw, "metadata", "namespace")
    name = _str(meta, "name", "namespace.metadata")
    if not name:
        raise ObjectError("namespace.metadata.name is missing")
    return model.Namespace(name, _str_map(meta, "labels", "namespace.metadata"))
