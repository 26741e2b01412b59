"""Raw pods and nodes become domain objects; effective requests follow Kubernetes' rules."""

from __future__ import annotations

from typing import Any

import pytest

from extender.core import model, objects
from tests import builders
from tests.builders import make_container, make_node, make_pod

GI = 2**30


def requests_of(raw: dict[str, Any]) -> dict[str, int]:
    return dict(objects.to_pod(raw).requests)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (make_pod("p", cpu="500m", memory="1Gi"), {"cpu": 500, "memory": GI, "pods": 1}),
        (
            make_pod(
                "p",
                containers=[make_container("a", cpu="1"), make_container("b", cpu="250m")],
            ),
            {"cpu": 1250, "pods": 1},
        ),
        (
            make_pod(
                "p",
                containers=[make_container("a", cpu="1"), make_container("b", cpu="1")],
                init_containers=[make_container("init", cpu="3")],
            ),
            {"cpu": 3000, "pods": 1},
        ),
        (
            make_pod(
                "p",
                cpu="2",
                memory="1Gi",
                init_containers=[make_container("init", cpu="1", memory="4Gi")],
            ),
            {"cpu": 2000, "memory": 4 * GI, "pods": 1},
        ),
        (
            make_pod(
                "p",
                cpu="1",
                init_containers=[
                    make_container("a", cpu="3"),
                    make_container("b", cpu="2"),
                ],
            ),
            {"cpu": 3000, "pods": 1},
        ),
        (
            make_pod(
                "p",
                containers=[make_container("a", cpu="1"), make_container("b", cpu="1")],
                init_containers=[
                    make_container("init", cpu="3"),
                    make_container("sidecar", cpu="500m", restart_policy="Always"),
                ],
            ),
            {"cpu": 3000, "pods": 1},
        ),
        (
            make_pod(
                "p",
                containers=[make_container("a", cpu="1"), make_container("b", cpu="1")],
                init_containers=[
                    make_container("sidecar", cpu="500m", restart_policy="Always"),
                    make_container("init", cpu="3"),
                ],
            ),
            {"cpu": 3500, "pods": 1},
        ),
        (
            make_pod(
                "p",
                cpu="1",
                init_containers=[
                    make_container("s1", cpu="1", restart_policy="Always"),
                    make_container("s2", cpu="2", restart_policy="Always"),
                ],
            ),
            {"cpu": 4000, "pods": 1},
        ),
        (
            make_pod(
                "p",
                cpu="100m",
                init_containers=[
                    make_container("s1", cpu="1", restart_policy="Always"),
                    make_container("init", cpu="2"),
                    make_container("s2", cpu="1", restart_policy="Always"),
                ],
            ),
            {"cpu": 3000, "pods": 1},
        ),
        (
            make_pod(
                "p",
                cpu="1",
                init_containers=[make_container("init", cpu="5", restart_policy="OnFailure")],
            ),
            {"cpu": 5000, "pods": 1},
        ),
        (
            make_pod("p", cpu="1", memory="1Gi", overhead={"cpu": "250m", "memory": "120Mi"}),
            {"cpu": 1250, "memory": GI + 120 * 2**20, "pods": 1},
        ),
        (
            make_pod(
                "p",
                cpu="1",
                init_containers=[make_container("init", cpu="3")],
                overhead={"cpu": "100m"},
            ),
            {"cpu": 3100, "pods": 1},
        ),
        (
            make_pod("p", limits={"cpu": "2", "memory": "1Gi"}),
            {"cpu": 2000, "memory": GI, "pods": 1},
        ),
        (
            make_pod("p", cpu="500m", limits={"cpu": "2", "memory": "1Gi"}),
            {"cpu": 500, "memory": GI, "pods": 1},
        ),
        (
            make_pod("p", requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "1"}),
            {"nvidia.com/gpu": 1, "pods": 1},
        ),
        (make_pod("p"), {"pods": 1}),
        (
            make_pod(
                "p",
                containers=[make_container("a", cpu="1"), make_container("b", memory="1Gi")],
                pod_requests={"cpu": "3"},
            ),
            {"cpu": 3000, "memory": GI, "pods": 1},
        ),
        (
            make_pod("p", cpu="1", pod_requests={"cpu": "2"}, overhead={"cpu": "100m"}),
            {"cpu": 2100, "pods": 1},
        ),
        (
            make_pod("p", requests={"ephemeral-storage": "1Gi", "pods": "5"}),
            {"ephemeral-storage": GI, "pods": 1},
        ),
    ],
    ids=[
        "one container",
        "containers are summed",
        "an init container bigger than the containers wins (the docstring example)",
        "the maximum is taken per resource",
        "init containers run one at a time: the biggest counts",
        "a sidecar after the init container adds to the containers only",
        "a sidecar before the init container runs beside it",
        "sidecars add up",
        "a sidecar counts for the init containers after it, not before",
        "restartPolicy other than Always is a regular init container",
        "overhead is added",
        "overhead is added on top of the init container maximum",
        "limits stand in for missing requests",
        "a request is kept when a limit is also set",
        "extended resources",
        "a pod without requests still takes a pod slot",
        "pod-level requests replace the aggregate where set",
        "pod-level requests plus overhead",
        "a container's own pods request is replaced by exactly one pod",
    ],
)
def test_effective_requests_follow_kubernetes(raw: dict[str, Any], expected: dict) -> None:
    assert requests_of(raw) == expected


def test_null_values_are_empty_as_go_sends_them() -> None:
    raw = make_pod("p", cpu="1")
    raw["spec"].update(
        initContainers=None,
        overhead=None,
        nodeSelector=None,
        tolerations=None,
        affinity=None,
        resources=None,
    )
    raw["metadata"].update(labels=None, annotations=None, namespace=None)
    raw["spec"]["containers"].append(
        {"name": "bare", "resources": {"requests": None, "limits": None}, "ports": None}
    )
    raw["spec"]["containers"].append({"name": "no-resources", "resources": None})
    pod = objects.to_pod(raw)
    assert pod.requests == {"cpu": 1000, "pods": 1}
    assert pod.namespace == "default"
    assert pod.labels == {} and pod.node_selector == {} and pod.tolerations == ()
    assert pod.required_terms is None


def test_the_protocol_example_pod_has_null_containers() -> None:
    pod = objects.to_pod(builders.load_payload("protocol-extender-args.json")["Pod"])
    assert pod.name == "podname"
    assert pod.requests == {"pods": 1}
    assert pod.phase == "Pending"


def test_to_pod_reads_identity_placement_and_scheduling_fields() -> None:
    raw = make_pod(
        "web-1",
        namespace="shop",
        uid="u-1",
        node_name="node1",
        phase="Running",
        labels={"app": "web"},
        annotations={"note": "x"},
        priority=100,
        node_selector={"disk": "ssd"},
        tolerations=[builders.toleration("gpu", operator="Exists", effect="NoSchedule")],
        affinity=builders.node_affinity(builders.term(builders.requirement("zone", "In", "a"))),
        deleting=True,
    )
    raw["metadata"]["resourceVersion"] = "42"
    pod = objects.to_pod(raw)
    assert (pod.key, pod.uid, pod.node_name, pod.phase) == ("shop/web-1", "u-1", "node1", "Running")
    assert pod.labels == {"app": "web"} and pod.annotations == {"note": "x"}
    assert pod.priority == 100 and pod.deleting and pod.resource_version == "42"
    assert pod.node_selector == {"disk": "ssd"}
    assert pod.tolerations == (model.Toleration("gpu", "Exists", "", "NoSchedule"),)
    assert pod.required_terms == (
        model.SelectorTerm(expressions=(model.Requirement("zone", model.Operator.IN, ("a",)),)),
    )
    assert pod.created == pytest.approx(1735689600.0)


def test_toleration_operator_defaults_to_equal() -> None:
    raw = make_pod("p", tolerations=[{"key": "k", "value": "v"}])
    assert objects.to_pod(raw).tolerations == (model.Toleration("k", "Equal", "v", ""),)


def test_host_ports_are_collected_from_all_containers() -> None:
    raw = make_pod(
        "p",
        containers=[make_container("a", host_port=8080), make_container("b")],
        init_containers=[make_container("i", host_port=9090)],
    )
    assert objects.to_pod(raw).host_ports == (8080, 9090)


@pytest.mark.parametrize(
    ("terminal", "expected"),
    [("Succeeded", True), ("Failed", True), ("Running", False), ("Pending", False)],
    ids=["succeeded", "failed", "running", "pending"],
)
def test_terminated_pods_are_succeeded_or_failed(terminal: str, expected: bool) -> None:
    assert builders.pod("p", phase=terminal).terminated is expected


def _broken(path: list[Any], value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = base if base is not None else make_pod("p", cpu="1")
    target: Any = raw
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a pod", "Pod must be an object"),
        (_broken(["metadata", "name"], None), "pod.metadata.name is missing"),
        (_broken(["metadata", "name"], 7), "pod.metadata.name must be a string"),
        (_broken(["metadata"], []), "pod.metadata must be an object"),
        (_broken(["spec"], "x"), "pod.spec must be an object"),
        (_broken(["spec", "containers"], {}), "pod.spec.containers must be a list"),
        (_broken(["spec", "containers", 0], "c"), r"pod.spec.containers\[0\] must be an object"),
        (
            _broken(["spec", "containers", 0, "resources", "requests"], {"cpu": "lots"}),
            r"pod.spec.containers\[0\].resources.requests: cpu: not a quantity: 'lots'",
        ),
        (
            _broken(["spec", "containers", 0, "resources", "limits"], {"memory": "1Zi"}),
            r"pod.spec.containers\[0\].resources.limits: .*'1Zi'",
        ),
        (
            _broken(["spec", "containers", 0, "resources"], ["cpu"]),
            r"pod.spec.containers\[0\].resources must be an object",
        ),
        (
            make_pod("p", init_containers=[make_container(requests={"cpu": "x"})]),
            r"pod.spec.initContainers\[0\].resources.requests: ",
        ),
        (make_pod("p", overhead={"cpu": "?"}), "pod.spec.overhead: "),
        (make_pod("p", pod_requests={"memory": "big"}), "pod.spec.resources.requests: "),
        (_broken(["metadata", "labels"], {"a": 1}), "pod.metadata.labels.a must be a string"),
        (_broken(["spec", "nodeSelector"], "ssd"), "pod.spec.nodeSelector must be an object"),
        (_broken(["spec", "tolerations"], [5]), r"pod.spec.tolerations\[0\] must be an object"),
        (
            _broken(["spec", "tolerations"], [{"key": 1}]),
            r"pod.spec.tolerations\[0\].key must be a string",
        ),
        (_broken(["spec", "priority"], "high"), "pod.spec.priority must be an integer"),
        (_broken(["spec", "priority"], True), "pod.spec.priority must be an integer"),
        (
            make_pod(
                "p",
                affinity=builders.node_affinity(
                    builders.term(builders.requirement("zone", "Near", "a"))
                ),
            ),
            r"matchExpressions\[0\].operator: 'Near' is not an operator",
        ),
        (
            make_pod(
                "p",
                affinity=builders.node_affinity(
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": [1]}]}
                ),
            ),
            r"matchExpressions\[0\].values must be strings",
        ),
        (
            make_pod("p", affinity=builders.node_affinity("term")),
            r"nodeSelectorTerms\[0\] must be an object",
        ),
        (
            _broken(["metadata", "creationTimestamp"], "yesterday"),
            "pod.metadata.creationTimestamp is not an RFC 3339 time",
        ),
        (
            _broken(["spec", "containers", 0, "ports"], [{"hostPort": "80"}]),
            "hostPort must be an integer",
        ),
    ],
    ids=[
        "not an object",
        "no name",
        "a numeric name",
        "metadata is a list",
        "spec is a string",
        "containers is an object",
        "a container is a string",
        "a bad request quantity",
        "a bad limit quantity",
        "resources is a list",
        "a bad init container request",
        "a bad overhead",
        "a bad pod-level request",
        "a non-string label value",
        "nodeSelector is a string",
        "a toleration is a number",
        "a toleration key is a number",
        "priority is a string",
        "priority is a boolean",
        "an unknown affinity operator",
        "non-string affinity values",
        "a selector term is a string",
        "a bad creation timestamp",
        "a string host port",
    ],
)
def test_malformed_pods_raise_object_error_naming_the_field(raw: object, message: str) -> None:
    with pytest.raises(objects.ObjectError, match=message):
        objects.to_pod(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (make_pod("p", cpu="-100"), r"pod.spec.containers\[0\].resources.requests: cpu: must not"),
        (
            make_pod("p", limits={"memory": "-1m"}),
            r"resources.limits: memory: must not be negative",
        ),
        (
            make_pod("p", init_containers=[make_container(requests={"cpu": "-1"})]),
            r"pod.spec.initContainers\[0\].resources.requests: cpu: must not be negative",
        ),
        (make_pod("p", overhead={"memory": "-9e999999"}), "pod.spec.overhead: memory: must not"),
        (make_pod("p", pod_requests={"cpu": -1}), "pod.spec.resources.requests: cpu: must not"),
        (
            make_pod("p", requests={"example.com/dongle": "-1"}),
            "requests: example.com/dongle: must not be negative, got '-1'",
        ),
    ],
    ids=[
        "a negative cpu request",
        "a negative milli-byte memory limit",
        "a negative init container request",
        "a huge negative overhead",
        "a negative pod-level request given as a JSON number",
        "a negative extended resource",
    ],
)
def test_negative_quantities_are_refused_naming_the_field(raw: object, message: str) -> None:
    with pytest.raises(objects.ObjectError, match=message):
        objects.to_pod(raw)


def test_zero_and_minus_zero_are_not_negative() -> None:
    assert objects.to_pod(make_pod("p", cpu="-0", memory="0"))


def test_a_pods_readiness_and_controller_come_from_status_and_owner_references() -> None:
    raw = make_pod("p")
    raw["status"] = {"conditions": [{"type": "PodScheduled", "status": "True"}]}
    raw["status"]["conditions"].append({"type": "Ready", "status": "True"})
    raw["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "rs", "controller": False},
        {"kind": "Job", "name": "train", "controller": True},
    ]
    pod = objects.to_pod(raw)
    assert pod.ready and pod.owner == ("Job", "train")
    raw["status"]["conditions"][1]["status"] = "False"
    raw["metadata"]["ownerReferences"] = None
    pod = objects.to_pod(raw)
    assert not pod.ready and pod.owner is None


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["status", "conditions"], "Ready", "pod.status.conditions must be a list, got str"),
        (["status", "conditions"], 5, "pod.status.conditions must be a list, got int"),
        (["status", "conditions"], ["Ready"], r"pod.status.conditions\[0\] must be an object"),
        (
            ["status", "conditions"],
            [{"type": "Ready", "status": True}],
            r"pod.status.conditions\[0\].status must be a string",
        ),
        (["metadata", "ownerReferences"], "job", "ownerReferences must be a list, got str"),
        (["metadata", "ownerReferences"], 7, "ownerReferences must be a list, got int"),
        (["metadata", "ownerReferences"], [1], r"ownerReferences\[0\] must be an object"),
        (
            ["metadata", "ownerReferences"],
            [{"kind": "Job", "name": ["x"], "controller": True}],
            r"ownerReferences\[0\].name must be a string",
        ),
        (
            ["metadata", "ownerReferences"],
            [{"kind": "Job", "name": "x", "controller": "yes"}],
            r"ownerReferences\[0\].controller must be a boolean",
        ),
    ],
    ids=[
        "conditions is a string",
        "conditions is a number",
        "a condition is a string",
        "a condition status is a boolean",
        "ownerReferences is a string",
        "ownerReferences is a number",
        "an owner reference is a number",
        "an owner name is a list",
        "controller is a string",
    ],
)
def test_malformed_status_and_owner_references_name_the_field(
    path: list[str], value: object, message: str
) -> None:
    raw = make_pod("p")
    raw.setdefault("status", {})
    with pytest.raises(objects.ObjectError, match=message):
        objects.to_pod(_broken(path, value, raw))


def test_to_node_reads_labels_allocatable_taints_and_cordon() -> None:
    raw = make_node(
        "n1",
        cpu="8",
        memory="16Gi",
        pods="50",
        extra={"nvidia.com/gpu": "2"},
        labels={"zone": "a"},
        taints=[builders.taint("gpu", "true"), builders.taint("maint", effect="NoExecute")],
        unschedulable=True,
    )
    node = objects.to_node(raw)
    assert node.name == "n1"
    assert node.labels == {"kubernetes.io/hostname": "n1", "zone": "a"}
    assert node.allocatable == {"cpu": 8000, "memory": 16 * GI, "pods": 50, "nvidia.com/gpu": 2}
    assert node.taints == (
        model.Taint("gpu", "true", "NoSchedule"),
        model.Taint("maint", "", "NoExecute"),
    )
    assert node.unschedulable


def test_node_capacity_stands_in_for_missing_allocatable() -> None:
    raw = make_node("n1", cpu="2")
    raw["status"]["allocatable"] = None
    assert objects.to_node(raw).allocatable["cpu"] == 2000


def test_node_with_null_spec_and_status_has_nothing() -> None:
    node = objects.to_node({"metadata": {"name": "n"}, "spec": None, "status": None})
    assert node == model.Node(name="n")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "Node must be an object"),
        ({"metadata": {}}, "node.metadata.name is missing"),
        (
            _broken(["status", "allocatable"], {"cpu": "four"}, make_node("n")),
            "node.status.allocatable: cpu: not a quantity: 'four'",
        ),
        (_broken(["spec", "taints"], {"key": "x"}, make_node("n")), "node.spec.taints must be"),
        (_broken(["metadata", "labels"], {"zone": None}, make_node("n")), "node.metadata.labels"),
        (
            _broken(["status", "allocatable"], {"memory": "-1Gi"}, make_node("n")),
            "node.status.allocatable: memory: must not be negative",
        ),
    ],
    ids=[
        "a list",
        "no name",
        "a bad allocatable",
        "taints is an object",
        "a null label value",
        "a negative allocatable",
    ],
)
def test_malformed_nodes_raise_object_error_naming_the_field(raw: object, message: str) -> None:
    with pytest.raises(objects.ObjectError, match=message):
        objects.to_node(raw)


@pytest.mark.parametrize(
    "name", ["Node-1", "node_1", "tab\there", 'quo"te', "-edge", "edge-", "a..b", "x" * 254]
)
def test_a_node_name_that_is_no_dns_subdomain_is_refused(name: str) -> None:
    """The API server refuses such names, and the wire writes node names unescaped."""
    raw = make_node("n")
    raw["metadata"]["name"] = name
    with pytest.raises(objects.ObjectError, match="is not a DNS subdomain"):
        objects.to_node(raw)


@pytest.mark.parametrize("name", ["n", "node-1", "ip-10-0-0-1.ec2.internal", "x" * 253])
def test_dns_subdomain_node_names_are_read(name: str) -> None:
    raw = make_node("n")
    raw["metadata"]["name"] = name
    assert objects.to_node(raw).name == name


def test_a_spec_naming_the_pods_resource_is_flagged():
    assert not builders.pod("plain", cpu="1").requests_pods
    assert builders.pod("explicit", requests={"cpu": "1", "pods": "1"}).requests_pods
    assert builders.pod("limits", limits={"pods": "1"}).requests_pods


def test_namespaces_keep_their_labels():
    ns = objects.to_namespace({"metadata": {"name": "team-a", "labels": {"team": "a"}}})
    assert ns == model.Namespace("team-a", {"team": "a"})
    with pytest.raises(objects.ObjectError, match="namespace.metadata.name is missing"):
        objects.to_namespace({"metadata": {}})
