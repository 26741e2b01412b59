"""Builders of raw Kubernetes objects (plain dicts, camelCase, as the wire and the watch carry
them), of the domain pods and nodes made from them, of Kueue objects, and of the extender/v1
messages that wrap pods.

Extend these instead of hand-writing dicts in tests.  Every builder returns a fresh dict, so a
test may mutate the result (``pod["spec"]["containers"] = None``) to reach an odd shape.

Pods and containers come from ``extender.core.manifests``, the pod builder the demo, the load
test and the e2e tests use too; ``make_pod`` adds the tests' defaults and shorthands.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from extender.core import gang, kueue, manifests, model, objects

PAYLOADS = Path(__file__).parent / "payloads"

_uids = itertools.count(1)


def make_container(
    name: str = "main",
    *,
    cpu: str | None = None,
    memory: str | None = None,
    requests: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    restart_policy: str | None = None,
    host_port: int | None = None,
) -> dict[str, Any]:
    """A container (``manifests.container``); ``cpu``/``memory`` are shorthands for ``requests``."""
    wanted = dict(requests or {})
    if cpu is not None:
        wanted["cpu"] = cpu
    if memory is not None:
        wanted["memory"] = memory
    fields: dict[str, Any] = {}
    if restart_policy is not None:
        fields["restartPolicy"] = restart_policy
    if host_port is not None:
        fields["ports"] = [{"containerPort": host_port, "hostPort": host_port}]
    return manifests.container(name, requests=wanted, limits=limits, **fields)


def make_pod(
    name: str,
    *,
    cpu: str | None = None,
    memory: str | None = None,
    requests: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    containers: list[dict[str, Any]] | None = None,
    namespace: str = "default",
    uid: str | None = None,
    resource_version: str | None = "1",
    node_name: str | None = None,
    phase: str | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    affinity: dict[str, Any] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    overhead: dict[str, Any] | None = None,
    pod_requests: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    priority: int | None = None,
    deleting: bool = False,
    created: str = "2025-01-01T00:00:00Z",
) -> dict[str, Any]:
    """A v1.Pod (``manifests.pod``) with one container (unless ``containers`` is given).

    ``cpu``/``memory``/``requests``/``limits`` go to that one container; ``pod_requests`` is
    pod-level ``spec.resources.requests``; ``uid`` defaults to a fresh ``uid-<n>``.
    """
    if containers is None:
        containers = [make_container(cpu=cpu, memory=memory, requests=requests, limits=limits)]
    spec: dict[str, Any] = {"schedulerName": "default-scheduler"}
    if init_containers is not None:
        spec["initContainers"] = init_containers
    if overhead is not None:
        spec["overhead"] = dict(overhead)
    if pod_requests is not None:
        spec["resources"] = {"requests": dict(pod_requests)}
    if node_name is not None:
        spec["nodeName"] = node_name
    if node_selector is not None:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations is not None:
        spec["tolerations"] = list(tolerations)
    if affinity is not None:
        spec["affinity"] = affinity
    if priority is not None:
        spec["priority"] = priority
    out = manifests.pod(
        name,
        namespace=namespace,
        uid=uid if uid is not None else f"uid-{next(_uids)}",
        created=created,
        resource_version=resource_version,
        labels=labels,
        annotations=annotations,
        containers=containers,
        spec=spec,
        phase=phase or "Pending",
    )
    if deleting:
        out["metadata"]["deletionTimestamp"] = "2025-01-01T00:01:00Z"
    return out


def make_node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    extra: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    unschedulable: bool = False,
    resource_version: str | None = None,
) -> dict[str, Any]:
    """A v1.Node; ``extra`` adds allocatable resources (``{"nvidia.com/gpu": "2"}``)."""
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"kubernetes.io/hostname": name, **(labels or {})},
    }
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    spec: dict[str, Any] = {}
    if taints is not None:
        spec["taints"] = list(taints)
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": meta,
        "spec": spec,
        "status": {"capacity": dict(allocatable), "allocatable": allocatable},
    }


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> dict[str, Any]:
    out = {"key": key, "effect": effect}
    if value:
        out["value"] = value
    return out


def toleration(
    key: str = "", *, operator: str = "Equal", value: str = "", effect: str = ""
) -> dict[str, Any]:
    out = {"operator": operator}
    for field, given in (("key", key), ("value", value), ("effect", effect)):
        if given:
            out[field] = given
    return out


def requirement(key: str, operator: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


def node_affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    """``affinity`` with required node affinity made of ``terms`` (ORed)."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def term(*expressions: dict[str, Any], fields: list[dict[str, Any]] | None = None) -> dict:
    out: dict[str, Any] = {}
    if expressions:
        out["matchExpressions"] = list(expressions)
    if fields:
        out["matchFields"] = list(fields)
    return out


# -- domain objects -------------------------------------------------------------------------


def pod(name: str, **kwargs: Any) -> model.Pod:
    """``make_pod`` converted to a domain pod."""
    return objects.to_pod(make_pod(name, **kwargs))


def node(name: str, **kwargs: Any) -> model.Node:
    """``make_node`` converted to a domain node."""
    return objects.to_node(make_node(name, **kwargs))


def member(
    name: str, *, workload: str = "train", min_count: int = 3, cpu: str = "2", **kwargs: Any
) -> model.Pod:
    """A member of gang ``workload`` (``minCount`` ``min_count``) whose uid is its name."""
    annotations = {gang.MIN_COUNT_ANNOTATION: str(min_count), **kwargs.pop("annotations", {})}
    return pod(
        name,
        uid=name,
        cpu=cpu,
        labels={gang.WORKLOAD_LABEL: workload},
        annotations=annotations,
        **kwargs,
    )


def queued(name: str, cpu: str = "1", *, queue: str = "user-queue", **kwargs: Any) -> model.Pod:
    """A pod of LocalQueue ``queue`` whose uid is its name (unless ``uid`` is given)."""
    labels = {kueue.QUEUE_LABEL: queue, **kwargs.pop("labels", {})}
    return pod(name, uid=kwargs.pop("uid", name), cpu=cpu, labels=labels, **kwargs)


def gang_members(workload: str, prefix: str, cpu: str = "1") -> list[model.Pod]:
    """Three queued pods of gang ``workload`` with ``minCount`` 3."""
    labels = {gang.WORKLOAD_LABEL: workload}
    annotations = {gang.MIN_COUNT_ANNOTATION: "3"}
    return [queued(f"{prefix}{i}", cpu, labels=labels, annotations=annotations) for i in range(3)]


# -- Kueue objects --------------------------------------------------------------------------

QUEUE_SETUP = """\
apiVersion: kueue.x-k8s.io/v1beta1
kind: ResourceFlavor
metadata: {name: on-demand}
spec: {nodeLabels: {instance-type: on-demand}}
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: ResourceFlavor
metadata: {name: spot}
spec:
  nodeLabels: {instance-type: spot}
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: ClusterQueue
metadata: {name: cluster-queue}
spec:
  namespaceSelector: {}
  preemption: {withinClusterQueue: LowerPriority}
  resourceGroups:
  - coveredResources: [cpu, memory]
    flavors:
    - name: on-demand
      resources: [{name: cpu, nominalQuota: CPU}, {name: memory, nominalQuota: 100Gi}]
    - name: spot
      resources: [{name: cpu, nominalQuota: 0}, {name: memory, nominalQuota: 0}]
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: LocalQueue
metadata: {namespace: default, name: user-queue}
spec: {clusterQueue: cluster-queue}
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: WorkloadPriorityClass
metadata: {name: urgent}
value: 1000
"""
"""The queue setup of the tests: ClusterQueue ``cluster-queue`` with the on-demand flavor
(nodes labelled ``instance-type: on-demand``) and a spot flavor of no quota, LocalQueue
``default/user-queue``, and WorkloadPriorityClass ``urgent``. ``CPU`` stands for the on-demand
cpu quota: replace it (``queue_setup`` and ``queue_config`` do).

Tests that need other Kueue objects keep their own, each saying why: Kueue's own examples and
objects with every field (core/test_kueue.py, ``KUEUE_OBJECTS`` below), a file with a
Configuration (test_queuefile.py), a flavor any fuzzed pod can use (web/test_fuzz.py), and a
ClusterQueue per e2e test (e2e/harness.py)."""


def queue_setup(cpu: int | str = 9, **replace: str) -> str:
    """``QUEUE_SETUP`` with ``cpu`` on-demand cpus and every ``old=new`` of ``replace``."""
    text = QUEUE_SETUP.replace("nominalQuota: CPU", f"nominalQuota: {cpu}")
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def queue_config(cpu: int | str = 9, **replace: str) -> kueue.QueueConfig:
    """``queue_setup(cpu, **replace)``, loaded."""
    return kueue.parse(yaml.safe_load_all(queue_setup(cpu, **replace)))


KUEUE_OBJECTS = """\
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: on-demand}
spec:
  nodeLabels: {pool: batch}
  nodeTaints: [{key: spot, value: "true", effect: NoSchedule}]
  tolerations: [{key: spot, operator: Equal, value: "true", effect: NoSchedule}]
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: team-a}
spec:
  cohortName: all
  queueingStrategy: StrictFIFO
  stopPolicy: None
  namespaceSelector:
    matchLabels: {team: a}
    matchExpressions: [{key: tier, operator: In, values: [gold]}]
  fairSharing: {weight: 2}
  preemption:
    withinClusterQueue: LowerPriority
    reclaimWithinCohort: Any
    borrowWithinCohort: {policy: LowerPriority, maxPriorityThreshold: 100}
  resourceGroups:
  - coveredResources: [cpu, memory]
    flavors:
    - name: on-demand
      resources:
      - {name: cpu, nominalQuota: 9, borrowingLimit: 3, lendingLimit: 1}
      - {name: memory, nominalQuota: 36Gi}
---
apiVersion: v1
kind: List
items:
- apiVersion: kueue.x-k8s.io/v1beta1
  kind: LocalQueue
  metadata: {namespace: team-a, name: user-queue}
  spec: {clusterQueue: team-a, stopPolicy: Hold}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: WorkloadPriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: config.kueue.x-k8s.io/v1beta1
kind: Configuration
waitForPodsReady:
  enable: true
  timeout: 5m
  recoveryTimeout: 90s
  requeuingStrategy: {backoffLimitCount: 5, backoffBaseSeconds: 60, backoffMaxSeconds: 3600}
"""
"""Valid Kueue objects using every field muster reads (a LocalQueue inside a v1 List, a
Configuration), for the properties that mutate them: ``mutated_kueue_documents``."""
KUEUE_DOCUMENTS: list[Any] = list(yaml.safe_load_all(KUEUE_OBJECTS))

_SPECIAL_TEXT = [
    "",
    ".nan",
    "NaN",
    "nan",
    "inf",
    "-Infinity",
    "1e999999",
    "-1e999999",
    "1e-999999",
    "1e999999Ei",
    "9" * 40,
    "-1",
    "0x_",
    "500m",
    "2Gi",
    "1.5",
    "5m",
    "1h30m",
    "0s",
    "9" * 400 + "h",
    "cpu",
    "memory",
    "on-demand",
    "team-a",
    "Any",
    "kueue.x-k8s.io/v1beta2",
    "ClusterQueue",
    "List",
]

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and both infinities included
    st.sampled_from(_SPECIAL_TEXT),
    st.text(max_size=12),
    st.dates(),
    st.binary(max_size=6),
)
yaml_keys = st.one_of(st.text(max_size=8), st.integers(), st.none(), st.booleans(), st.floats())
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(yaml_keys, children, max_size=4)
    ),
    max_leaves=10,
)


def _keys_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _keys_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys_in(v)


KUEUE_KEYS = sorted({k for doc in KUEUE_DOCUMENTS for k in _keys_in(doc)})


def _places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in ``value``, itself included."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _places(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _places(v, (*path, i))


def _at(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step]
    return root


@st.composite
def mutated_kueue_documents(draw: st.DrawFn) -> list[Any]:
    """The valid documents with one to four changes: a value replaced by any value, a key
    removed, a key (a field name Kueue has, or any key) added, or a list entry duplicated."""
    documents = copy.deepcopy(KUEUE_DOCUMENTS)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_places(documents))))
        action = draw(st.sampled_from(["replace", "remove", "add", "duplicate"]))
        if not path:
            documents.append(draw(yaml_values))
            continue
        parent, last = _at(documents, path[:-1]), path[-1]
        if action == "replace":
            parent[last] = draw(yaml_values)
        elif action == "remove":
            del parent[last]
        elif action == "add" and isinstance(parent[last], dict):
            key = draw(st.one_of(st.sampled_from(KUEUE_KEYS), yaml_keys))
            parent[last][key] = draw(yaml_values)
        elif action == "duplicate" and isinstance(parent[last], list) and parent[last]:
            parent[last].append(copy.deepcopy(parent[last][0]))
        else:
            parent[last] = draw(yaml_values)
    return documents


# -- extender/v1 messages -------------------------------------------------------------------


def extender_args(pod: dict[str, Any], node_names: list[str] | None) -> dict[str, Any]:
    """``ExtenderArgs`` as kube-scheduler sends it with ``nodeCacheCapable: true``."""
    return {"Pod": pod, "Nodes": None, "NodeNames": node_names}


def extender_args_full(pod: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """``ExtenderArgs`` with ``nodeCacheCapable: false``: full node objects, no names."""
    return {"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None}


def binding_args(pod: dict[str, Any], node: str, *, uid: str | None = None) -> dict[str, Any]:
    meta = pod["metadata"]
    return {
        "PodName": meta["name"],
        "PodNamespace": meta["namespace"],
        "PodUID": meta["uid"] if uid is None else uid,
        "Node": node,
    }


def load_payload(name: str) -> Any:
    """A stored wire example from ``tests/payloads``."""
    return json.loads((PAYLOADS / name).read_text())


def workload_key(text: str) -> model.WorkloadKey:
    """The key whose ``str()`` is ``text`` (``pod/ns/name``, ``gang/ns/workload/group``,
    ``job/ns/name``, with an optional ``#grown``): tests name workloads as people read them."""
    base, grown, _ = text.partition("#grown")
    kind, namespace, name, *group = base.split("/")
    return model.WorkloadKey(
        model.WorkloadKind(kind), namespace, name, "/".join(group), grown=bool(grown)
    )
