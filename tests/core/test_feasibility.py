"""The feasibility cache judges only nodes that are new to an entry or changed since, and
answers from node names."""

from __future__ import annotations

import pytest

from extender.core import cluster, feasibility, predicates
from tests import builders


def _view(count: int) -> cluster.ClusterState:
    view = cluster.ClusterState()
    for i in range(count):
        view.upsert_node(builders.node(f"n{i}", cpu="4"))
    return view


class Recorder:
    """Judges and scores a pod on the view's nodes, recording the names it was asked about."""

    def __init__(self, view: cluster.ClusterState, **pod: object) -> None:
        self.view = view
        self.pod = builders.pod("p", **pod)
        self.asked: list[str] = []

    def judge(self, name: str) -> predicates.Rejection | None:
        self.asked.append(name)
        state = self.view.nodes[name]
        return predicates.check(self.pod, state.node, state.used)

    def score(self, name: str) -> int:
        self.asked.append(name)
        return 7 if name in self.view.nodes else self.view.nodes[name].generation


def _filter(
    cache: feasibility.FeasibilityCache, rec: Recorder, names: list[str], sig: str = "sig"
) -> predicates.FilterOutcome:
    return cache.filter(sig, names, rec.judge, view=rec.view)


def test_identical_pods_rejudge_only_the_node_that_changed():
    view = _view(100)
    cache = feasibility.FeasibilityCache()
    rec = Recorder(view, cpu="3")
    names = list(view.nodes)

    for _ in range(2):  # sighted, then given an entry: both judge every node
        assert _filter(cache, rec, names).passed == names
    assert sorted(rec.asked) == sorted(names * 2)
    view.claim("p1", "n7", rec.pod.requests)
    rec.asked.clear()
    second = _filter(cache, rec, names)
    assert rec.asked == ["n7"]
    assert second.passed == [n for n in names if n != "n7"]
    assert second.failed == {"n7": "Insufficient cpu"} and second.unresolvable == {}
    rec.asked.clear()
    _filter(cache, rec, names)
    assert rec.asked == []
    stats = cache.stats
    assert (stats.misses, stats.partial_hits, stats.hits, stats.rechecked) == (2, 1, 1, 201)


def test_a_changed_node_is_judged_again_at_once_unless_many_changed():
    """A few changes are judged again at the next lookup, offered or not (the entry stays
    complete); more changes than offered nodes are forgotten and judged when offered."""
    view = _view(10)
    cache = feasibility.FeasibilityCache()
    rec = Recorder(view, cpu="3")
    _warm(cache, rec, list(view.nodes))
    view.claim("a", "n9", rec.pod.requests)
    assert _filter(cache, rec, ["n0", "n1"]).passed == ["n0", "n1"]
    assert rec.asked == ["n9"]
    rec.asked.clear()
    for i in range(5):
        view.claim(f"b{i}", f"n{i}", rec.pod.requests)
    assert _filter(cache, rec, ["n5", "n6"]).passed == ["n5", "n6"]
    assert rec.asked == []
    answer = _filter(cache, rec, ["n4", "n5", "n9"])
    assert answer.passed == ["n5"] and set(answer.failed) == {"n4", "n9"}
    assert rec.asked == ["n4"]


def test_a_signature_seen_once_gets_no_entry():
    """Pods that share their signature with no other pod cost what they cost uncached."""
    view = _view(3)
    cache = feasibility.FeasibilityCache()
    rec = Recorder(view)
    for sig in ("a", "b", "c"):
        assert _filter(cache, rec, ["n0", "n1"], sig).passed == ["n0", "n1"]
        assert cache.scores(sig, ["n1"], rec.score, view=view).pairs() == [("n1", 7)]
    assert len(cache) == 0 and cache.stats.misses == 6
    _filter(cache, rec, ["n0"], "b")
    assert len(cache) == 1


def _warm(cache: feasibility.FeasibilityCache, rec: Recorder, names: list[str]) -> None:
    """Give the signature an entry that has judged ``names``."""
    for _ in range(2):
        _filter(cache, rec, names)
    rec.asked.clear()


def test_a_full_hit_with_nothing_rejected_answers_the_offered_list_itself():
    view = _view(10)
    cache = feasibility.FeasibilityCache()
    rec = Recorder(view, cpu="1")
    _warm(cache, rec, list(view.nodes))
    offered = ["n3", "n1", "n2"]
    answer = _filter(cache, rec, offered)
    assert answer.passed is offered
    assert (answer.failed, answer.unresolvable) == ({}, {})
    assert rec.asked == []


def test_rejections_are_sorted_by_whether_preemption_can_help():
    view = _view(4)
    view.upsert_node(builders.node("n1", cpu="4", unschedulable=True))
    view.claim("other", "n2", {"cpu": 3500})
    cache = feasibility.FeasibilityCache()
    rec = Recorder(view, cpu="1")
    offered = ["n3", "n2", "n1", "n0"]
    for _ in range(3):  # judged (sighted), judged (entry made), then from the entry
        answer = _filter(cache, rec, offered)
        assert answer.passed == ["n3", "n0"]
        assert answer.failed == {"n2": "Insufficient cpu"}
        assert answer.unresolvable == {"n1": predicates.REASON_UNSCHEDULABLE}
    assert sorted(rec.asked) == sorted(offered * 2)


def test_a_node_that_frees_up_is_passed_again():
    view = _view(2)
    cache = feasibility.FeasibilityCache()
    rec = Recorder(view, cpu="3")
    view.claim("other", "n0", {"cpu": 2000})
    _warm(cache, rec, ["n0", "n1"])
    assert _filter(cache, rec, ["n0", "n1"]).passed == ["n1"]
    view.release("other")
    answer = _filter(cache, rec, ["n0", "n1"])
    assert answer.passed == ["n0", "n1"] and answer.failed == {}


def test_scores_are_computed_once_per_node_and_generation():
    view = _view(5)
    cache = feasibility.FeasibilityCache()
    rec = Recorder(view)
    _warm(cache, rec, [])
    assert cache.scores("sig", ["n1", "n0"], rec.score, view=view).pairs() == [("n1", 7), ("n0", 7)]
    assert cache.scores("sig", ["n0", "n2", "n1"], rec.score, view=view).pairs() == [
        ("n0", 7),
        ("n2", 7),
        ("n1", 7),
    ]
    view.claim("x", "n0", {"cpu": 1})
    cache.scores("sig", ["n0", "n1"], rec.score, view=view)
    assert sorted(rec.asked) == ["n0", "n0", "n1", "n2"]


def test_a_name_the_caller_cannot_judge_is_not_cached():
    view = _view(2)
    cache = feasibility.FeasibilityCache()
    rec = Recorder(view)
    for _ in range(3):
        with pytest.raises(KeyError):
            cache.filter("sig", ["n0", "ghost"], rec.judge, view=view)
        with pytest.raises(KeyError):
            cache.scores("sig", ["ghost", "n0"], rec.score, view=view)
    assert _filter(cache, rec, ["n0", "n1"]).passed == ["n0", "n1"]
    assert cache.scores("sig", ["n1"], rec.score, view=view).pairs() == [("n1", 7)]


def test_a_truncated_change_log_drops_the_whole_entry():
    view = _view(3)
    view.CHANGE_LOG_SIZE = 4  # type: ignore[misc]
    cache = feasibility.FeasibilityCache()
    rec = Recorder(view)
    names = list(view.nodes)
    _warm(cache, rec, names)
    for i in range(10):
        view.claim(f"c{i}", "n0", {"cpu": 1})
    rec.asked.clear()
    _filter(cache, rec, names)
    assert sorted(rec.asked) == ["n0", "n1", "n2"]


def test_the_lru_evicts_and_counts_it():
    view = _view(1)
    cache = feasibility.FeasibilityCache(max_signatures=2)
    rec = Recorder(view)
    for sig in ("a", "b", "c"):
        for _ in range(2):
            _filter(cache, rec, ["n0"], sig)
    assert len(cache) == 2 and cache.stats.evictions == 1
