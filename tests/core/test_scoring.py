"""Prioritize scores: 0..10 integers, spreading (LeastAllocated) or packing (MostAllocated)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.core import model, scoring
from tests import builders

LEAST = scoring.Strategy.LEAST_ALLOCATED
MOST = scoring.Strategy.MOST_ALLOCATED
GI = 2**30


def test_the_docstring_example() -> None:
    node = builders.node("n", cpu="4", memory="8Gi")
    request = {"cpu": 1000, "memory": 2 * GI, "pods": 1}
    assert scoring.score(LEAST, request, node, {"cpu": 1000}) == 6


@pytest.mark.parametrize(
    ("strategy", "used", "expected"),
    [
        (LEAST, {}, 7),
        (LEAST, {"cpu": 2000, "memory": 4 * GI}, 2),
        (LEAST, {"cpu": 3000, "memory": 6 * GI}, 0),
        (LEAST, {"cpu": 9000, "memory": 20 * GI}, 0),
        (MOST, {}, 2),
        (MOST, {"cpu": 2000, "memory": 4 * GI}, 7),
        (MOST, {"cpu": 3000, "memory": 6 * GI}, 10),
        (MOST, {"cpu": 9000, "memory": 20 * GI}, 10),
    ],
    ids=[
        "least: an empty node",
        "least: a half-full node",
        "least: a node the pod fills",
        "least: an overcommitted node scores 0, not below",
        "most: an empty node",
        "most: a half-full node",
        "most: a node the pod fills",
        "most: an overcommitted node scores 10, not above",
    ],
)
def test_scores_on_a_4cpu_8gi_node(strategy, used, expected) -> None:
    node = builders.node("n", cpu="4", memory="8Gi")
    request = {"cpu": 1000, "memory": 2 * GI, "pods": 1}
    assert scoring.score(strategy, request, node, used) == expected


@pytest.mark.parametrize("strategy", list(scoring.Strategy), ids=lambda s: s.value)
def test_orderings_spread_or_pack(strategy: scoring.Strategy) -> None:
    node = builders.node("n", cpu="8", memory="16Gi")
    request = {"cpu": 500, "memory": GI, "pods": 1}
    loads = [{}, {"cpu": 2000, "memory": 4 * GI}, {"cpu": 6000, "memory": 12 * GI}]
    scores = [scoring.score(strategy, request, node, used) for used in loads]
    assert all(isinstance(s, int) and 0 <= s <= scoring.MAX_SCORE for s in scores)
    if strategy is LEAST:
        assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    else:
        assert scores == sorted(scores) and scores[0] < scores[-1]


@pytest.mark.parametrize("strategy", list(scoring.Strategy), ids=lambda s: s.value)
def test_a_node_with_zero_allocatable_scores_zero(strategy: scoring.Strategy) -> None:
    node = builders.node("n", cpu="0", memory="0")
    assert scoring.score(strategy, {"cpu": 1000, "memory": GI}, node, {}) == 0


def test_a_resource_the_node_lacks_is_left_out_of_the_average() -> None:
    node = builders.node("n", cpu="4", memory="0")
    assert scoring.score(LEAST, {"cpu": 1000}, node, {}) == 7


def test_a_pod_without_requests_scores_as_100m_and_200mi() -> None:
    node = builders.node("n", cpu="1", memory="1000Mi")
    # cpu: (1000 - 100) * 10 // 1000 = 9; memory: (1000 - 200) * 10 // 1000 = 8; (9 + 8) // 2 = 8
    assert scoring.score(LEAST, {"pods": 1}, node, {}) == 8
    # most: cpu 1, memory 2 -> 1
    assert scoring.score(MOST, {"pods": 1}, node, {}) == 1


def test_weights_bias_the_average() -> None:
    node = builders.node("n", cpu="4", memory="8Gi")
    request = {"cpu": 4000, "memory": GI}
    # cpu part 0, memory part 8
    assert scoring.score(LEAST, request, node, {}) == 4
    assert scoring.score(LEAST, request, node, {}, weights={"cpu": 3, "memory": 1}) == 2
    assert scoring.score(LEAST, request, node, {}, weights={"nvidia.com/gpu": 1}) == 0


def test_scores_are_absolute_the_same_state_scores_the_same() -> None:
    node = builders.node("n")
    request = {"cpu": 700, "memory": 3 * GI}
    first = scoring.score(MOST, request, node, {"cpu": 1234})
    assert all(scoring.score(MOST, request, node, {"cpu": 1234}) == first for _ in range(3))


@given(
    st.sampled_from(list(scoring.Strategy)),
    st.dictionaries(st.sampled_from(["cpu", "memory"]), st.integers(-(2**64), 2**64)),
    st.dictionaries(st.sampled_from(["cpu", "memory"]), st.integers(-(2**64), 2**64)),
    st.dictionaries(st.sampled_from(["cpu", "memory"]), st.integers(-(2**64), 2**64)),
)
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_a_score_is_an_integer_from_0_to_10_whatever_the_amounts(
    strategy: scoring.Strategy,
    request: dict[str, int],
    allocatable: dict[str, int],
    used: dict[str, int],
) -> None:
    node = model.Node("n", allocatable=allocatable)
    value = scoring.score(strategy, request, node, used)
    assert isinstance(value, int) and 0 <= value <= scoring.MAX_SCORE


def test_a_negative_request_does_not_score_above_10() -> None:
    node = builders.node("n", cpu="4", memory="8Gi")
    assert scoring.score(LEAST, {"cpu": -100_000}, node, {}) == scoring.MAX_SCORE
    assert scoring.score(MOST, {"cpu": -100_000}, node, {}) == 0
