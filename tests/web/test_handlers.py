"""The extender verbs over HTTP: decisions, binding, errors, health and metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from extender.core import cluster, predicates
from extender.service import ExtenderService
from extender.settings import Settings
from extender.web.app import make_app
from tests import builders
from tests.fakes import FakeBinder


async def call(client: TestClient, path: str, body: Any, *, status: int = 200) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    response = await client.post(path, data=data, headers={"Content-Type": "application/json"})
    text = await response.text()
    assert response.status == status, text
    return json.loads(text)


def requests_total(verb: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("muster_requests_total", {"verb": verb, "outcome": outcome})
    return value or 0.0


@pytest.fixture
def mixed(state: cluster.ClusterState) -> list[str]:
    """Add nodes that reject for every kind of reason; return all node names."""
    state.upsert_node(builders.node("cordoned", unschedulable=True))
    state.upsert_node(builders.node("tainted", taints=[builders.taint("dedicated", "db")]))
    state.upsert_node(builders.node("elsewhere", labels={"zone": "b"}))
    state.upsert_node(builders.node("small", cpu="1"))
    state.upsert_node(builders.node("full", pods="1"))
    state.upsert_pod(builders.pod("resident", cpu="100m", node_name="full"))
    return sorted(state.nodes)


# -- filter ---------------------------------------------------------------------------------


async def test_filter_lists_every_rejected_node_with_its_reason(
    client: TestClient, mixed: list[str]
) -> None:
    pod = builders.make_pod(
        "p",
        cpu="2",
        affinity=builders.node_affinity(
            builders.term(builders.requirement("zone", "DoesNotExist"))
        ),
    )
    reply = await call(client, "/filter", builders.extender_args(pod, mixed))
    passed, failed, unresolvable = (
        reply["NodeNames"],
        reply["FailedNodes"],
        reply["FailedAndUnresolvableNodes"],
    )
    assert sorted(passed) == ["node1", "node2", "node3"]
    assert failed == {"small": "Insufficient cpu", "full": predicates.REASON_TOO_MANY_PODS}
    assert unresolvable == {
        "cordoned": predicates.REASON_UNSCHEDULABLE,
        "tainted": "node(s) had taint {dedicated: db}, that the pod didn't tolerate",
        "elsewhere": predicates.REASON_AFFINITY,
    }
    assert set(passed) | set(failed) | set(unresolvable) == set(mixed)
    assert len(passed) + len(failed) + len(unresolvable) == len(mixed)


async def test_filter_keeps_the_order_of_the_input(client: TestClient) -> None:
    names = ["node3", "node1", "node2"]
    reply = await call(client, "/filter", builders.extender_args(builders.make_pod("p"), names))
    assert reply["NodeNames"] == names


async def test_filter_sees_pods_already_on_the_nodes(
    client: TestClient, state: cluster.ClusterState
) -> None:
    state.upsert_pod(builders.pod("big", cpu="3500m", node_name="node2"))
    reply = await call(
        client,
        "/filter",
        builders.extender_args(builders.make_pod("p", cpu="1"), ["node1", "node2"]),
    )
    assert reply["NodeNames"] == ["node1"]
    assert reply["FailedNodes"] == {"node2": "Insufficient cpu"}


# -- prioritize -----------------------------------------------------------------------------


async def test_least_allocated_prefers_the_emptier_node(
    client: TestClient, state: cluster.ClusterState
) -> None:
    state.upsert_pod(builders.pod("a", cpu="2", memory="4Gi", node_name="node2"))
    body = builders.extender_args(builders.make_pod("p", cpu="1", memory="1Gi"), ["node1", "node2"])
    scores = {e["Host"]: e["Score"] for e in await call(client, "/prioritize", body)}
    assert scores["node1"] > scores["node2"]


async def test_most_allocated_prefers_the_fuller_node(
    aiohttp_client: Any, state: cluster.ClusterState, binder: FakeBinder
) -> None:
    settings = Settings(scoring="MostAllocated")
    service = ExtenderService(state=state, binder=binder, settings=settings)
    client = await aiohttp_client(make_app(service))
    state.upsert_pod(builders.pod("a", cpu="2", memory="4Gi", node_name="node2"))
    body = builders.extender_args(builders.make_pod("p", cpu="1", memory="1Gi"), ["node1", "node2"])
    scores = {e["Host"]: e["Score"] for e in await call(client, "/prioritize", body)}
    assert scores["node2"] > scores["node1"]


# -- bind -----------------------------------------------------------------------------------


async def test_bind_calls_the_binder_and_accounts_the_pod_at_once(
    client: TestClient, binder: FakeBinder, state: cluster.ClusterState
) -> None:
    big = builders.make_pod("big", namespace="ml", cpu="3")
    await call(client, "/filter", builders.extender_args(big, ["node1", "node2"]))
    assert await call(client, "/bind", builders.binding_args(big, "node1")) == {"Error": ""}
    assert binder.calls == [("ml/big", big["metadata"]["uid"], "node1")]
    assert state.nodes["node1"].used == {"cpu": 3000, "pods": 1}

    other = builders.make_pod("other", cpu="3", memory="1Gi")
    reply = await call(client, "/filter", builders.extender_args(other, ["node1", "node2"]))
    assert reply["NodeNames"] == ["node2"]
    assert reply["FailedNodes"] == {"node1": "Insufficient cpu"}


async def test_a_bind_is_seen_by_the_next_identical_pod(client: TestClient) -> None:
    """Identical pods share cached verdicts (opportunistic batching); a bind must still
    change the verdict on the node it filled."""
    first, second = (builders.make_pod(name, cpu="3") for name in ("replica-1", "replica-2"))
    nodes = ["node1", "node2"]
    reply = await call(client, "/filter", builders.extender_args(first, nodes))
    assert reply["NodeNames"] == nodes
    await call(client, "/prioritize", builders.extender_args(first, nodes))
    assert await call(client, "/bind", builders.binding_args(first, "node1")) == {"Error": ""}
    reply = await call(client, "/filter", builders.extender_args(second, nodes))
    assert reply["NodeNames"] == ["node2"]
    assert reply["FailedNodes"] == {"node1": "Insufficient cpu"}
    scores = await call(client, "/prioritize", builders.extender_args(second, nodes))
    by_host = {entry["Host"]: entry["Score"] for entry in scores}
    assert by_host["node2"] > by_host["node1"], "the fuller node now scores lower"


async def test_bind_of_a_pod_known_from_the_watch(
    client: TestClient, binder: FakeBinder, state: cluster.ClusterState
) -> None:
    state.upsert_pod(builders.pod("w", uid="w-1", cpu="1"))
    args = {"PodName": "w", "PodNamespace": "default", "PodUID": "w-1", "Node": "node3"}
    assert await call(client, "/bind", args) == {"Error": ""}
    assert binder.calls == [("default/w", "w-1", "node3")]


async def test_binding_twice_to_the_same_node_binds_once(
    client: TestClient, binder: FakeBinder
) -> None:
    pod = builders.make_pod("p", cpu="1")
    await call(client, "/filter", builders.extender_args(pod, ["node1"]))
    for _ in range(2):
        assert await call(client, "/bind", builders.binding_args(pod, "node1")) == {"Error": ""}
    assert len(binder.calls) == 1


async def test_binding_to_another_node_while_bound_is_refused(
    client: TestClient, binder: FakeBinder
) -> None:
    pod = builders.make_pod("p", cpu="1")
    await call(client, "/filter", builders.extender_args(pod, ["node1"]))
    await call(client, "/bind", builders.binding_args(pod, "node1"))
    reply = await call(client, "/bind", builders.binding_args(pod, "node2"))
    assert "already bound to node1" in reply["Error"]
    assert len(binder.calls) == 1


@pytest.mark.parametrize(
    ("known_from", "uid"),
    [("filter", "someone-else"), ("watch", "someone-else"), ("filter", "")],
    ids=[
        "a pod seen in filter with another uid",
        "a pod from the watch with another uid",
        "a pod seen in filter, bound without its uid",
    ],
)
async def test_bind_with_a_mismatching_uid_is_refused_without_binding(
    client: TestClient,
    binder: FakeBinder,
    state: cluster.ClusterState,
    known_from: str,
    uid: str,
) -> None:
    pod = builders.make_pod("p", cpu="1", uid="the-real-uid")
    if known_from == "filter":
        await call(client, "/filter", builders.extender_args(pod, ["node1"]))
    else:
        state.upsert_pod(builders.pod("p", cpu="1", uid="the-real-uid"))
    reply = await call(client, "/bind", builders.binding_args(pod, "node1", uid=uid))
    assert set(reply) == {"Error"} and "default/p" in reply["Error"]
    assert binder.calls == []
    assert state.nodes["node1"].used == {}


@pytest.mark.parametrize(
    "node", ["node9", ""], ids=["an unknown node", "no node at all (a 400, not a bind)"]
)
async def test_bind_to_a_node_that_is_not_there(
    client: TestClient, binder: FakeBinder, node: str
) -> None:
    pod = builders.make_pod("p", cpu="1")
    await call(client, "/filter", builders.extender_args(pod, ["node1"]))
    if node:
        reply = await call(client, "/bind", builders.binding_args(pod, node))
        assert "'node9'" in reply["Error"]
    else:
        reply = await call(client, "/bind", builders.binding_args(pod, node), status=400)
        assert reply == {"Error": "bind: Node is missing"}
    assert binder.calls == []


async def test_a_failed_binding_answers_the_error_and_releases_the_node(
    client: TestClient, binder: FakeBinder, state: cluster.ClusterState
) -> None:
    binder.fail = RuntimeError('pods "p" is forbidden: quota exceeded')
    pod = builders.make_pod("p", cpu="3")
    await call(client, "/filter", builders.extender_args(pod, ["node1"]))
    reply = await call(client, "/bind", builders.binding_args(pod, "node1"))
    assert "quota exceeded" in reply["Error"] and "node1" in reply["Error"]
    assert len(binder.calls) == 1
    assert state.nodes["node1"].used == {}
    assert state.assumed == {}

    binder.fail = None
    assert await call(client, "/bind", builders.binding_args(pod, "node1")) == {"Error": ""}
    assert state.nodes["node1"].used == {"cpu": 3000, "pods": 1}


# -- preempt --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form", ["NodeNameToMetaVictims", "NodeNameToVictims"], ids=["meta victims", "full victims"]
)
async def test_preempt_answers_meta_victims_from_either_form(client: TestClient, form: str) -> None:
    victims = [builders.make_pod("v1", uid="u-1"), builders.make_pod("v2", uid="u-2")]
    if form == "NodeNameToMetaVictims":
        entry = {"Pods": [{"UID": "u-1"}, {"UID": "u-2"}], "NumPDBViolations": 1}
        body = {"Pod": builders.make_pod("p"), "NodeNameToVictims": None, form: {"node1": entry}}
    else:
        entry = {"Pods": victims, "NumPDBViolations": 1}
        body = {
            "Pod": builders.make_pod("p"),
            form: {"node1": entry},
            "NodeNameToMetaVictims": None,
        }
    reply = await call(client, "/preempt", body)
    assert reply == {
        "NodeNameToMetaVictims": {
            "node1": {"Pods": [{"UID": "u-1"}, {"UID": "u-2"}], "NumPDBViolations": 1}
        }
    }


# -- bad input ------------------------------------------------------------------------------

POD = builders.make_pod("p", cpu="1")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/filter", b"{not json", "filter: body is not valid JSON"),
        ("/filter", b"", "filter: body is not valid JSON"),
        ("/filter", b"[1, 2]", "filter: body must be a JSON object, got list"),
        ("/filter", {"Pod": POD, "NodeNames": 5}, "filter: NodeNames must be a list of strings"),
        ("/filter", {"Pod": POD, "NodeNames": [1]}, "filter: NodeNames must be a list of strings"),
        (
            "/filter",
            {"Pod": POD, "NodeNames": ["node1", ["node2"]]},
            "filter: NodeNames must be a list of strings",
        ),
        ("/filter", {"Pod": "x", "NodeNames": ["node1"]}, "filter: Pod must be an object, got str"),
        ("/filter", {"NodeNames": ["node1"]}, "filter: Pod is missing"),
        ("/filter", {"Pod": POD, "Nodes": [], "NodeNames": None}, "Nodes must be a NodeList"),
        (
            "/filter",
            {"Pod": POD, "Nodes": {"items": [{"metadata": {}}]}},
            r"Nodes.items[0]: node.metadata.name is missing",
        ),
        ("/filter", {"Pod": POD, "NodeNames": ["node1", "ghost"]}, "unknown node(s) 'ghost'"),
        (
            "/filter",
            builders.extender_args(builders.make_pod("p", cpu="lots"), ["node1"]),
            "pod.spec.containers[0].resources.requests: cpu: not a quantity: 'lots'",
        ),
        ("/prioritize", b"null", "prioritize: body must be a JSON object"),
        ("/prioritize", {"Pod": POD, "NodeNames": ["ghost"]}, "unknown node(s) 'ghost'"),
        (
            "/prioritize",
            {"Pod": POD, "NodeNames": ["node1", None]},
            "prioritize: NodeNames must be a list of strings",
        ),
        (
            "/prioritize",
            {"Pod": POD, "NodeNames": [{"name": "node1"}]},
            "prioritize: NodeNames must be a list of strings",
        ),
        ("/prioritize", {"Pod": 5}, "prioritize: Pod must be an object, got int"),
        ("/bind", b"\xff\xfe", "bind: body is not valid JSON"),
        ("/bind", {"PodName": 3, "Node": "node1"}, "bind: PodName must be a string"),
        ("/bind", {"PodUID": "u", "Node": "node1"}, "bind: PodName is missing"),
        ("/preempt", {"NodeNameToMetaVictims": {}}, "preempt: Pod is missing"),
        (
            "/preempt",
            {"Pod": POD, "NodeNameToMetaVictims": {"node1": {"Pods": [{}]}}},
            "preempt: victims of node1.Pods[0] has no UID",
        ),
        (
            "/preempt",
            {"Pod": POD, "NodeNameToMetaVictims": {"node1": {"NumPDBViolations": "1"}}},
            "NumPDBViolations must be an integer",
        ),
        ("/preempt", {"Pod": POD, "NodeNameToMetaVictims": []}, "must be an object"),
    ],
    ids=[
        "malformed JSON",
        "an empty body",
        "a JSON array",
        "NodeNames is a number",
        "NodeNames holds a number",
        "NodeNames holds a list",
        "Pod is a string",
        "Pod is missing",
        "Nodes is a list",
        "a node object without a name",
        "an unknown node name",
        "a bad quantity in the pod",
        "prioritize: null body",
        "prioritize: an unknown node name",
        "prioritize: NodeNames holds null",
        "prioritize: NodeNames holds an object",
        "prioritize: Pod is a number",
        "bind: not UTF-8",
        "bind: PodName is a number",
        "bind: PodName is missing",
        "preempt: Pod is missing",
        "preempt: a victim without a UID",
        "preempt: NumPDBViolations is a string",
        "preempt: the victims map is a list",
    ],
)
async def test_bad_input_is_a_400_naming_the_problem(
    client: TestClient, binder: FakeBinder, path: str, body: Any, message: str
) -> None:
    before = requests_total(path.strip("/"), "bad_request")
    reply = await call(client, path, body, status=400)
    assert set(reply) == {"Error"}
    assert message in reply["Error"]
    assert requests_total(path.strip("/"), "bad_request") == before + 1
    assert binder.calls == []
    # the server still answers
    ok = await call(client, "/filter", builders.extender_args(POD, ["node1"]))
    assert ok["NodeNames"] == ["node1"]


async def test_an_out_of_range_quantity_is_a_400(client: TestClient) -> None:
    pod = builders.make_pod("p", cpu="1e2147483648")
    reply = await call(client, "/filter", builders.extender_args(pod, ["node1"]), status=400)
    assert reply["Error"].startswith(
        "pod.spec.containers[0].resources.requests: cpu: exponent out of range"
    )


@pytest.mark.parametrize("path", ["/filter", "/prioritize", "/preempt"])
@pytest.mark.parametrize("quantity", ["-100", "-9e999999"])
async def test_a_negative_request_is_a_400_naming_the_field(
    client: TestClient, path: str, quantity: str
) -> None:
    """The API server refuses negative requests; prioritize scored cpu "-100" as 134."""
    pod = builders.make_pod("p", cpu=quantity)
    reply = await call(client, path, builders.extender_args(pod, ["node1"]), status=400)
    assert reply == {
        "Error": "pod.spec.containers[0].resources.requests: cpu: must not be negative, "
        f"got {quantity!r}"
    }


async def test_a_huge_but_valid_quantity_does_not_fit(client: TestClient) -> None:
    """Kubernetes accepts "1e999999" (the exponent fits 32 bits): no node has that much."""
    pod = builders.make_pod("p", cpu="1e999999")
    reply = await call(client, "/filter", builders.extender_args(pod, ["node1"]))
    assert reply["FailedNodes"] == {"node1": "Insufficient cpu"}


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("status", {"conditions": "Ready"}),
        ("status", {"conditions": [1, 2]}),
        ("metadata", {"ownerReferences": "job"}),
        ("metadata", {"ownerReferences": [None, 3]}),
    ],
    ids=[
        "conditions a string",
        "conditions of numbers",
        "owners a string",
        "owners of non-objects",
    ],
)
async def test_status_and_owner_references_of_the_wrong_type_are_a_400(
    client: TestClient, where: str, value: dict[str, Any]
) -> None:
    pod = builders.make_pod("p")
    pod.setdefault(where, {}).update(value)
    reply = await call(client, "/filter", builders.extender_args(pod, ["node1"]), status=400)
    assert reply["Error"].startswith(f"pod.{where}.{next(iter(value))}")


async def test_an_oversized_body_is_a_400_and_the_server_goes_on(
    aiohttp_client: Any, service: ExtenderService
) -> None:
    client = await aiohttp_client(make_app(service, max_body_bytes=4096))
    big = builders.extender_args(POD, ["node1"] * 2000)
    reply = await call(client, "/filter", big, status=400)
    assert set(reply) == {"Error"} and "too large" in reply["Error"]
    ok = await call(client, "/filter", builders.extender_args(POD, ["node1"]))
    assert ok["NodeNames"] == ["node1"]


async def test_an_unexpected_failure_is_a_500_with_one_line(
    client: TestClient, service: ExtenderService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("secret detail")

    monkeypatch.setattr(service, "filter", broken)
    reply = await call(client, "/filter", builders.extender_args(POD, ["node1"]), status=500)
    assert reply == {"Error": "filter: internal error (ZeroDivisionError)"}
    monkeypatch.undo()
    assert (await call(client, "/filter", builders.extender_args(POD, ["node1"])))["Error"] == ""


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/filter", builders.extender_args(POD, ["node1"])),
        ("/prioritize", builders.extender_args(POD, ["node1"])),
        ("/bind", builders.binding_args(POD, "node1")),
        ("/preempt", {"Pod": POD, "NodeNameToMetaVictims": {}}),
    ],
    ids=["filter", "prioritize", "bind", "preempt"],
)
async def test_every_verb_is_a_503_until_the_view_has_synced(
    client: TestClient, state: cluster.ClusterState, binder: FakeBinder, path: str, body: Any
) -> None:
    state.synced = False
    reply = await call(client, path, body, status=503)
    assert reply == {"Error": f"{path.strip('/')}: cluster view not synced yet"}
    assert binder.calls == []


# -- health and metrics ---------------------------------------------------------------------


async def test_healthz_is_always_ok(client: TestClient, state: cluster.ClusterState) -> None:
    state.synced = False
    response = await client.get("/healthz")
    assert response.status == 200 and await response.text() == "ok"


async def test_readyz_follows_the_sync(client: TestClient, state: cluster.ClusterState) -> None:
    state.synced = False
    assert (await client.get("/readyz")).status == 503
    state.synced = True
    response = await client.get("/readyz")
    assert response.status == 200 and await response.text() == "ok"


async def test_metrics_count_requests_by_verb_and_outcome(client: TestClient) -> None:
    before = requests_total("filter", "ok")
    await call(client, "/filter", builders.extender_args(POD, ["node1"]))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert 'muster_requests_total{outcome="ok",verb="filter"}' in text
    assert "muster_request_duration_seconds_bucket" in text
    assert requests_total("filter", "ok") == before + 1


async def test_unknown_verbs_are_404(client: TestClient) -> None:
    response = await client.post("/schedule", data=b"{}")
    assert response.status == 404
