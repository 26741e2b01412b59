"""The feasibility cache judges only nodes that are new to an entry or changed since."""

from __future__ import annotations

from extender.core import cluster, feasibility, predicates
from tests import builders


def _view(count: int) -> cluster.ClusterState:
    view = cluster.ClusterState()
    for i in range(count):
        view.upsert_node(builders.node(f"n{i}", cpu="4"))
    return view


def test_identical_pods_rejudge_only_the_node_that_changed():
    view = _view(100)
    cache = feasibility.FeasibilityCache()
    pod = builders.pod("p", cpu="3")
    judged: list[str] = []

    def judge(state: cluster.NodeState) -> predicates.Rejection | None:
        judged.append(state.node.name)
        return predicates.check(pod, state.node, state.used)

    states = list(view.nodes.values())
    first = cache.verdicts("sig", states, judge, view=view)
    assert len(judged) == 100 and all(v is None for v in first)
    view.claim("p1", "n7", pod.requests)
    judged.clear()
    second = cache.verdicts("sig", list(view.nodes.values()), judge, view=view)
    assert judged == ["n7"]
    assert second[7] is not None and second[7].reason == "Insufficient cpu"
    judged.clear()
    cache.verdicts("sig", list(view.nodes.values()), judge, view=view)
    assert judged == []
    stats = cache.stats
    assert (stats.misses, stats.partial_hits, stats.hits, stats.rechecked) == (1, 1, 1, 101)


def test_a_truncated_change_log_drops_the_whole_entry():
    view = _view(3)
    view.CHANGE_LOG_SIZE = 4  # type: ignore[misc]
    cache = feasibility.FeasibilityCache()
    calls: list[str] = []

    def judge(state: cluster.NodeState) -> predicates.Rejection | None:
        calls.append(state.node.name)
        return None

    cache.verdicts("sig", list(view.nodes.values()), judge, view=view)
    for i in range(10):
        view.claim(f"c{i}", "n0", {"cpu": 1})
    calls.clear()
    cache.verdicts("sig", list(view.nodes.values()), judge, view=view)
    assert sorted(calls) == ["n0", "n1", "n2"]


def test_the_lru_evicts_and_counts_it():
    view = _view(1)
    cache = feasibility.FeasibilityCache(max_signatures=2)
    for sig in ("a", "b", "c"):
        cache.verdicts(sig, list(view.nodes.values()), lambda s: None, view=view)
    assert len(cache) == 2 and cache.stats.evictions == 1
