"""Gang membership, minCount policy and whole-gang planning."""

from __future__ import annotations

import pytest

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
    result = gang.plan(_members(6, "2"), list(state.nodes.values()), topology_keys=[RACK])
    assert isinstance(result, gang.Placement)
    assert result.domain == f"{RACK}=r2"
    assert {n.split("-")[0] for n in result.nodes.values()} == {"r2"}
    assert len(result.nodes) == 6


def test_plan_falls_back_to_a_wider_level_then_the_cluster():
    state = _cluster({"r1": 2, "r2": 2}, zone_of=lambda r: "z-" + r)  # every domain 8 cpu
    result = gang.plan(_members(12, "1"), list(state.nodes.values()), topology_keys=[RACK, ZONE])
    assert isinstance(result, gang.Placement) and result.domain == "cluster"


def test_plan_counts_fragmentation_node_by_node():
    # 3 nodes with 1.5 cpu free each = 4.5 cpu in total, but no node holds a 2-cpu member.
    state = _cluster({"r1": 3})
    for name in state.nodes:
        state.claim(f"other-{name}", name, {"cpu": 2500})
    result = gang.plan(_members(2, "2"), list(state.nodes.values()), topology_keys=[RACK])
    assert result == gang.Unplaceable("gang needs 2 x {cpu: 2}; best domain fits 0")


def test_unplaceable_reason_reports_the_best_domain():
    state = _cluster({"r1": 1, "r2": 2})
    result = gang.plan(_members(13, "1"), list(state.nodes.values()), topology_keys=[RACK])
    assert result == gang.Unplaceable("gang needs 13 x {cpu: 1}; best domain fits 12")


def test_plan_respects_each_members_own_checks():
    state = _cluster({"r1": 2})
    state.upsert_node(builders.node("gpu", cpu="4", labels={RACK: "r1", "gpu": "yes"}))
    members = [
        builders.pod(f"m{i}", cpu="1", uid=f"m{i}", node_selector={"gpu": "yes"}) for i in range(3)
    ]
    result = gang.plan(members, list(state.nodes.values()), topology_keys=[RACK])
    assert isinstance(result, gang.Placement)
    assert set(result.nodes.values()) == {"gpu"}


def test_a_thousand_identical_members_fill_nodes_in_order():
    state = _cluster({"r1": 250})  # 1000 cpu
    result = gang.plan(_members(1000, "1"), list(state.nodes.values()), topology_keys=[RACK])
    assert isinstance(result, gang.Placement)
    per_node: dict[str, int] = {}
    for node in result.nodes.values():
        per_node[node] = per_node.get(node, 0) + 1
    assert set(per_node.values()) == {4}
