"""Builders of raw Kubernetes objects (plain dicts, camelCase, as the wire and the watch carry
them) and of the extender/v1 messages that wrap them.

Extend these instead of hand-writing dicts in tests.  Every builder returns a fresh dict, so a
test may mutate the result (``pod["spec"]["containers"] = None``) to reach an odd shape.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from extender.core import model, objects

PAYLOADS = Path(__file__).parent / "payloads"

_uids = itertools.count(1)


def _resources(requests: dict[str, Any] | None, limits: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = dict(requests)
    if limits:
        out["limits"] = dict(limits)
    return out


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
    """A container; ``cpu``/``memory`` are shorthands for ``requests``."""
    wanted = dict(requests or {})
    if cpu is not None:
        wanted["cpu"] = cpu
    if memory is not None:
        wanted["memory"] = memory
    container: dict[str, Any] = {
        "name": name,
        "image": "registry.k8s.io/pause:3.9",
        "resources": _resources(wanted, limits),
    }
    if restart_policy is not None:
        container["restartPolicy"] = restart_policy
    if host_port is not None:
        container["ports"] = [{"containerPort": host_port, "hostPort": host_port}]
    return container


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
    """A v1.Pod with one container (unless ``containers`` is given).

    ``cpu``/``memory``/``requests``/``limits`` go to that one container; ``pod_requests`` is
    pod-level ``spec.resources.requests``; ``uid`` defaults to a fresh ``uid-<n>``.
    """
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid if uid is not None else f"uid-{next(_uids)}",
        "creationTimestamp": created,
    }
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:01:00Z"
    if containers is None:
        containers = [make_container(cpu=cpu, memory=memory, requests=requests, limits=limits)]
    spec: dict[str, Any] = {"containers": containers, "schedulerName": "default-scheduler"}
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
    return {"metadata": meta, "spec": spec, "status": {"phase": phase or "Pending"}}


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
