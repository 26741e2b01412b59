"""Calls captured from the real kube-scheduler 1.20.2, replayed against the app.

``tests/payloads/scheduler-1.20.2-{filter,prioritize,bind}.json`` are the request bodies
exactly as that scheduler sent them (``nodeCacheCapable: true``) through a recording proxy in
``tests/e2e/test_extender.py::test_the_scheduler_sends_what_the_golden_payloads_hold``, which
also re-captures them on every e2e run and fails when their shape drifts
(``MUSTER_UPDATE_GOLDEN=1`` rewrites them). They are about one pod on two empty 2-cpu nodes.
kube-scheduler 1.20.2 never calls the preempt verb (see docs/kube-scheduler-facts.md), so there
is no captured preempt call; ``scheduler-preempt-meta-victims.json`` is written by hand.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from extender.core import cluster, objects, resources
from extender.service import ExtenderService
from extender.settings import Settings
from extender.web.app import make_app
from tests import builders
from tests.fakes import FakeBinder

FILTER = builders.load_payload("scheduler-1.20.2-filter.json")
PRIORITIZE = builders.load_payload("scheduler-1.20.2-prioritize.json")
BIND = builders.load_payload("scheduler-1.20.2-bind.json")

FILTER_RESULT_KEYS = set(builders.load_payload("protocol-extender-filter-result.json"))
HOST_PRIORITY_KEYS = set(builders.load_payload("protocol-host-priority.json"))
BINDING_ARGS_KEYS = set(builders.load_payload("protocol-extender-binding-args.json"))


async def post(client: TestClient, path: str, body: Any, *, status: int = 200) -> Any:
    response = await client.post(
        path, data=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return json.loads(await response.read())


@pytest.fixture
def golden_state() -> cluster.ClusterState:
    """The two empty 2-cpu nodes of the capture, labelled as the captured pod requires."""
    labels = {**FILTER["Pod"]["spec"]["nodeSelector"], "golden": "yes"}
    view = cluster.ClusterState()
    view.replace_nodes(builders.node(name, cpu="2", labels=labels) for name in FILTER["NodeNames"])
    view.synced = True
    return view


@pytest.fixture
async def golden_client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    golden_state: cluster.ClusterState,
    binder: FakeBinder,
) -> TestClient[Any, Any]:
    service = ExtenderService(
        state=golden_state, binder=binder, settings=Settings(), clock=lambda: 1000.0
    )
    return await aiohttp_client(make_app(service))


def test_the_captures_are_what_a_node_cache_capable_1_20_scheduler_sends() -> None:
    """Guards the files themselves: Go field names, node names instead of node objects, and
    the metadata.managedFields that 1.20 does not strip."""
    for args in (FILTER, PRIORITIZE):
        assert set(args) == {"Pod", "Nodes", "NodeNames"}
        assert args["Nodes"] is None and len(args["NodeNames"]) == 2
        assert args["Pod"]["metadata"]["managedFields"]
        assert "nodeName" not in args["Pod"]["spec"]
    assert PRIORITIZE["Pod"]["metadata"]["uid"] == FILTER["Pod"]["metadata"]["uid"]
    assert set(BIND) == BINDING_ARGS_KEYS
    assert BIND["PodUID"] == FILTER["Pod"]["metadata"]["uid"]
    assert BIND["Node"] in FILTER["NodeNames"]


def test_the_captured_pod_is_read_with_kubernetes_request_rules() -> None:
    pod = objects.to_pod(FILTER["Pod"])
    meta = FILTER["Pod"]["metadata"]
    assert (pod.namespace, pod.name, pod.uid) == (meta["namespace"], meta["name"], meta["uid"])
    # The container's requests (its limits do not count) outweigh the init container's.
    assert pod.requests[resources.CPU] == 500
    assert pod.requests[resources.MEMORY] == 256 * 2**20
    assert pod.node_selector == FILTER["Pod"]["spec"]["nodeSelector"]
    assert pod.required_terms is not None and len(pod.required_terms) == 1
    # Ours, and the two NoExecute tolerations the DefaultTolerationSeconds admission adds.
    assert {t.key for t in pod.tolerations} == {
        "dedicated",
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    }


async def test_the_captured_filter_call_passes_both_nodes(golden_client: TestClient) -> None:
    reply = await post(golden_client, "/filter", FILTER)
    assert set(reply) == FILTER_RESULT_KEYS
    assert reply == {
        "Nodes": None,
        "NodeNames": FILTER["NodeNames"],
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": "",
    }


async def test_the_captured_filter_call_on_full_nodes_lists_each_with_its_reason(
    golden_client: TestClient, golden_state: cluster.ClusterState
) -> None:
    for i, name in enumerate(FILTER["NodeNames"]):
        golden_state.upsert_pod(builders.pod(f"resident-{i}", cpu="1800m", node_name=name))
    reply = await post(golden_client, "/filter", FILTER)
    assert reply["NodeNames"] == []
    assert reply["FailedNodes"] == dict.fromkeys(FILTER["NodeNames"], "Insufficient cpu")


async def test_the_captured_prioritize_call_scores_each_node_with_an_integer(
    golden_client: TestClient, golden_state: cluster.ClusterState
) -> None:
    busy = PRIORITIZE["NodeNames"][0]
    golden_state.upsert_pod(builders.pod("resident", cpu="1", memory="1Gi", node_name=busy))
    reply = await post(golden_client, "/prioritize", PRIORITIZE)
    assert [entry["Host"] for entry in reply] == PRIORITIZE["NodeNames"]
    for entry in reply:
        assert set(entry) == HOST_PRIORITY_KEYS
        assert type(entry["Score"]) is int and 0 <= entry["Score"] <= 10
    scores = {entry["Host"]: entry["Score"] for entry in reply}
    idle = PRIORITIZE["NodeNames"][1]
    assert scores[idle] > scores[busy]


async def test_the_captured_bind_call_binds_the_pod_the_filter_call_carried(
    golden_client: TestClient, binder: FakeBinder
) -> None:
    await post(golden_client, "/filter", FILTER)
    assert await post(golden_client, "/bind", BIND) == {"Error": ""}
    key = f"{BIND['PodNamespace']}/{BIND['PodName']}"
    assert binder.calls == [(key, BIND["PodUID"], BIND["Node"])]


async def test_the_captured_bind_call_for_a_pod_never_seen_is_refused_in_the_reply(
    golden_client: TestClient, binder: FakeBinder
) -> None:
    reply = await post(golden_client, "/bind", BIND)
    assert "unknown to the extender" in reply["Error"]
    assert binder.calls == []


async def test_the_calls_of_kube_scheduler_1_36_filter_score_and_bind_the_pod(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], binder: FakeBinder
) -> None:
    """The same pod's calls as kube-scheduler 1.36.5 sent them (``scheduler-1.36.5-*.json``,
    captured by the e2e suite on that release): it strips managedFields and sends the pod's
    generation; muster answers them as it answers 1.20's."""
    filter_args = builders.load_payload("scheduler-1.36.5-filter.json")
    prioritize_args = builders.load_payload("scheduler-1.36.5-prioritize.json")
    bind_args = builders.load_payload("scheduler-1.36.5-bind.json")
    meta = filter_args["Pod"]["metadata"]
    assert "managedFields" not in meta and isinstance(meta["generation"], int)
    labels = {**filter_args["Pod"]["spec"]["nodeSelector"], "golden": "yes"}
    view = cluster.ClusterState()
    view.replace_nodes(builders.node(n, cpu="2", labels=labels) for n in filter_args["NodeNames"])
    view.synced = True
    service = ExtenderService(state=view, binder=binder, settings=Settings(), clock=lambda: 1.0)
    client = await aiohttp_client(make_app(service))
    reply = await post(client, "/filter", filter_args)
    assert reply["NodeNames"] == filter_args["NodeNames"] and reply["Error"] == ""
    scores = await post(client, "/prioritize", prioritize_args)
    assert [entry["Host"] for entry in scores] == prioritize_args["NodeNames"]
    assert await post(client, "/bind", bind_args) == {"Error": ""}
    key = f"{bind_args['PodNamespace']}/{bind_args['PodName']}"
    assert binder.calls == [(key, bind_args["PodUID"], bind_args["Node"])]
