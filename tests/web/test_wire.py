"""The extender/v1 wire format, checked through HTTP with the protocol's own JSON examples.

The ``protocol-*.json`` payloads are the verbatim strings of kube-scheduler's
``extender/v1/types_test.go`` (with the elided ``[…]`` filled in); ``scheduler-*.json`` are
requests as kube-scheduler sends them with ``nodeCacheCapable: true``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from extender.core import cluster, scoring
from extender.web import wire
from tests import builders

FILTER_RESULT_KEYS = set(builders.load_payload("protocol-extender-filter-result.json"))
HOST_PRIORITY_KEYS = set(builders.load_payload("protocol-host-priority.json"))
BINDING_RESULT_KEYS = set(builders.load_payload("protocol-extender-binding-result.json"))


async def post(client: TestClient, path: str, body: Any, *, status: int = 200) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    response = await client.post(path, data=data, headers={"Content-Type": "application/json"})
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return json.loads(await response.read())


def lower_cased(document: Any) -> str:
    """What TestCompatibility does: the whole JSON document in lower case."""
    return json.dumps(document).lower()


def lower_keys(document: dict[str, Any]) -> dict[str, Any]:
    """The request with its top-level (extender/v1) keys in lower case."""
    return {key.lower(): value for key, value in document.items()}


def camel_keys(document: dict[str, Any]) -> dict[str, Any]:
    """The request with camelCase top-level keys (``nodeNames``), as a JSON-tagged client
    would write them; Go's case-insensitive decoder reads them too."""
    return {key[0].lower() + key[1:]: value for key, value in document.items()}


# -- filter ---------------------------------------------------------------------------------


async def test_the_protocol_extender_args_example(client: TestClient) -> None:
    reply = await post(client, "/filter", builders.load_payload("protocol-extender-args.json"))
    assert set(reply) == FILTER_RESULT_KEYS
    assert reply == {
        "Nodes": None,
        "NodeNames": ["node1"],
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": "",
    }


async def test_a_filter_request_as_the_scheduler_sends_it(client: TestClient) -> None:
    reply = await post(client, "/filter", builders.load_payload("scheduler-filter-node-names.json"))
    assert set(reply) == FILTER_RESULT_KEYS
    assert reply["NodeNames"] == ["node1", "node2", "node3"]
    assert reply["Nodes"] is None and reply["Error"] == ""


@pytest.mark.parametrize(
    ("payload", "fold"),
    [
        ("protocol-extender-args.json", lower_keys),
        ("protocol-extender-args.json", lower_cased),
        ("scheduler-filter-node-names.json", lower_keys),
        ("scheduler-filter-node-names.json", camel_keys),
    ],
    ids=[
        "the protocol example with lower-case top-level keys",
        "the protocol example lower-cased entirely (TestCompatibility)",
        "a scheduler request with lower-case top-level keys",
        "a scheduler request with camelCase top-level keys",
    ],
)
async def test_lower_cased_filter_requests_are_read_alike(
    client: TestClient, payload: str, fold: Any
) -> None:
    document = builders.load_payload(payload)
    expected = await post(client, "/filter", document)
    assert await post(client, "/filter", fold(document)) == expected


async def test_null_nodes_and_node_names_mean_no_nodes(client: TestClient) -> None:
    body = {"Pod": builders.make_pod("p", cpu="1"), "Nodes": None, "NodeNames": None}
    reply = await post(client, "/filter", body)
    assert set(reply) == FILTER_RESULT_KEYS
    assert reply["NodeNames"] == [] and reply["Nodes"] is None
    assert reply["FailedNodes"] == {} and reply["FailedAndUnresolvableNodes"] == {}


async def test_node_objects_mode_answers_with_node_objects(
    client: TestClient, state: cluster.ClusterState
) -> None:
    """nodeCacheCapable: false - full Nodes in, Nodes.items out, NodeNames null."""
    state.upsert_pod(builders.pod("busy", cpu="3", node_name="node1"))
    nodes = [
        builders.make_node("node1"),
        builders.make_node("unknown-to-the-view", labels={"zone": "a"}),
        builders.make_node("tainted", taints=[builders.taint("dedicated", "db")]),
        builders.make_node("small", cpu="1"),
    ]
    body = builders.extender_args_full(builders.make_pod("p", cpu="2"), nodes)
    reply = await post(client, "/filter", body)
    assert set(reply) == FILTER_RESULT_KEYS
    assert reply["NodeNames"] is None
    assert reply["Nodes"] == {"metadata": {}, "items": [nodes[1]]}
    assert reply["FailedNodes"] == {"node1": "Insufficient cpu", "small": "Insufficient cpu"}
    assert reply["FailedAndUnresolvableNodes"] == {
        "tainted": "node(s) had taint {dedicated: db}, that the pod didn't tolerate"
    }


async def test_node_objects_mode_with_null_items(client: TestClient) -> None:
    body = {"Pod": builders.make_pod("p"), "Nodes": {"metadata": {}, "items": None}}
    reply = await post(client, "/filter", body)
    assert reply["Nodes"] == {"metadata": {}, "items": []} and reply["NodeNames"] is None


# -- prioritize -----------------------------------------------------------------------------


async def test_prioritize_answers_a_bare_array_of_host_priorities(client: TestClient) -> None:
    document = builders.load_payload("scheduler-filter-node-names.json")
    reply = await post(client, "/prioritize", document)
    assert isinstance(reply, list) and len(reply) == 3
    for entry in reply:
        assert set(entry) == HOST_PRIORITY_KEYS
        assert type(entry["Score"]) is int and 0 <= entry["Score"] <= 10
    assert [entry["Host"] for entry in reply] == ["node1", "node2", "node3"]
    assert await post(client, "/prioritize", lower_keys(document)) == reply


async def test_prioritize_scores_are_json_integers(client: TestClient) -> None:
    body = builders.extender_args(builders.make_pod("p", cpu="1"), ["node1", "node2"])
    response = await client.post("/prioritize", json=body)

    def no_floats(text: str) -> None:
        pytest.fail(f"a float {text} in the prioritize reply; the scheduler cannot decode it")

    reply = json.loads(await response.text(), parse_float=no_floats)
    assert [type(entry["Score"]) for entry in reply] == [int, int]


async def test_prioritize_in_node_objects_mode(client: TestClient) -> None:
    nodes = [
        builders.make_node("big", cpu="64", memory="256Gi"),
        builders.make_node("tiny", cpu="2"),
    ]
    body = builders.extender_args_full(builders.make_pod("p", cpu="1", memory="1Gi"), nodes)
    reply = await post(client, "/prioritize", body)
    scores = {entry["Host"]: entry["Score"] for entry in reply}
    assert scores.keys() == {"big", "tiny"}
    assert scores["big"] > scores["tiny"]


@pytest.mark.parametrize(
    "hosts",
    [
        ["node-1", "node-2.zone-a", "n3"],
        ["nøde-ü", "節点"],  # not ASCII: orjson writes them
        ['quo"te', "ok"],  # needs escaping: orjson writes it
        ["back\\slash"],
        [],
    ],
)
@pytest.mark.parametrize("values", ["all", "ends"])
def test_host_priorities_is_the_json_of_one_object_per_host(hosts: list[str], values: str) -> None:
    scores = [i % 11 for i in range(len(hosts))] if values == "all" else [0] * len(hosts)
    if values == "ends" and hosts:
        scores[-1] = 10
    body = wire.host_priorities(scoring.Scores(hosts, scores))
    assert json.loads(body) == [{"Host": h, "Score": s} for h, s in zip(hosts, scores, strict=True)]


def test_host_priorities_never_writes_a_score_outside_0_to_10_as_another() -> None:
    """A negative score must not pick a separator from the end of the table."""
    body = wire.host_priorities(scoring.Scores(["a", "b"], [-1, 11]))
    assert json.loads(body) == [{"Host": "a", "Score": -1}, {"Host": "b", "Score": 11}]


# -- bind -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fold", [None, lower_cased], ids=["as sent", "lower-cased"])
async def test_the_protocol_binding_example_is_answered_with_a_binding_result(
    client: TestClient, fold: Any
) -> None:
    document = builders.load_payload("protocol-extender-binding-args.json")
    reply = await post(client, "/bind", fold(document) if fold else document)
    assert set(reply) == BINDING_RESULT_KEYS
    assert "mypodnamespace/mypodname" in reply["Error"]


async def test_a_successful_bind_answers_an_empty_error(client: TestClient) -> None:
    pod = builders.make_pod("p", cpu="1")
    await post(client, "/filter", builders.extender_args(pod, ["node1"]))
    reply = await post(client, "/bind", lower_keys(builders.binding_args(pod, "node1")))
    assert reply == {"Error": ""}


# -- preempt --------------------------------------------------------------------------------


async def test_the_protocol_preemption_example(client: TestClient) -> None:
    document = builders.load_payload("protocol-extender-preemption-args.json")
    expected = builders.load_payload("protocol-extender-preemption-result.json")
    assert await post(client, "/preempt", document) == expected
    assert await post(client, "/preempt", lower_cased(document)) == expected


async def test_preemption_from_full_victims_answers_meta_victims(client: TestClient) -> None:
    document = builders.load_payload("protocol-extender-preemption-args.json")
    document["NodeNameToMetaVictims"] = None
    expected = builders.load_payload("protocol-extender-preemption-result.json")
    assert await post(client, "/preempt", document) == expected


async def test_a_scheduler_preemption_request(client: TestClient) -> None:
    reply = await post(
        client, "/preempt", builders.load_payload("scheduler-preempt-meta-victims.json")
    )
    assert reply == {
        "NodeNameToMetaVictims": {
            "node1": {"Pods": [{"UID": "victim-a"}, {"UID": "victim-b"}], "NumPDBViolations": 0},
            "node2": {"Pods": [{"UID": "victim-c"}], "NumPDBViolations": 2},
        }
    }


async def test_preemption_without_candidates(client: TestClient) -> None:
    body = {"Pod": builders.make_pod("p"), "NodeNameToVictims": None, "NodeNameToMetaVictims": None}
    assert await post(client, "/preempt", body) == {"NodeNameToMetaVictims": {}}


# -- input that decodes but cannot be encoded again -------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


@pytest.mark.parametrize("path", ["/filter", "/prioritize"])
async def test_a_pod_spec_nested_too_deeply_to_encode_is_a_400(
    client: TestClient, path: str
) -> None:
    """The spec is encoded again as the conversion cache's key; orjson encodes 254 levels."""
    pod = builders.make_pod("p")
    pod["spec"]["extra"] = nested(300)
    reply = await post(client, path, builders.extender_args(pod, ["node1"]), status=400)
    assert reply == {"Error": f"{path[1:]}: Pod.spec is nested too deeply (more than 254 levels)"}
    pod["spec"]["extra"] = nested(200)
    await post(client, path, builders.extender_args(pod, ["node1"]))


async def test_a_node_object_nested_too_deeply_to_send_back_is_a_400(client: TestClient) -> None:
    """Full Node objects are sent back as they came, so each must encode inside the reply."""
    deep = builders.make_node("deep")
    deep["status"]["extra"] = nested(251)  # fine alone, too deep inside the reply
    body = builders.extender_args_full(builders.make_pod("p"), [builders.make_node("n1"), deep])
    reply = await post(client, "/filter", body, status=400)
    assert reply == {"Error": "filter: Nodes.items[1] is nested too deeply (more than 254 levels)"}


@pytest.mark.parametrize("violations", [-1, 2**63])
async def test_num_pdb_violations_must_be_an_int64_count(
    client: TestClient, violations: int
) -> None:
    document = builders.load_payload("scheduler-preempt-meta-victims.json")
    document["NodeNameToMetaVictims"]["node1"]["NumPDBViolations"] = violations
    reply = await post(client, "/preempt", document, status=400)
    assert "victims of node1.NumPDBViolations must be a count" in reply["Error"]


def test_a_huge_spec_is_not_kept_as_a_cache_key() -> None:
    """The service keeps the last 256 spec keys: a key as large as the body could hold
    gigabytes.  A spec over the cap is converted every time instead."""
    pod = builders.make_pod("p")
    args = wire.read_extender_args(json.dumps(builders.extender_args(pod, [])).encode(), "f")
    assert 0 < len(args.pod_spec_key) <= wire.MAX_SPEC_KEY
    pod["spec"]["containers"][0]["env"] = [{"name": "X", "value": "x" * wire.MAX_SPEC_KEY}]
    args = wire.read_extender_args(json.dumps(builders.extender_args(pod, [])).encode(), "f")
    assert args.pod_spec_key == b""


async def test_a_pod_with_a_huge_spec_is_still_answered(client: TestClient) -> None:
    pod = builders.make_pod("p", cpu="1")
    pod["spec"]["containers"][0]["env"] = [{"name": "X", "value": "x" * wire.MAX_SPEC_KEY}]
    for _ in range(2):
        reply = await post(client, "/filter", builders.extender_args(pod, ["node1"]))
        assert reply["NodeNames"] == ["node1"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/filter", {"Pod": {"metadata": {"name": "p"}}, "NodeNames": ["node1"] * 4}, "NodeNames"),
        (
            "/prioritize",
            builders.extender_args_full(
                builders.make_pod("p"), [builders.make_node(f"n{i}") for i in range(4)]
            ),
            "Nodes.items",
        ),
        (
            "/preempt",
            {
                "Pod": {"metadata": {"name": "p"}},
                "NodeNameToMetaVictims": {
                    f"n{i}": {"Pods": [{"UID": "u"}], "NumPDBViolations": 0} for i in range(4)
                },
            },
            "NodeNameToMetaVictims",
        ),
    ],
)
async def test_a_message_naming_more_nodes_than_any_cluster_has_is_a_400(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, path: str, body: Any, field: str
) -> None:
    """The work a message asks for grows with the nodes it names: 2.5 million names fit in
    the body limit and cost seconds.  (The cap is lowered to 3 here.)"""
    monkeypatch.setattr(wire, "MAX_NODES", 3)
    reply = await post(client, path, body, status=400)
    assert reply["Error"] == (
        f"{path[1:]}: {field} has 4 entries, more than 3 (no cluster has that many nodes)"
    )
