"""muster against the real kube-scheduler 1.20.2: binding through the bind verb, muster's own
checks deciding where pods go, a restart of the extender, malformed calls, and the golden
payloads this scheduler sends.

The scheduler calls muster through a recording proxy (harness.RecordingProxy), so a test can
see every call and answer. "muster-filters" is the shipped configuration plus a profile without
the in-tree filters that muster also implements: there muster's checks alone decide.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import controlplane
import harness
import pytest
from controlplane import wait_until
from harness import Extender, NodeSet, create, delete_pods, messages, placements, pod

pytestmark = pytest.mark.e2e

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads"
GOLDEN = {
    verb: PAYLOADS / f"scheduler-{controlplane.K8S_VERSION}-{verb}.json"
    for verb in ("filter", "prioritize", "bind")
}
"""The calls as this release's kube-scheduler sends them (1.36 drops managedFields from the Pod
it sends, and sends metadata.generation)."""
UPDATE_GOLDEN = os.environ.get("MUSTER_UPDATE_GOLDEN") == "1"


def bound(cp: Any, namespace: str, count: int, timeout: float = 30) -> dict[str, str]:
    """Wait until ``count`` pods of the namespace are bound; return all placements."""

    def enough() -> dict[str, str] | None:
        now = placements(cp, namespace)
        return now if sum(1 for n in now.values() if n) >= count else None

    return wait_until(enough, timeout, 0.1, f"{count} bound pods in {namespace}")


def failed_scheduling(cp: Any, namespace: str, name: str, timeout: float = 30) -> list[str]:
    """Wait for the pod's FailedScheduling event(s); return their messages."""
    return wait_until(
        lambda: messages(cp, namespace, name, "FailedScheduling"),
        timeout,
        0.2,
        f"a FailedScheduling event of {namespace}/{name}",
    )


def used_cpu(cp: Any, namespace: str) -> dict[str, int]:
    """Millicores requested per node by the namespace's bound pods."""
    used: dict[str, int] = {}
    for p in cp.list_pods(namespace):
        node = p["spec"].get("nodeName")
        if node:
            used[node] = used.get(node, 0) + harness.requested_cpu_millis(p)
    return used


def assert_bound_through_bind_verb(
    ext: Extender, namespace: str, where: Mapping[str, str], mark: int
) -> None:
    """Every bound pod was bound by a successful bind call to muster naming its node and uid."""
    for name, node in where.items():
        if not node:
            continue
        uid = ext.cp.get_pod(name, namespace)["metadata"]["uid"]
        # The binding can show in the API a moment before muster's answer reaches the proxy.
        calls = wait_until(
            lambda name=name, node=node: [
                c
                for c in ext.proxy.for_pod(name, "bind", mark, answered=True)
                if c.args["Node"] == node
            ],
            10,
            0.05,
            f"muster's answer to binding {name} on {node}",
        )
        assert calls[-1].status == 200 and calls[-1].reply == {"Error": ""}
        assert calls[-1].args["PodUID"] == uid and calls[-1].args["PodNamespace"] == namespace


# -- binding ------------------------------------------------------------------------------------


def test_plain_pods_are_bound_through_musters_bind_verb_on_nodes_that_fit(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    cp, ns = extender.cp, e2e_namespace
    capacity = {nodes.add("small", cpu="1"): 1000, nodes.add("medium", cpu="2"): 2000}
    capacity[nodes.add("large", cpu="4")] = 4000
    harness.wait_muster_sees_nodes(cp, extender.muster)
    mark = extender.proxy.mark()
    binds_before = extender.muster.metric("muster_binds_total", result="bound")

    for i in range(8):  # 8 cpu of pods for 7 cpu of nodes
        create(cp, ns, pod(f"p{i}", nodes.selector, cpu="1"))
    where = bound(cp, ns, 7)
    (pending,) = [name for name, node in where.items() if not node]
    assert failed_scheduling(cp, ns, pending)

    assert set(where.values()) - {""} <= set(capacity)
    for node, millis in used_cpu(cp, ns).items():
        assert millis <= capacity[node], f"{node} overcommitted: {millis}m"
    assert_bound_through_bind_verb(extender, ns, where, mark)
    assert not extender.proxy.for_pod(pending, "bind", mark)
    assert extender.muster.metric("muster_binds_total", result="bound") - binds_before >= 7
    # The scheduler records the binding as usual once muster's bind call succeeded.
    bound_pod = next(name for name, node in where.items() if node)
    assert wait_until(
        lambda: [m for m in messages(cp, ns, bound_pod, "Scheduled") if "Successfully" in m],
        10,
        0.2,
        "a Scheduled event",
    )


def test_a_pod_larger_than_any_node_stays_pending_with_musters_reason(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    """With the in-tree NodeResourcesFit filter disabled, only muster's accounting keeps pods
    off full nodes, and muster's reason is the one in the pod's FailedScheduling event."""
    cp, ns = extender.cp, e2e_namespace
    extender.schedulers.use("muster-filters")
    capacity = {nodes.add("one", cpu="1"): 1000, nodes.add("two", cpu="2"): 2000}
    harness.wait_muster_sees_nodes(cp, extender.muster)
    mark = extender.proxy.mark()

    for i in range(3):  # one at a time (pods back to back: the test below)
        create(cp, ns, pod(f"fits-{i}", nodes.selector, cpu="1"))
        bound(cp, ns, i + 1)
    create(cp, ns, pod("no-room-left", nodes.selector, cpu="1"))
    create(cp, ns, pod("huge", nodes.selector, cpu="3"))
    for name in ("no-room-left", "huge"):
        events = failed_scheduling(cp, ns, name)
        assert any(re.search(r"\b2 Insufficient cpu\b", m) for m in events), events
        replies = [c.reply for c in extender.proxy.for_pod(name, "filter", mark, answered=True)]
        assert replies and replies[-1]["NodeNames"] == []
        assert {n: replies[-1]["FailedNodes"].get(n) for n in capacity} == dict.fromkeys(
            capacity, "Insufficient cpu"
        )
    time.sleep(1)  # nothing changes: both stay pending
    where = placements(cp, ns)
    assert where["no-room-left"] == where["huge"] == ""
    for node, millis in used_cpu(cp, ns).items():
        assert millis <= capacity[node], f"{node} overcommitted: {millis}m"
    assert_bound_through_bind_verb(extender, ns, where, mark)


def test_pods_scheduled_back_to_back_never_overcommit_a_node_muster_alone_checks(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    cp, ns = extender.cp, e2e_namespace
    extender.schedulers.use("muster-filters")
    node = nodes.add("two", cpu="2")
    harness.wait_muster_sees_nodes(cp, extender.muster)
    extender.proxy.delays["bind"] = 0.5  # the binding goroutine a little behind
    for i in range(3):
        create(cp, ns, pod(f"back-to-back-{i}", nodes.selector, cpu="1"))
    bound(cp, ns, 2)
    time.sleep(2)  # every bind call has reached muster and been answered
    assert used_cpu(cp, ns).get(node, 0) <= 2000, placements(cp, ns)


# -- muster's checks against the in-tree filters ------------------------------------------------

# Each pod fits exactly one node of the table, or none: placements are deterministic.
# (node suffix, labels, taints, unschedulable)
CHECK_NODES: list[tuple[str, dict[str, str], list[dict[str, str]], bool]] = [
    ("z1", {"zone": "z1", "cores": "4"}, [], False),
    ("z2gpu", {"zone": "z2", "accel": "gpu", "cores": "16"}, [], False),
    ("z3db", {"zone": "z3"}, [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}], False),
    (
        "z4spot",
        {"zone": "z4"},
        [{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}],
        False,
    ),
    ("z5evict", {"zone": "z5"}, [{"key": "evict", "value": "yes", "effect": "NoExecute"}], False),
    ("z6cordoned", {"zone": "z6"}, [], True),
]


def _zone(*zones: str) -> dict[str, Any]:
    return _affinity([{"key": "zone", "operator": "In", "values": list(zones)}])


def _affinity(*terms: list[dict[str, Any]], fields: list[dict[str, Any]] | None = None) -> Any:
    node_terms: list[dict[str, Any]] = [{"matchExpressions": t} for t in terms]
    if fields:
        node_terms.append({"matchFields": fields})
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": node_terms}
        }
    }


def _tolerate(key: str, effect: str, value: str | None = None) -> list[dict[str, str]]:
    if value is None:
        return [{"key": key, "operator": "Exists", "effect": effect}]
    return [{"key": key, "operator": "Equal", "value": value, "effect": effect}]


def check_pods(test_id: str) -> dict[str, tuple[dict[str, Any], str]]:
    """{pod name: (extra spec, expected node suffix or "" for pending)}."""
    return {
        "selector-gpu": ({"nodeSelector": {"accel": "gpu"}}, "z2gpu"),
        "selector-tpu": ({"nodeSelector": {"accel": "tpu"}}, ""),
        "affinity-in": ({"affinity": _zone("z1")}, "z1"),
        "affinity-gt": (
            {"affinity": _affinity([{"key": "cores", "operator": "Gt", "values": ["8"]}])},
            "z2gpu",
        ),
        "affinity-match-fields": (
            {
                "affinity": _affinity(
                    fields=[{"key": "metadata.name", "operator": "In", "values": [f"{test_id}-z1"]}]
                )
            },
            "z1",
        ),
        "affinity-terms-are-ored": (
            {
                "affinity": _affinity(
                    [{"key": "zone", "operator": "In", "values": ["z9"]}],
                    [{"key": "zone", "operator": "In", "values": ["z4"]}],
                )
            },
            "z4spot",
        ),
        "affinity-does-not-exist": (
            {
                "affinity": _affinity(
                    [
                        {"key": "accel", "operator": "DoesNotExist"},
                        {"key": "zone", "operator": "In", "values": ["z1", "z2"]},
                    ]
                )
            },
            "z1",
        ),
        "affinity-not-in": (
            {
                "affinity": _affinity(
                    [{"key": "zone", "operator": "NotIn", "values": ["z1", "z3", "z4", "z5", "z6"]}]
                )
            },
            "z2gpu",
        ),
        "selector-and-affinity-both-hold": (
            {
                "nodeSelector": {"zone": "z1"},
                "affinity": _affinity([{"key": "accel", "operator": "Exists"}]),
            },
            "",
        ),
        "untolerated-no-schedule": ({"affinity": _zone("z3")}, ""),
        "tolerated-no-schedule": (
            {"affinity": _zone("z3"), "tolerations": _tolerate("dedicated", "NoSchedule", "db")},
            "z3db",
        ),
        "toleration-of-another-value": (
            {"affinity": _zone("z3"), "tolerations": _tolerate("dedicated", "NoSchedule", "web")},
            "",
        ),
        "prefer-no-schedule-is-no-filter": ({"affinity": _zone("z4")}, "z4spot"),
        "untolerated-no-execute": ({"affinity": _zone("z5")}, ""),
        "tolerated-no-execute": (
            {"affinity": _zone("z5"), "tolerations": _tolerate("evict", "NoExecute")},
            "z5evict",
        ),
        "cordoned": ({"affinity": _zone("z6")}, ""),
        "tolerates-the-cordon": (
            {
                "affinity": _zone("z6"),
                "tolerations": _tolerate("node.kubernetes.io/unschedulable", "NoSchedule"),
            },
            "z6cordoned",
        ),
    }


def _place_check_pods(ext: Extender, nodes: NodeSet, namespace: str) -> dict[str, str]:
    """Create the check pods; wait until each is bound or has a FailedScheduling event."""
    cp = ext.cp
    for name, (extra, _) in check_pods(nodes.test_id).items():
        spec = dict(extra)
        selector = {**nodes.selector, **spec.pop("nodeSelector", {})}
        create(cp, namespace, pod(name, selector, cpu="100m", **spec))

    def settled() -> dict[str, str] | None:
        now = placements(cp, namespace)
        unsettled = [n for n, node in now.items() if not node]
        failed = {
            e["involvedObject"]["name"]
            for e in harness.events(cp, namespace, reason="FailedScheduling")
        }
        return (
            now if len(now) == len(check_pods(nodes.test_id)) and failed >= set(unsettled) else None
        )

    wait_until(settled, 60, 0.2, "every check pod bound or failed")
    time.sleep(1)  # a pending pod stays pending: nothing in the cluster changes
    return {
        name: node.removeprefix(f"{nodes.test_id}-")
        for name, node in placements(cp, namespace).items()
    }


def test_taints_selectors_and_node_affinity_place_pods_as_without_the_extender(
    extender: Extender, e2e_id: str, nodes: NodeSet
) -> None:
    """The same pods on the same nodes: the in-tree filters alone, muster's checks alone (the
    in-tree ones disabled), and both (the shipped configuration) agree, pod by pod."""
    cp = extender.cp
    for suffix, labels, taints, cordoned in CHECK_NODES:
        nodes.add(suffix, labels=labels, taints=taints, unschedulable=cordoned)
    harness.wait_muster_sees_nodes(cp, extender.muster)
    expected = {name: node for name, (_, node) in check_pods(nodes.test_id).items()}

    results = {}
    for variant in ("plain", "muster-filters", "shipped"):
        extender.schedulers.use(variant)
        mark = extender.proxy.mark()
        with harness.namespace(cp, f"e2e-{e2e_id}-{variant}") as ns:
            results[variant] = _place_check_pods(extender, nodes, ns)
            if variant != "plain":
                where = {
                    n: f"{nodes.test_id}-{s}" if s else "" for n, s in results[variant].items()
                }
                assert_bound_through_bind_verb(extender, ns, where, mark)
            if variant == "muster-filters":  # muster was asked about every node, and said no
                for name, node in expected.items():
                    calls = extender.proxy.for_pod(name, "filter", mark)
                    assert calls and calls[-1].status == 200, name
                    passed = calls[-1].reply["NodeNames"]
                    assert passed == ([f"{nodes.test_id}-{node}"] if node else []), name
            delete_pods(cp, ns, list(expected))
    assert results["plain"] == expected
    assert results["muster-filters"] == expected
    assert results["shipped"] == expected


# -- restarts and bad input ---------------------------------------------------------------------


def test_the_extender_restarted_mid_run_resyncs_and_keeps_binding(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    """Killed (SIGKILL) and started again, muster rebuilds its view from the API server: the
    pods bound before the restart still count (muster alone checks resources here)."""
    cp, ns, muster = extender.cp, e2e_namespace, extender.muster
    extender.schedulers.use("muster-filters")
    capacity = {nodes.add("a", cpu="2"): 2000, nodes.add("b", cpu="2"): 2000}
    harness.wait_muster_sees_nodes(cp, muster)
    for i in range(2):
        create(cp, ns, pod(f"before-{i}", nodes.selector, cpu="1"))
    bound(cp, ns, 2)

    old_pid = muster.pid
    muster.kill()
    create(cp, ns, pod("while-down", nodes.selector, cpu="1"))
    down = failed_scheduling(cp, ns, "while-down")
    assert any(f"{extender.proxy.url}/filter" in m for m in down), down

    # Marked before the start: the new muster nudges the pod that failed while it was down, and
    # the scheduler can bind it before start() returns.
    mark = extender.proxy.mark()
    muster.start()
    assert muster.pid != old_pid
    for i in range(2):
        create(cp, ns, pod(f"after-{i}", nodes.selector, cpu="1"))
    where = bound(cp, ns, 4)
    assert where["after-0"] or where["after-1"]
    assert_bound_through_bind_verb(
        extender, ns, {k: where[k] for k in ("after-0", "after-1", "while-down")}, mark
    )

    # 4 of 4 cpu are used, two of them by pods bound before the restart.
    create(cp, ns, pod("overflow", nodes.selector, cpu="1"))
    assert any("Insufficient cpu" in m for m in failed_scheduling(cp, ns, "overflow"))
    assert placements(cp, ns)["overflow"] == ""
    for node, millis in used_cpu(cp, ns).items():
        assert millis <= capacity[node], f"{node} overcommitted after the restart: {millis}m"

    # A pod that failed while muster was down waits in the scheduler's unschedulable queue
    # (1.20 retries it after a cluster event or 60 s). Deleting a pod is such an event, and
    # frees one cpu: exactly one of the waiting pods gets it.
    waiting = [name for name, node in placements(cp, ns).items() if not node]
    assert len(waiting) == 2 and "overflow" in waiting, waiting
    delete_pods(cp, ns, ["before-0"])
    where = bound(cp, ns, 4, timeout=20)
    assert sum(1 for name in waiting if where[name]) == 1, where
    for node, millis in used_cpu(cp, ns).items():
        assert millis <= capacity[node], f"{node} overcommitted: {millis}m"


MALFORMED: list[tuple[str, bytes]] = [
    ("/filter", b"{not json"),
    ("/filter", b"[]"),
    ("/filter", b'{"Pod": "a pod", "NodeNames": ["n"]}'),
    ("/filter", b'{"Pod": {"metadata": {"name": 3}}, "NodeNames": ["n"]}'),
    ("/filter", b'{"Pod": {"metadata": {"name": "p"}}, "NodeNames": 5}'),
    ("/prioritize", b'{"Pod": {"metadata": {"name": "p"}}, "NodeNames": ["no-such-node"]}'),
    ("/bind", b'{"PodName": 3, "PodNamespace": "x", "PodUID": "u", "Node": "n"}'),
    ("/bind", b'{"PodNamespace": "x"}'),
    ("/preempt", b'{"Pod": {"metadata": {"name": "p"}}, "NodeNameToMetaVictims": []}'),
]


def test_malformed_calls_get_400_and_never_wedge_the_extender(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    cp, ns, muster = extender.cp, e2e_namespace, extender.muster
    nodes.add("a")
    harness.wait_muster_sees_nodes(cp, muster)
    bad_before = sum(
        muster.metric("muster_requests_total", verb=v, outcome="bad_request")
        for v in ("filter", "prioritize", "bind", "preempt")
    )

    for path, body in MALFORMED:
        status, reply = muster.post(path, body)
        assert status == 400, (path, body, reply)
        assert json.loads(reply)["Error"], (path, body)
    # Over the 32 MiB default limit: refused after reading the limit, not the whole body.
    oversized = b'{"Pod": {}, "NodeNames": ["' + b"n" * (65 * 2**20) + b'"]}'
    status, reply = muster.post("/filter", oversized, timeout=60)
    assert status == 400 and b"too large" in reply

    bad_after = sum(
        muster.metric("muster_requests_total", verb=v, outcome="bad_request")
        for v in ("filter", "prioritize", "bind", "preempt")
    )
    assert bad_after - bad_before == len(MALFORMED) + 1

    # A client that sends half a request and stalls holds no lock: real pods still bind.
    with socket.create_connection(("127.0.0.1", muster.port), timeout=10) as stalled:
        stalled.sendall(
            b"POST /filter HTTP/1.1\r\nHost: muster\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"Pod": {"metadata": '
        )
        mark = extender.proxy.mark()
        create(cp, ns, pod("after-bad-input", nodes.selector))
        where = bound(cp, ns, 1)
        assert_bound_through_bind_verb(extender, ns, where, mark)
    assert muster.get("/healthz") == (200, "ok")
    assert muster.alive()


# -- golden payloads ----------------------------------------------------------------------------


def golden_pod(name: str, selector: Mapping[str, str]) -> dict[str, Any]:
    """The pod of the golden filter/prioritize/bind payloads: a typical worker (requests and
    limits, a small init container, a port, labels, annotations, a toleration, node affinity).
    loadtest/workloads.py uses the captured pod as its template, varying only the container's
    requests: keep the init container smaller than any load-test shape (100m, 100Mi)."""
    manifest = pod(
        name,
        selector,
        cpu="500m",
        memory="256Mi",
        labels={"app": "golden", "tier": "batch"},
        annotations={"example.com/owner": "e2e"},
        initContainers=[
            {
                "name": "init",
                "image": harness.IMAGE,
                "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
            }
        ],
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "batch"}],
        affinity=_affinity([{"key": "golden", "operator": "Exists"}]),
    )
    container = manifest["spec"]["containers"][0]
    container["resources"]["limits"] = {"cpu": "1", "memory": "512Mi"}
    container["ports"] = [{"containerPort": 8080, "protocol": "TCP"}]
    return manifest


def shape(document: Any, path: str = "") -> set[str]:
    """Every key path of a JSON document with the JSON type at it; list items share ``[]``,
    node names (keys of the victims maps) become ``*``, and managedFields' fieldsV1 (a mirror
    of the object's own fields) is left out."""
    kind = type(document).__name__
    out = {f"{path}:{kind}"}
    if isinstance(document, dict):
        for key, value in document.items():
            if path.endswith("fieldsV1"):
                continue
            shown = "*" if path.endswith(("NodeNameToMetaVictims", "NodeNameToVictims")) else key
            out |= shape(value, f"{path}.{shown}" if path else shown)
    elif isinstance(document, list):
        for item in document:
            out |= shape(item, f"{path}[]")
    return out


def test_the_scheduler_sends_what_the_golden_payloads_hold(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    """Re-capture the filter, prioritize and bind calls of this kube-scheduler and compare
    their shape with tests/payloads/scheduler-<version>-*.json, which tests/web/
    test_golden_payloads.py replays. MUSTER_UPDATE_GOLDEN=1 rewrites the files."""
    cp, ns, proxy = extender.cp, e2e_namespace, extender.proxy
    for suffix in ("a", "b"):
        nodes.add(suffix, cpu="2", labels={"golden": "yes"})
    harness.wait_muster_sees_nodes(cp, extender.muster)
    mark = proxy.mark()
    create(cp, ns, golden_pod("golden", nodes.selector))
    bound(cp, ns, 1)

    captured = {
        verb: wait_until(
            lambda verb=verb: proxy.for_pod("golden", verb, mark, answered=True),
            10,
            0.05,
            f"muster's answer to the {verb} call",
        )[0]
        for verb in GOLDEN
    }
    for call in captured.values():
        assert call.status == 200, call
    if UPDATE_GOLDEN:
        for verb, call in captured.items():
            GOLDEN[verb].write_bytes(call.request + b"\n")
    missing = [str(p) for p in GOLDEN.values() if not p.exists()]
    assert not missing, f"no golden payloads {missing}: run with MUSTER_UPDATE_GOLDEN=1"
    for verb, call in captured.items():
        stored = json.loads(GOLDEN[verb].read_bytes())
        assert shape(call.args) == shape(stored), (
            f"kube-scheduler's {verb} call no longer has the shape of {GOLDEN[verb].name}; "
            f"only in the new one: {sorted(shape(call.args) - shape(stored))}, "
            f"only in the file: {sorted(shape(stored) - shape(call.args))}"
        )


def test_preemption_frees_a_node_and_the_preemptor_is_bound_through_muster(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    """kube-scheduler 1.20.2 preempts with its in-tree DefaultPreemption and never calls the
    extender's preempt verb (its framework is built without the extenders); 1.36 calls it with
    the victims it chose, and muster keeps them (no gang among them). The preemptor is bound
    through muster once the victim is gone, not while it is terminating."""
    cp, ns, proxy = extender.cp, e2e_namespace, extender.proxy
    for suffix in ("a", "b"):
        nodes.add(suffix, cpu="2")
    harness.wait_muster_sees_nodes(cp, extender.muster)
    high = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": f"e2e-high-{nodes.test_id}"},
        "value": 1000,
    }
    cp.api("POST", "/apis/scheduling.k8s.io/v1/priorityclasses", high)
    try:
        for i in range(4):  # 4 cpu on 4, all priority 0
            create(cp, ns, pod(f"filler-{i}", nodes.selector, cpu="1"))
        bound(cp, ns, 4)
        mark = proxy.mark()
        create(
            cp,
            ns,
            pod("urgent", nodes.selector, cpu="1", priorityClassName=high["metadata"]["name"]),
        )
        nominated = wait_until(
            lambda: cp.get_pod("urgent", ns)["status"].get("nominatedNodeName"),
            30,
            0.1,
            "urgent's nominated node",
        )
        # The victim is deleted gracefully; without a kubelet it stays Terminating.
        victims = wait_until(
            lambda: [
                p["metadata"]["name"]
                for p in cp.list_pods(ns)
                if p["metadata"].get("deletionTimestamp")
            ],
            10,
            0.1,
            "a victim being deleted",
        )
        assert all(cp.get_pod(v, ns)["spec"]["nodeName"] == nominated for v in victims)
        time.sleep(1)
        assert placements(cp, ns)["urgent"] == ""
        preempts = proxy.since(mark, "preempt")
        if controlplane.LEGACY:
            assert not preempts, "kube-scheduler 1.20.2 called the preempt verb"
        else:
            assert preempts, f"kube-scheduler {controlplane.K8S_VERSION} never called preempt"
            asked = json.loads(preempts[0].request)
            answer = json.loads(preempts[0].response)
            assert preempts[0].status == 200 and answer.get("Error", "") == ""
            assert asked["Pod"]["metadata"]["name"] == "urgent"
            # muster keeps the scheduler's candidates: no victim belongs to a gang
            kept = answer["NodeNameToMetaVictims"]
            assert nominated in kept
            offered = asked.get("NodeNameToMetaVictims") or asked["NodeNameToVictims"]
            assert set(kept) == set(offered)
        delete_pods(cp, ns, victims)  # what the kubelet would confirm
        where = wait_until(lambda: placements(cp, ns)["urgent"], 30, 0.1, "urgent bound")
        assert where == nominated
        assert_bound_through_bind_verb(extender, ns, {"urgent": where}, mark)
    finally:
        cp.api(
            "DELETE",
            f"/apis/scheduling.k8s.io/v1/priorityclasses/{high['metadata']['name']}",
            ok=(200, 404),
        )
