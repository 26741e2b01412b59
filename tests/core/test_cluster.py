"""The cluster view: claims, per-node usage and generations, assumed pods and relists, the
topology index and the bound-pod notifications."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.core import cluster
from tests import builders

GI = 2**30


@pytest.fixture
def view() -> cluster.ClusterState:
    state = cluster.ClusterState()
    state.replace_nodes([builders.node("n1"), builders.node("n2")])
    return state


def generation(view: cluster.ClusterState, name: str) -> int:
    return view.nodes[name].generation


def used(view: cluster.ClusterState, name: str) -> dict[str, int]:
    return dict(view.nodes[name].used)


# -- generations ----------------------------------------------------------------------------


def test_every_node_starts_with_its_own_generation(view: cluster.ClusterState) -> None:
    assert generation(view, "n1") != generation(view, "n2")


def test_an_unchanged_upsert_keeps_the_generation(view: cluster.ClusterState) -> None:
    before = generation(view, "n1")
    view.upsert_node(builders.node("n1"))
    assert generation(view, "n1") == before


def test_a_changed_node_gets_a_new_generation(view: cluster.ClusterState) -> None:
    before = generation(view, "n1")
    view.upsert_node(builders.node("n1", labels={"zone": "a"}))
    assert generation(view, "n1") > before
    assert view.nodes["n1"].node.labels["zone"] == "a"


def test_claims_and_releases_bump_only_their_node(view: cluster.ClusterState) -> None:
    g1, g2 = generation(view, "n1"), generation(view, "n2")
    view.claim("k", "n1", {"cpu": 500})
    assert generation(view, "n1") > g1 and generation(view, "n2") == g2
    after_claim = generation(view, "n1")
    view.claim("k", "n1", {"cpu": 500})
    assert generation(view, "n1") == after_claim, "the same claim again changes nothing"
    view.release("k")
    assert generation(view, "n1") > after_claim
    after_release = generation(view, "n1")
    view.release("k")
    assert generation(view, "n1") == after_release, "releasing nothing changes nothing"


def test_moving_a_claim_bumps_both_nodes(view: cluster.ClusterState) -> None:
    view.claim("k", "n1", {"cpu": 500})
    g1, g2 = generation(view, "n1"), generation(view, "n2")
    view.claim("k", "n2", {"cpu": 500})
    assert generation(view, "n1") > g1 and generation(view, "n2") > g2
    assert used(view, "n1") == {} and used(view, "n2") == {"cpu": 500}
    assert view.claim_of("k") == "n2"


def test_resizing_a_claim_on_the_same_node(view: cluster.ClusterState) -> None:
    view.claim("k", "n1", {"cpu": 500})
    before = generation(view, "n1")
    view.claim("k", "n1", {"cpu": 700})
    assert used(view, "n1") == {"cpu": 700}
    assert generation(view, "n1") > before


# -- pods -----------------------------------------------------------------------------------


def test_a_bound_pod_uses_its_node(view: cluster.ClusterState) -> None:
    before = generation(view, "n1")
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", memory="1Gi", node_name="n1"))
    assert used(view, "n1") == {"cpu": 1000, "memory": GI, "pods": 1}
    assert generation(view, "n1") > before
    assert view.pods["a"].name == "a" and view.pods_by_key["default/a"].uid == "a"
    assert view.bound_node("a") == "n1"


def test_a_pending_pod_uses_nothing(view: cluster.ClusterState) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1"))
    assert used(view, "n1") == {} and used(view, "n2") == {}
    assert view.bound_node("a") == ""


def test_the_same_pod_again_does_not_bump(view: cluster.ClusterState) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1"))
    before = generation(view, "n1")
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1", labels={"x": "y"}))
    assert generation(view, "n1") == before
    assert used(view, "n1") == {"cpu": 1000, "pods": 1}


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"], ids=["succeeded", "failed"])
def test_a_terminated_pod_releases_its_node(view: cluster.ClusterState, phase: str) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1"))
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1", phase=phase))
    assert used(view, "n1") == {}
    assert "a" in view.pods, "the pod object is still known"


def test_a_terminating_pod_still_holds_its_node(view: cluster.ClusterState) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1", deleting=True))
    assert used(view, "n1") == {"cpu": 1000, "pods": 1}


def test_deleting_a_pod_releases_its_node(view: cluster.ClusterState) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1"))
    before = generation(view, "n1")
    view.delete_pod("a")
    assert used(view, "n1") == {} and generation(view, "n1") > before
    assert "a" not in view.pods and "default/a" not in view.pods_by_key
    view.delete_pod("a")  # deleting twice is harmless


def test_pods_add_up_and_release_separately(view: cluster.ClusterState) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1"))
    view.upsert_pod(builders.pod("b", uid="b", cpu="2", node_name="n1"))
    assert used(view, "n1") == {"cpu": 3000, "pods": 2}
    view.delete_pod("a")
    assert used(view, "n1") == {"cpu": 2000, "pods": 1}


# -- assumed pods ---------------------------------------------------------------------------


def test_assume_accounts_at_once_and_forget_undoes_it(view: cluster.ClusterState) -> None:
    pod = builders.pod("a", uid="a", cpu="1")
    g = generation(view, "n2")
    view.assume(pod, "n2")
    assert used(view, "n2") == {"cpu": 1000, "pods": 1} and generation(view, "n2") > g
    assert view.bound_node("a") == "n2"
    view.forget("a")
    assert used(view, "n2") == {} and view.bound_node("a") == ""


def test_forget_does_not_release_a_pod_the_watch_shows_bound(view: cluster.ClusterState) -> None:
    pod = builders.pod("a", uid="a", cpu="1")
    view.assume(pod, "n1")
    view.upsert_pod(dataclasses.replace(pod, node_name="n1"))
    assert view.assumed == {}
    view.forget("a")
    assert used(view, "n1") == {"cpu": 1000, "pods": 1}


def test_an_assumed_pod_survives_a_pending_watch_update(view: cluster.ClusterState) -> None:
    pod = builders.pod("a", uid="a", cpu="1")
    view.assume(pod, "n1")
    view.upsert_pod(pod)  # the watch still shows it pending
    assert used(view, "n1") == {"cpu": 1000, "pods": 1}
    assert view.bound_node("a") == "n1"


def test_an_assumed_pod_that_terminates_is_released(view: cluster.ClusterState) -> None:
    pod = builders.pod("a", uid="a", cpu="1")
    view.assume(pod, "n1")
    view.upsert_pod(dataclasses.replace(pod, phase="Failed"))
    assert used(view, "n1") == {} and view.assumed == {}


@pytest.mark.parametrize(
    "relisted",
    ["pending", "absent"],
    ids=["the relist still shows it pending", "the relist does not show it yet"],
)
def test_an_assumed_pod_is_kept_across_a_relist(view: cluster.ClusterState, relisted: str) -> None:
    other = builders.pod("b", uid="b", cpu="1", node_name="n2")
    view.upsert_pod(other)
    pod = builders.pod("a", uid="a", cpu="1")
    view.upsert_pod(pod)
    view.assume(pod, "n1")
    view.replace_pods([pod, other] if relisted == "pending" else [other])
    assert used(view, "n1") == {"cpu": 1000, "pods": 1}
    assert view.bound_node("a") == "n1"


def test_a_relist_showing_the_assumed_pod_bound_confirms_it(view: cluster.ClusterState) -> None:
    pod = builders.pod("a", uid="a", cpu="1")
    view.assume(pod, "n1")
    view.replace_pods([dataclasses.replace(pod, node_name="n1")])
    assert view.assumed == {} and used(view, "n1") == {"cpu": 1000, "pods": 1}


def test_a_relist_drops_pods_that_are_gone(view: cluster.ClusterState) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1"))
    view.upsert_pod(builders.pod("b", uid="b", cpu="2", node_name="n2"))
    view.replace_pods([builders.pod("b", uid="b", cpu="2", node_name="n2")])
    assert set(view.pods) == {"b"}
    assert used(view, "n1") == {} and used(view, "n2") == {"cpu": 2000, "pods": 1}


# -- nodes arriving late, leaving and coming back -------------------------------------------


def test_a_pod_on_an_unknown_node_counts_when_the_node_arrives(view: cluster.ClusterState) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="late"))
    assert "late" not in view.nodes
    view.upsert_node(builders.node("late"))
    assert used(view, "late") == {"cpu": 1000, "pods": 1}


def test_a_pod_released_before_its_node_arrives_is_not_counted(
    view: cluster.ClusterState,
) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="late"))
    view.delete_pod("a")
    view.upsert_node(builders.node("late"))
    assert used(view, "late") == {}


def test_replace_nodes_drops_missing_nodes_and_keeps_the_others(
    view: cluster.ClusterState,
) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1"))
    g1 = generation(view, "n1")
    view.replace_nodes([builders.node("n1"), builders.node("n3")])
    assert set(view.nodes) == {"n1", "n3"}
    assert used(view, "n1") == {"cpu": 1000, "pods": 1}
    assert generation(view, "n1") == g1, "an unchanged node keeps its generation"


def test_a_deleted_node_that_returns_gets_its_pods_back(view: cluster.ClusterState) -> None:
    view.upsert_pod(builders.pod("a", uid="a", cpu="1", node_name="n1"))
    old = generation(view, "n1")
    view.delete_node("n1")
    assert "n1" not in view.nodes
    view.upsert_node(builders.node("n1"))
    assert used(view, "n1") == {"cpu": 1000, "pods": 1}
    assert generation(view, "n1") > old


def test_snapshot_used_is_a_copy(view: cluster.ClusterState) -> None:
    view.claim("k", "n1", {"cpu": 1})
    snap = view.snapshot_used()
    snap["n1"]["cpu"] = 99
    assert used(view, "n1") == {"cpu": 1}
    assert snap.keys() == {"n1", "n2"}


# -- the topology index ---------------------------------------------------------------------

RACK = "muster.dev/rack"
ZONE = "topology.kubernetes.io/zone"


def regrouped(view: cluster.ClusterState, key: str) -> dict[str, tuple[set[str], dict[str, int]]]:
    """What the index must say, computed from scratch: domain -> (node names, free summed)."""
    out: dict[str, tuple[set[str], dict[str, int]]] = {}
    for state in view.nodes.values():
        value = state.node.labels.get(key)
        if value is None:
            continue
        names, free = out.setdefault(f"{key}={value}", (set(), {}))
        names.add(state.node.name)
        for name, amount in cluster.free_of(state).items():
            free[name] = free.get(name, 0) + amount
    return out


def indexed(view: cluster.ClusterState, key: str) -> dict[str, tuple[set[str], dict[str, int]]]:
    return {
        d.name: (set(d.nodes), {k: v for k, v in d.free.items() if v}) for d in view.domains(key)
    }


def without_zeros(
    groups: dict[str, tuple[set[str], dict[str, int]]],
) -> dict[str, tuple[set[str], dict[str, int]]]:
    return {k: (names, {r: v for r, v in free.items() if v}) for k, (names, free) in groups.items()}


def test_domains_group_nodes_by_label_sorted_by_value() -> None:
    view = cluster.ClusterState()
    for name, rack in (("a", "r2"), ("b", "r1"), ("c", "r2"), ("d", None)):
        view.upsert_node(builders.node(name, cpu="2", labels={RACK: rack} if rack else {}))
    domains = view.domains(RACK)
    assert [d.name for d in domains] == [f"{RACK}=r1", f"{RACK}=r2"]
    assert list(domains[1].nodes) == ["a", "c"]
    assert domains[1].free["cpu"] == 4000


def test_a_claim_lowers_its_domains_free_capacity_and_a_release_restores_it() -> None:
    view = cluster.ClusterState()
    view.upsert_node(builders.node("a", cpu="2", labels={RACK: "r1", ZONE: "z"}))
    view.domains(RACK), view.domains(ZONE)
    view.claim("k", "a", {"cpu": 500})
    assert view.domains(RACK)[0].free["cpu"] == 1500 == view.domains(ZONE)[0].free["cpu"]
    view.release("k")
    assert view.domains(RACK)[0].free["cpu"] == 2000


def test_an_over_committed_node_adds_nothing_not_a_negative_amount() -> None:
    view = cluster.ClusterState()
    view.upsert_node(builders.node("a", cpu="1", labels={RACK: "r1"}))
    view.upsert_node(builders.node("b", cpu="1", labels={RACK: "r1"}))
    view.claim("k", "a", {"cpu": 3000})
    assert view.domains(RACK)[0].free["cpu"] == 1000


def test_a_relabelled_node_moves_and_an_emptied_domain_disappears() -> None:
    view = cluster.ClusterState()
    view.upsert_node(builders.node("a", labels={RACK: "r1"}))
    view.upsert_node(builders.node("b", labels={RACK: "r2"}))
    view.domains(RACK)
    view.upsert_node(builders.node("a", labels={RACK: "r2"}))
    assert [(d.name, list(d.nodes)) for d in view.domains(RACK)] == [(f"{RACK}=r2", ["b", "a"])]
    view.delete_node("b")
    view.delete_node("a")
    assert view.domains(RACK) == []


node_changes = st.one_of(
    st.tuples(
        st.just("upsert_node"),
        st.sampled_from(["n0", "n1", "n2", "n3"]),
        st.sampled_from(["1", "4"]),
        st.sampled_from([None, "r1", "r2"]),
        st.sampled_from([None, "z1"]),
    ),
    st.tuples(st.just("delete_node"), st.sampled_from(["n0", "n1", "n2", "n3"])),
    st.tuples(
        st.just("claim"),
        st.sampled_from(["k0", "k1", "k2"]),
        st.sampled_from(["n0", "n1", "n2", "n3"]),
        st.sampled_from([500, 3000, 6000]),
    ),
    st.tuples(st.just("release"), st.sampled_from(["k0", "k1", "k2"])),
    st.tuples(st.just("ask"), st.sampled_from([RACK, ZONE])),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(node_changes, max_size=40))
def test_the_index_always_equals_regrouping_every_node(changes) -> None:
    view = cluster.ClusterState()
    asked: set[str] = set()  # keys indexed so far: checking a key indexes it
    for change in changes:
        match change:
            case ("upsert_node", name, cpu, rack, zone):
                labels = {k: v for k, v in ((RACK, rack), (ZONE, zone)) if v}
                view.upsert_node(builders.node(name, cpu=cpu, labels=labels))
            case ("delete_node", name):
                view.delete_node(name)
            case ("claim", key, name, cpu):
                view.claim(key, name, {"cpu": cpu, "pods": 1})
            case ("release", key):
                view.release(key)
            case ("ask", key):
                asked.add(key)
        for key in asked:
            assert indexed(view, key) == without_zeros(regrouped(view, key))
    for key in (RACK, ZONE):
        assert indexed(view, key) == without_zeros(regrouped(view, key))


# -- bound-pod notifications ----------------------------------------------------------------


def test_listeners_hear_when_a_pod_becomes_bound_and_when_it_no_longer_is(
    view: cluster.ClusterState,
) -> None:
    heard: list[tuple[str, str]] = []
    view.on_bound_change(lambda uid, node: heard.append((uid, node)))
    pod = builders.pod("a", uid="a", cpu="1")
    view.upsert_pod(pod)
    view.assume(pod, "n1")
    view.upsert_pod(dataclasses.replace(pod, node_name="n1"))  # the watch confirms: no change
    view.delete_pod("a")
    view.assume(pod, "n2")
    view.forget("a")
    assert heard == [("a", "n1"), ("a", ""), ("a", "n2"), ("a", "")]
