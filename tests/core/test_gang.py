"""Gang membership, minCount policy and whole-gang planning."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.core import cluster, gang, model, objects
from tests import builders

RACK = "muster.dev/rack"
ZONE = "topology.kubernetes.io/zone"


@pytest.mark.parametrize(
    ("kwargs", "expected", "source"),
    [
        pytest.param(
            {"labels": {gang.WORKLOAD_LABEL: "train", gang.POD_GROUP_LABEL: "workers"}},
            gang.GroupKey("ns", "train", "workers"),
            "labels",
            id="muster labels",
        ),
        pytest.param(
            {"labels": {gang.WORKLOAD_LABEL: "train"}},
            gang.GroupKey("ns", "train", "main"),
            "labels",
            id="pod group defaults to main",
        ),
        pytest.param(
            {"labels": {gang.WORKLOAD_LABEL: "t", gang.REPLICA_KEY_LABEL: "r1"}},
            gang.GroupKey("ns", "t", "main", "r1"),
            "labels",
            id="replica key is part of the key",
        ),
        pytest.param(
            {"labels": {gang.COSCHEDULING_LABEL: "pg"}},
            gang.GroupKey("ns", "pg", "main"),
            "coscheduling",
            id="coscheduling label",
        ),
        pytest.param(
            {"labels": {gang.KUEUE_GROUP_LABEL: "kg"}},
            gang.GroupKey("ns", "kg", "main"),
            "kueue",
            id="kueue pod group",
        ),
        pytest.param(
            {"annotations": {gang.VOLCANO_ANNOTATION: "vg"}},
            gang.GroupKey("ns", "vg", "main"),
            "volcano",
            id="volcano annotation",
        ),
        pytest.param(
            {"labels": {gang.WORKLOAD_LABEL: "first", gang.COSCHEDULING_LABEL: "second"}},
            gang.GroupKey("ns", "first", "main"),
            "labels",
            id="first match wins",
        ),
    ],
)
def test_membership_from_labels_and_annotations(kwargs, expected, source):
    member = gang.membership(builders.pod("p", namespace="ns", **kwargs))
    assert member == gang.Membership(expected, source)


def test_workload_ref_wins_over_labels():
    raw = builders.make_pod("p", namespace="ns", labels={gang.WORKLOAD_LABEL: "other"})
    raw["spec"]["workloadRef"] = {"name": "job", "podGroup": "g1", "podGroupReplicaKey": "k2"}
    member = gang.membership(objects.to_pod(raw))
    assert member == gang.Membership(gang.GroupKey("ns", "job", "g1", "k2"), "workloadRef")


def test_scheduling_group_of_kubernetes_1_36():
    raw = builders.make_pod("p", namespace="ns")
    raw["spec"]["schedulingGroup"] = {"podGroupName": "pg"}
    member = gang.membership(objects.to_pod(raw))
    assert member is not None and member.key == gang.GroupKey("ns", "", "pg")


def test_plain_pod_is_no_member():
    assert gang.membership(builders.pod("p")) is None


def _policy(pod: model.Pod, workloads=None) -> gang.Policy:
    member = gang.membership(pod)
    assert member is not None
    return gang.policy(member, pod, workloads=workloads or {}, default_timeout=300)


def test_min_count_from_the_workload_object_beats_the_annotation():
    pod = builders.pod(
        "p",
        namespace="ns",
        labels={gang.WORKLOAD_LABEL: "w"},
        annotations={gang.MIN_COUNT_ANNOTATION: "2"},
    )
    workload = gang.Workload("ns", "w", {"main": gang.PodGroupPolicy(gang=True, min_count=8)})
    assert _policy(pod, {("ns", "w"): workload}).min_count == 8


def test_basic_policy_is_not_a_gang():
    pod = builders.pod("p", namespace="ns", labels={gang.WORKLOAD_LABEL: "w"})
    workload = gang.Workload("ns", "w", {"main": gang.PodGroupPolicy(gang=False)})
    assert not _policy(pod, {("ns", "w"): workload}).is_gang


def test_missing_pod_group_in_workload_says_so():
    pod = builders.pod(
        "p", namespace="ns", labels={gang.WORKLOAD_LABEL: "w", gang.POD_GROUP_LABEL: "x"}
    )
    workload = gang.Workload("ns", "w", {"main": gang.PodGroupPolicy(gang=True, min_count=2)})
    assert _policy(pod, {("ns", "w"): workload}).missing == "pod group 'x' not in Workload ns/w"


def test_missing_workload_without_annotation_says_so():
    pod = builders.pod("p", namespace="ns", labels={gang.WORKLOAD_LABEL: "w"})
    assert "Workload ns/w not found" in _policy(pod).missing


def test_kueue_total_count_and_timeout_annotation():
    pod = builders.pod(
        "p",
        labels={gang.KUEUE_GROUP_LABEL: "g"},
        annotations={gang.KUEUE_TOTAL_ANNOTATION: "4", gang.TIMEOUT_ANNOTATION: "30"},
    )
    assert _policy(pod) == gang.Policy(min_count=4, timeout_seconds=30.0)


def test_to_workload_reads_the_upstream_schema():
    raw = {
        "metadata": {"name": "w", "namespace": "ns"},
        "spec": {
            "podGroups": [
                {"name": "a", "policy": {"gang": {"minCount": 3}}},
                {"name": "b", "policy": {"basic": {}}},
            ]
        },
    }
    workload = objects.to_workload(raw)
    assert workload.pod_groups == {
        "a": gang.PodGroupPolicy(True, 3),
        "b": gang.PodGroupPolicy(False),
    }


def test_to_workload_rejects_a_zero_min_count():
    raw = {
        "metadata": {"name": "w"},
        "spec": {"podGroups": [{"name": "a", "policy": {"gang": {"minCount": 0}}}]},
    }
    with pytest.raises(objects.ObjectError, match="minCount must be positive"):
        objects.to_workload(raw)


# -- planning -------------------------------------------------------------------------------


def _cluster(racks: dict[str, int], *, cpu: str = "4", zone_of=lambda r: "z1"):
    state = cluster.ClusterState()
    for rack, count in racks.items():
        for i in range(count):
            state.upsert_node(
                builders.node(f"{rack}-n{i}", cpu=cpu, labels={RACK: rack, ZONE: zone_of(rack)})
            )
    return state


def _members(count: int, cpu: str = "1") -> list[model.Pod]:
    return [builders.pod(f"m{i}", cpu=cpu, uid=f"m{i}") for i in range(count)]


def test_plan_places_every_member_within_one_rack_when_possible():
    state = _cluster({"r1": 1, "r2": 3})  # r1 holds 4 cpu, r2 12
    result = gang.plan(_members(6, "2"), state, topology_keys=[RACK])
    assert isinstance(result, gang.Placement)
    assert result.domain == f"{RACK}=r2"
    assert {n.split("-")[0] for n in result.nodes.values()} == {"r2"}
    assert len(result.nodes) == 6


def test_plan_falls_back_to_a_wider_level_then_the_cluster():
    state = _cluster({"r1": 2, "r2": 2}, zone_of=lambda r: "z-" + r)  # every domain 8 cpu
    result = gang.plan(_members(12, "1"), state, topology_keys=[RACK, ZONE])
    assert isinstance(result, gang.Placement) and result.domain == "cluster"


def test_plan_counts_fragmentation_node_by_node():
    # 3 nodes with 1.5 cpu free each = 4.5 cpu in total, but no node holds a 2-cpu member.
    state = _cluster({"r1": 3})
    for name in state.nodes:
        state.claim(f"other-{name}", name, {"cpu": 2500})
    result = gang.plan(_members(2, "2"), state, topology_keys=[RACK])
    assert result == gang.Unplaceable("gang needs 2 x {cpu: 2}; best domain fits 0")


def test_unplaceable_reason_reports_the_best_domain():
    state = _cluster({"r1": 1, "r2": 2})
    result = gang.plan(_members(13, "1"), state, topology_keys=[RACK])
    assert result == gang.Unplaceable("gang needs 13 x {cpu: 1}; best domain fits 12")


def test_plan_respects_each_members_own_checks():
    state = _cluster({"r1": 2})
    state.upsert_node(builders.node("gpu", cpu="4", labels={RACK: "r1", "gpu": "yes"}))
    members = [
        builders.pod(f"m{i}", cpu="1", uid=f"m{i}", node_selector={"gpu": "yes"}) for i in range(3)
    ]
    result = gang.plan(members, state, topology_keys=[RACK])
    assert isinstance(result, gang.Placement)
    assert set(result.nodes.values()) == {"gpu"}


def test_a_thousand_identical_members_fill_nodes_in_order():
    state = _cluster({"r1": 250})  # 1000 cpu
    result = gang.plan(_members(1000, "1"), state, topology_keys=[RACK])
    assert isinstance(result, gang.Placement)
    per_node: dict[str, int] = {}
    for node in result.nodes.values():
        per_node[node] = per_node.get(node, 0) + 1
    assert set(per_node.values()) == {4}


def test_a_large_gang_skips_every_rack_too_small_and_lands_in_a_zone():
    # 1000 x 100m = 100 cpu; racks hold 80, the zone 160: no rack is tried member by member.
    state = _cluster({f"r{i}": 20 for i in range(2)})
    members = _members(1000, "100m")
    result = gang.plan(members, state, topology_keys=[RACK, ZONE])
    assert isinstance(result, gang.Placement) and result.domain == f"{ZONE}=z1"
    assert len(result.nodes) == 1000


@pytest.mark.parametrize(
    ("need", "free", "expected"),
    [
        pytest.param({"cpu": 4000, "pods": 4}, {"cpu": 4000, "pods": 110}, True, id="exactly"),
        pytest.param({"cpu": 4001}, {"cpu": 4000, "pods": 110}, False, id="one millicore short"),
        pytest.param({"nvidia.com/gpu": 1}, {"cpu": 4000}, False, id="resource the domain lacks"),
        pytest.param({"cpu": 0, "example.com/x": 0}, {}, True, id="zero requests need nothing"),
        pytest.param(None, {}, True, id="a negative request proves nothing"),
    ],
)
def test_could_hold_compares_the_total_with_the_summed_free_capacity(need, free, expected):
    assert gang.could_hold(need, free) is expected


def test_total_need_sums_requests_and_gives_up_on_negative_amounts():
    pods = _members(3, "500m")
    assert gang.total_need(pods) == {"cpu": 1500, "pods": 3}
    odd = dataclasses.replace(pods[0], requests={"cpu": -1})
    assert gang.total_need([*pods, odd]) is None


# -- pruning never changes a plan (property) --------------------------------------------------


def unpruned_plan(
    members: list[model.Pod], state: cluster.ClusterState, keys: list[str]
) -> gang.Placement | gang.Unplaceable:
    """The planner without the index or pruning: regroup all nodes per level, try every
    domain in name order, then the whole cluster."""
    ordered = sorted(members, key=lambda p: (-p.requests.get("cpu", 0), p.uid))
    shaped = [(p, gang._shape(p)) for p in ordered]
    nodes = list(state.nodes.values())
    for key in keys:
        groups: dict[str, list[cluster.NodeState]] = {}
        for node_state in nodes:
            value = node_state.node.labels.get(key)
            if value is not None:
                groups.setdefault(value, []).append(node_state)
        for value in sorted(groups):
            placed = gang._fit(shaped, groups[value])
            if len(placed) == len(ordered):
                return gang.Placement(placed, f"{key}={value}")
    placed = gang._fit(shaped, nodes)
    if len(placed) == len(ordered):
        return gang.Placement(placed, "cluster")
    return gang.Unplaceable("")


plan_nodes = st.lists(
    st.tuples(
        st.sampled_from(["1", "2", "4"]),
        st.sampled_from(["2Gi", "8Gi"]),
        st.sampled_from([None, "r0", "r1", "r2"]),
        st.sampled_from([None, "z0", "z1"]),
        st.booleans(),  # labelled gpu=yes
    ),
    min_size=1,
    max_size=12,
)
plan_members = st.lists(
    st.tuples(
        st.sampled_from(["100m", "500m", "1", "2", "3"]),
        st.sampled_from(["128Mi", "1Gi", "4Gi"]),
        st.booleans(),  # selects gpu=yes
    ),
    min_size=1,
    max_size=10,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan_nodes,
    st.lists(st.tuples(st.integers(0, 11), st.sampled_from([500, 1500, 3000])), max_size=8),
    st.lists(plan_members, min_size=1, max_size=4),
    st.sampled_from([[], [RACK], [ZONE], [RACK, ZONE]]),
)
def test_pruning_never_changes_a_plan(nodes, claims, gangs, keys):
    state = cluster.ClusterState()
    for i, (cpu, memory, rack, zone, gpu) in enumerate(nodes):
        labels = {k: v for k, v in ((RACK, rack), (ZONE, zone), ("gpu", gpu and "yes")) if v}
        state.upsert_node(builders.node(f"n{i}", cpu=cpu, memory=memory, labels=labels))
    for i, (index, cpu) in enumerate(claims):
        state.claim(f"other-{i}", f"n{index % len(nodes)}", {"cpu": cpu})
    for g, shapes in enumerate(gangs):
        members = [
            builders.pod(
                f"g{g}m{i}",
                uid=f"g{g}m{i}",
                cpu=cpu,
                memory=memory,
                node_selector={"gpu": "yes"} if gpu else None,
            )
            for i, (cpu, memory, gpu) in enumerate(shapes)
        ]
        expected = unpruned_plan(members, state, keys)
        result = gang.plan(members, state, topology_keys=keys)
        if isinstance(expected, gang.Placement):
            assert result == expected
            for pod in members:  # reserve it, as the coordinator does, so the next gang sees it
                state.claim(f"gang/{pod.uid}", result.nodes[pod.uid], pod.requests)
        else:
            assert isinstance(result, gang.Unplaceable)
