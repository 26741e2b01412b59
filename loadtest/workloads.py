"""What the load test sends: pod templates, the pods of each scenario, the nodes' order and
(for ``nodeCacheCapable: false``) the full Node objects.

Pods keep the shape of a pod as kube-scheduler sends it.  When golden payloads captured from
the real kube-scheduler exist (``tests/payloads/scheduler-1.20.2-*.json``), the captured pod is
the template; otherwise a built-in template of the same shape is used.  Only the name, uid,
creation time, requests and the scenario's labels/annotations vary.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from extender import simulation
from extender.core import model, objects, resources

ROOT = Path(__file__).resolve().parent.parent
PAYLOADS = ROOT / "tests" / "payloads"
GOLDEN_GLOB = "scheduler-1.20.2-*.json"
NAMESPACE = "loadtest"
WORKLOAD_LABEL = "muster.dev/workload"
MIN_COUNT_ANNOTATION = "muster.dev/min-count"
GROUP_KEY_PREFIXES = ("muster.dev/", "scheduling.x-k8s.io/", "kueue.x-k8s.io/")

# scheduler_perf's templates (performance-anchors §1.1) and the S3/S5 shapes.
POD_DEFAULT = {"cpu": "100m", "memory": "500Mi"}  # templates/pod-default.yaml
POD_SATURATION = {"cpu": "3", "memory": "1Gi"}  # templates/pod-saturation.yaml: 1 per node
POD_GANG = {"cpu": "100m", "memory": "100Mi"}  # gangscheduling/performance-config.yaml
POD_HIGH_CPU = {"cpu": "8", "memory": "500Mi"}  # more cpu than any 4-cpu node has
# S6: Kueue's baseline generator sizes (1 / 5 / 20 cpu) scaled to 4-cpu nodes.
QUEUE_MIX_SHAPES = (
    {"cpu": "100m", "memory": "200Mi"},
    {"cpu": "500m", "memory": "500Mi"},
    {"cpu": "2", "memory": "1Gi"},
)
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
QUEUE_MIX_QUEUES = 10
QUEUE_MIX_ADMITTED = 0.8
"""The share of the pods' cpu the queues' quota covers: the rest waits for quota."""


def queue_mix_config(pods: int) -> str:
    """Kueue objects for S6: ``QUEUE_MIX_QUEUES`` ClusterQueues in one cohort whose nominal cpu
    adds up to ``QUEUE_MIX_ADMITTED`` of what the pods request, a LocalQueue each, and two
    WorkloadPriorityClasses."""
    millis = sum(resources.amount("cpu", QUEUE_MIX_SHAPES[i % 3]["cpu"]) for i in range(pods))
    per_queue = max(1, int(millis * QUEUE_MIX_ADMITTED / QUEUE_MIX_QUEUES))
    docs = [
        "apiVersion: kueue.x-k8s.io/v1beta1\nkind: ResourceFlavor\nmetadata: {name: default}\n",
        "apiVersion: kueue.x-k8s.io/v1beta1\nkind: WorkloadPriorityClass\n"
        "metadata: {name: high}\nvalue: 1000\n",
        "apiVersion: kueue.x-k8s.io/v1beta1\nkind: WorkloadPriorityClass\n"
        "metadata: {name: low}\nvalue: 0\n",
    ]
    for q in range(QUEUE_MIX_QUEUES):
        docs.append(
            "apiVersion: kueue.x-k8s.io/v1beta1\nkind: ClusterQueue\n"
            f"metadata: {{name: cq-{q}}}\nspec:\n  cohort: loadtest\n  namespaceSelector: {{}}\n"
            "  resourceGroups:\n  - coveredResources: [cpu, memory]\n    flavors:\n"
            "    - name: default\n      resources:\n"
            f"      - {{name: cpu, nominalQuota: {per_queue}m}}\n"
            "      - {name: memory, nominalQuota: 1Ei}\n"
        )
        docs.append(
            "apiVersion: kueue.x-k8s.io/v1beta1\nkind: LocalQueue\n"
            f"metadata: {{name: lq-{q}, namespace: {NAMESPACE}}}\nspec: {{clusterQueue: cq-{q}}}\n"
        )
    return "---\n".join(docs)


# A pending pod as kube-scheduler 1.20 sends it in ExtenderArgs (defaults applied by the API
# server, no status conditions yet): a ReplicaSet's pod.
BUILTIN_TEMPLATE: dict[str, Any] = {
    "metadata": {
        "name": "pod",
        "generateName": "loadtest-5d8c7f9b6-",
        "namespace": NAMESPACE,
        "uid": "00000000-0000-0000-0000-000000000000",
        "resourceVersion": "1",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"app": "loadtest", "pod-template-hash": "5d8c7f9b6"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "loadtest-5d8c7f9b6",
                "uid": "0f6e2a44-2f7b-4a43-8a4b-9c1f1d0e6a21",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    },
    "spec": {
        "volumes": None,
        "initContainers": None,
        "containers": [
            {
                "name": "pause",
                "image": "k8s.gcr.io/pause:3.2",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {
                    "limits": {"cpu": "100m", "memory": "500Mi"},
                    "requests": {"cpu": "100m", "memory": "500Mi"},
                },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    },
    "status": {"phase": "Pending", "qosClass": "Guaranteed"},
}


# -- templates ------------------------------------------------------------------------------


def _folded(data: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in data.items()} if isinstance(data, dict) else {}


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


@dataclass
class Templates:
    pod: dict[str, Any]
    pod_source: str
    node: dict[str, Any] | None = None
    node_source: str = ""


def load_templates(directory: Path = PAYLOADS) -> Templates:
    """The captured pod (and node, if a capture has full Node objects) from the golden
    payloads, else the built-in template.  Filter captures are preferred."""
    files = sorted(directory.glob(GOLDEN_GLOB), key=lambda p: ("filter" not in p.name, p.name))
    pod: dict[str, Any] | None = None
    node: dict[str, Any] | None = None
    pod_source = node_source = ""
    for path in files:
        try:
            data = _folded(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            continue
        candidate = data.get("pod")
        if pod is None and isinstance(candidate, dict) and isinstance(candidate.get("spec"), dict):
            if candidate["spec"].get("containers"):
                pod, pod_source = candidate, _shown(path)
        items = _folded(data.get("nodes")).get("items")
        if node is None and isinstance(items, list) and items and isinstance(items[0], dict):
            node, node_source = items[0], _shown(path)
    if pod is None:
        return Templates(copy.deepcopy(BUILTIN_TEMPLATE), "built-in template", node, node_source)
    pod = copy.deepcopy(pod)
    meta = pod.setdefault("metadata", {})
    meta.pop("deletionTimestamp", None)
    meta["namespace"] = NAMESPACE
    # No group membership: the scenarios decide which pods form gangs.
    for key in ("labels", "annotations"):
        kept = {
            k: v
            for k, v in (meta.get(key) or {}).items()
            if not k.startswith(GROUP_KEY_PREFIXES) and k != "scheduling.k8s.io/group-name"
        }
        if kept:
            meta[key] = kept
        else:
            meta.pop(key, None)
    spec = pod["spec"]
    for key in (
        "nodeName",
        "nodeSelector",
        "affinity",
        "topologySpreadConstraints",
        "workloadRef",
        "schedulingGroup",
    ):
        spec.pop(key, None)
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            port.pop("hostPort", None)
    status = pod.setdefault("status", {})
    status.pop("nominatedNodeName", None)
    status["phase"] = "Pending"
    return Templates(pod, pod_source, node, node_source)


# -- pods -----------------------------------------------------------------------------------


@dataclass
class PodSpec:
    """One pod to schedule, with what the driver needs to know about it."""

    raw: dict[str, Any]
    requests: Mapping[str, int]
    gang: int = -1
    """Index of the pod's gang, -1 for none."""
    in_tree: bool = True
    """False: offered to the extender even where in-tree NodeResourcesFit would reject it."""
    attempts: int = 0


@dataclass
class PodFactory:
    """Makes pods from a template; effective requests are computed once per shape."""

    template: dict[str, Any]
    _template_json: bytes = b""
    _requests: dict[tuple[str, str, int], Mapping[str, int]] = field(default_factory=dict)
    _serial: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self._template_json = orjson.dumps(self.template)

    def make(
        self,
        name: str,
        shape: Mapping[str, str],
        *,
        variant: int = 0,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, Any], Mapping[str, int]]:
        """A pod named ``name`` requesting ``shape``; ``variant`` > 0 adds that many bytes
        of memory, which makes a distinct equivalence signature at no real cost."""
        pod: dict[str, Any] = orjson.loads(self._template_json)  # a fast deep copy
        serial = next(self._serial)
        meta = pod["metadata"]
        meta["name"] = name
        meta["namespace"] = NAMESPACE
        meta["uid"] = str(uuid.UUID(int=uuid.uuid4().int))
        meta["resourceVersion"] = str(1000 + serial)
        seconds = serial // 100  # creation order survives the 1 s resolution, roughly
        meta["creationTimestamp"] = (
            f"2026-01-01T{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"
        )
        if labels:
            meta["labels"] = {**(meta.get("labels") or {}), **labels}
        if annotations:
            meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
        cpu, memory = shape["cpu"], shape["memory"]
        if variant:
            memory = str(int(resources.parse_quantity(memory)) + variant)
        container = pod["spec"]["containers"][0]
        res = container.setdefault("resources", {})
        res["requests"] = {"cpu": cpu, "memory": memory}
        if res.get("limits"):
            res["limits"] = {**res["limits"], "cpu": cpu, "memory": memory}
        key = (cpu, memory, variant)
        requests = self._requests.get(key)
        if requests is None:
            requests = self._requests[key] = objects.to_pod(pod).requests
        return pod, requests


SCENARIOS = (
    "distinct",
    "identical",
    "alternating",
    "gangs",
    "large-gang",
    "full-nodes",
    "churn",
    "queue-mix",
)


@dataclass
class Workload:
    pods: list[PodSpec]
    gangs: int = 0
    gang_size: int = 0
    unschedulable: int = 0
    description: str = ""


def build(
    scenario: str,
    factory: PodFactory,
    *,
    pods: int,
    shapes: int = 0,
    batch_size: int = 0,
    gangs: int = 0,
    gang_size: int = 3,
    unschedulable_every: int = 10,
    prefix: str = "",
) -> Workload:
    """The measured pods of ``scenario`` (see loadtest/README.md)."""
    out: list[PodSpec] = []

    def add(name: str, shape: Mapping[str, str], variant: int = 0, **kw: Any) -> PodSpec:
        labels = kw.pop("labels", None)
        annotations = kw.pop("annotations", None)
        raw, requests = factory.make(
            f"{prefix}{name}", shape, variant=variant, labels=labels, annotations=annotations
        )
        spec = PodSpec(raw=raw, requests=requests, **kw)
        out.append(spec)
        return spec

    if scenario == "distinct":
        k = shapes or pods
        for i in range(pods):
            add(f"distinct-{i}", POD_DEFAULT, variant=1 + i % k)
        return Workload(out, description=f"{pods} pods of pod-default, {min(k, pods)} shapes")
    if scenario == "identical":
        b = batch_size or pods
        for i in range(pods):
            add(f"identical-{i}", POD_SATURATION, variant=i // b)
        return Workload(out, description=f"{pods} pod-saturation pods (cpu 3 of 4), batches of {b}")
    if scenario == "alternating":
        for i in range(pods):
            add(f"alternating-{i}", POD_SATURATION, variant=i % 2)
        return Workload(out, description=f"{pods} pod-saturation pods, 2 signatures alternating")
    if scenario in ("gangs", "large-gang"):
        for g in range(gangs):
            for m in range(gang_size):
                add(
                    f"g{g}-{m}",
                    POD_GANG,
                    labels={WORKLOAD_LABEL: f"{prefix}g{g}"},
                    annotations={MIN_COUNT_ANNOTATION: str(gang_size)},
                    gang=g,
                )
        return Workload(
            out,
            gangs=gangs,
            gang_size=gang_size,
            description=f"{gangs} gang(s) x {gang_size} pods (100m/100Mi, minCount {gang_size})",
        )
    if scenario == "full-nodes":
        for i in range(pods):
            add(f"full-{i}", POD_DEFAULT)
        return Workload(out, description=f"{pods} identical pod-default pods")
    if scenario == "queue-mix":
        for i in range(pods):
            add(
                f"queued-{i}",
                QUEUE_MIX_SHAPES[i % 3],
                labels={
                    QUEUE_LABEL: f"lq-{i % QUEUE_MIX_QUEUES}",
                    PRIORITY_CLASS_LABEL: "high" if i % 4 == 0 else "low",
                },
            )
        return Workload(
            out,
            description=f"{pods} queued pods (100m / 500m / 2 cpu) over {QUEUE_MIX_QUEUES} "
            f"ClusterQueues of one cohort whose quota covers {QUEUE_MIX_ADMITTED:.0%} of their cpu",
        )
    if scenario == "churn":
        unschedulable = 0
        for i in range(pods):
            if unschedulable_every and i % unschedulable_every == unschedulable_every - 1:
                add(f"high-cpu-{i}", POD_HIGH_CPU, in_tree=False)
                unschedulable += 1
            else:
                add(f"churn-{i}", POD_DEFAULT)
        return Workload(
            out,
            unschedulable=unschedulable,
            description=f"{pods - unschedulable} pod-default pods + {unschedulable} "
            f"unschedulable cpu-8 pods (1 in {unschedulable_every})",
        )
    raise ValueError(f"unknown scenario {scenario!r}")


def init_pods(factory: PodFactory, count: int) -> list[PodSpec]:
    """Pods scheduled before the measurement (scheduler_perf's initPods), pod-default."""
    specs = []
    for i in range(count):
        raw, requests = factory.make(f"init-{i}", POD_DEFAULT)
        specs.append(PodSpec(raw=raw, requests=requests))
    return specs


# -- nodes ----------------------------------------------------------------------------------


def cluster_nodes(count: int) -> list[model.Node]:
    """The nodes of ``muster serve --simulate-nodes count`` (same names, labels, capacity)."""
    return simulation.generated_nodes(count)


def scheduler_order(nodes: Sequence[model.Node]) -> list[model.Node]:
    """Nodes in kube-scheduler's NodeTree order: zones round-robin, each zone in list order."""
    zones: dict[str, list[model.Node]] = {}
    for node in nodes:
        zones.setdefault(node.labels.get(simulation.ZONE_LABEL, ""), []).append(node)
    ordered = []
    for row in itertools.zip_longest(*zones.values()):
        ordered.extend(n for n in row if n is not None)
    return ordered


_IMAGES = [
    ("registry.example.com/ml/cuda-runtime", 4_812_345_678),
    ("docker.io/library/python", 917_654_321),
    ("k8s.gcr.io/kube-proxy", 118_383_442),
    ("quay.io/prometheus/node-exporter", 22_880_000),
    ("k8s.gcr.io/pause", 682_696),
]


def node_object(node: model.Node, *, realistic: bool, template: Mapping[str, Any] | None) -> bytes:
    """A full ``v1.Node`` as kube-scheduler sends it with ``nodeCacheCapable: false``.

    minimal: scheduler_perf's node-default after API defaulting (about 0.8 KB).  realistic:
    a production-like node (labels, annotations, 7 resources, 5 conditions, 40 images; about
    9 KB, the shape of performance-anchors §4.2).  A captured node, if any, is the base of the
    realistic one."""
    name = node.name
    labels = dict(node.labels)
    cpu = str(node.allocatable.get("cpu", 4000) // 1000)
    memory = f"{node.allocatable.get('memory', 32 * 2**30) // 2**30}Gi"
    pods = str(node.allocatable.get("pods", 110))
    uid = str(uuid.uuid5(uuid.NAMESPACE_DNS, name))
    if not realistic:
        minimal = {"cpu": cpu, "memory": memory, "pods": pods}
        raw: dict[str, Any] = {
            "metadata": {
                "name": name,
                "uid": uid,
                "resourceVersion": "100",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": labels,
            },
            "spec": {},
            "status": {
                "capacity": minimal,
                "allocatable": minimal,
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": dict.fromkeys(
                    (
                        "machineID",
                        "systemUUID",
                        "bootID",
                        "kernelVersion",
                        "osImage",
                        "containerRuntimeVersion",
                        "kubeletVersion",
                        "kubeProxyVersion",
                        "operatingSystem",
                        "architecture",
                    ),
                    "",
                ),
            },
        }
        return orjson.dumps(raw)
    raw = copy.deepcopy(dict(template)) if template else {}
    meta = raw.setdefault("metadata", {})
    meta.update(
        name=name,
        uid=uid,
        resourceVersion="48213",
        creationTimestamp="2026-01-01T00:00:00Z",
    )
    meta["labels"] = {
        **(meta.get("labels") or {}),
        **labels,
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "beta.kubernetes.io/instance-type": "n2-standard-4",
        "node.kubernetes.io/instance-type": "n2-standard-4",
        "failure-domain.beta.kubernetes.io/region": "region-1",
        "failure-domain.beta.kubernetes.io/zone": labels.get(simulation.ZONE_LABEL, ""),
        "topology.kubernetes.io/region": "region-1",
        "cloud.example.com/nodepool": "pool-general",
        "cloud.example.com/machine-family": "n2",
        "node-role.kubernetes.io/worker": "",
        "example.com/team": "platform",
        "example.com/cost-center": "cc-1234",
        "example.com/lifecycle": "on-demand",
        "example.com/image-version": "2026-01-15",
    }
    meta["annotations"] = {
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        "kubeadm.alpha.kubernetes.io/cri-socket": "/run/containerd/containerd.sock",
        "csi.volume.kubernetes.io/nodeid": f'{{"pd.csi.storage.gke.io":"{name}"}}',
    }
    raw["spec"] = {
        "podCIDR": "10.244.0.0/24",
        "podCIDRs": ["10.244.0.0/24"],
        "providerID": f"example://region-1/{name}",
        "taints": [{"key": "example.com/maintenance-window", "effect": "PreferNoSchedule"}],
    }
    capacity = {
        "cpu": cpu,
        "memory": memory,
        "pods": pods,
        "ephemeral-storage": "101445540Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "attachable-volumes-gce-pd": "127",
    }
    stamp = "2026-01-01T00:00:00Z"
    conditions = [
        (t, "False", r, m)
        for t, r, m in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("NetworkUnavailable", "RouteCreated", "RouteController created a route"),
        )
    ] + [("Ready", "True", "KubeletReady", "kubelet is posting ready status")]
    raw["status"] = {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            {
                "type": t,
                "status": s,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
                "reason": r,
                "message": m,
            }
            for t, s, r, m in conditions
        ],
        "addresses": [
            {"type": "InternalIP", "address": "10.0.0.1"},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": uid.replace("-", ""),
            "systemUUID": uid,
            "bootID": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "kernelVersion": "5.10.0-28-cloud-amd64",
            "osImage": "Debian GNU/Linux 11 (bullseye)",
            "containerRuntimeVersion": "containerd://1.6.24",
            "kubeletVersion": "v1.20.2",
            "kubeProxyVersion": "v1.20.2",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "images": [
            {
                "names": [
                    f"{image}@sha256:{uuid.uuid5(uuid.NAMESPACE_OID, f'{image}{i}').hex * 2}",
                    f"{image}:v{i}.{i % 7}.{i % 3}",
                ],
                "sizeBytes": size + i,
            }
            for i in range(8)
            for image, size in _IMAGES
        ],
    }
    return orjson.dumps(raw)
