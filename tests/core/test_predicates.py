"""Node checks: which nodes take which pods, with kube-scheduler's reasons and codes."""

from __future__ import annotations

from typing import Any

import pytest

from extender.core import model, predicates
from tests import builders
from tests.builders import node_affinity, requirement, taint, term, toleration

UNRESOLVABLE = predicates.Code.UNRESOLVABLE
UNSCHEDULABLE = predicates.Code.UNSCHEDULABLE

ZONE_A = {"zone": "a", "gen": "5"}


def check(pod_kwargs: dict[str, Any], node_kwargs: dict[str, Any], used=None):
    pod = builders.pod("p", **pod_kwargs)
    node = builders.node("n1", **node_kwargs)
    return predicates.check(pod, node, used or {})


# -- cordon and taints ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod_kwargs", "node_kwargs", "expected"),
    [
        ({}, {"unschedulable": True}, (UNRESOLVABLE, predicates.REASON_UNSCHEDULABLE)),
        (
            {"tolerations": [toleration(predicates.UNSCHEDULABLE_TAINT, operator="Exists")]},
            {"unschedulable": True},
            None,
        ),
        ({"tolerations": [toleration(operator="Exists")]}, {"unschedulable": True}, None),
        (
            {"tolerations": [toleration(operator="Exists", effect="NoExecute")]},
            {"unschedulable": True},
            (UNRESOLVABLE, predicates.REASON_UNSCHEDULABLE),
        ),
        (
            {},
            {"taints": [taint("dedicated", "gpu")]},
            (UNRESOLVABLE, "node(s) had taint {dedicated: gpu}, that the pod didn't tolerate"),
        ),
        (
            {},
            {"taints": [taint("maintenance", effect="NoExecute")]},
            (UNRESOLVABLE, "node(s) had taint {maintenance}, that the pod didn't tolerate"),
        ),
        ({}, {"taints": [taint("soft", "x", effect="PreferNoSchedule")]}, None),
        (
            {"tolerations": [toleration("dedicated", value="gpu")]},
            {"taints": [taint("dedicated", "gpu")]},
            None,
        ),
        (
            {"tolerations": [toleration("dedicated", value="cpu")]},
            {"taints": [taint("dedicated", "gpu")]},
            (UNRESOLVABLE, "node(s) had taint {dedicated: gpu}, that the pod didn't tolerate"),
        ),
        (
            {"tolerations": [toleration("dedicated", operator="Exists")]},
            {"taints": [taint("dedicated", "gpu")]},
            None,
        ),
        (
            {"tolerations": [toleration(operator="Exists")]},
            {"taints": [taint("a", "1"), taint("b", effect="NoExecute")]},
            None,
        ),
        (
            {"tolerations": [toleration("dedicated", value="gpu", effect="NoExecute")]},
            {"taints": [taint("dedicated", "gpu", effect="NoSchedule")]},
            (UNRESOLVABLE, "node(s) had taint {dedicated: gpu}, that the pod didn't tolerate"),
        ),
        (
            {"tolerations": [toleration("dedicated", value="gpu", effect="NoSchedule")]},
            {"taints": [taint("dedicated", "gpu", effect="NoSchedule")]},
            None,
        ),
        (
            {"tolerations": [toleration("other", operator="Exists")]},
            {"taints": [taint("dedicated", "gpu")]},
            (UNRESOLVABLE, "node(s) had taint {dedicated: gpu}, that the pod didn't tolerate"),
        ),
        (
            {"tolerations": [toleration("a", operator="Exists")]},
            {"taints": [taint("a"), taint("b")]},
            (UNRESOLVABLE, "node(s) had taint {b}, that the pod didn't tolerate"),
        ),
    ],
    ids=[
        "a cordoned node is unresolvable",
        "a pod tolerating the unschedulable taint may go to a cordoned node",
        "an empty-key Exists toleration tolerates the cordon",
        "a NoExecute-only wildcard does not tolerate the cordon",
        "an untolerated NoSchedule taint with a value",
        "an untolerated NoExecute taint without a value",
        "PreferNoSchedule does not filter",
        "Equal with the same value tolerates",
        "Equal with another value does not",
        "Exists tolerates any value",
        "an empty key with Exists tolerates every taint",
        "a toleration for another effect does not tolerate",
        "a toleration with the same effect tolerates",
        "a toleration for another key does not tolerate",
        "every filtering taint must be tolerated",
    ],
)
def test_cordon_and_taints(pod_kwargs, node_kwargs, expected) -> None:
    rejection = check(pod_kwargs, node_kwargs)
    assert (rejection and (rejection.code, rejection.reason)) == expected


# -- node selector and required node affinity -----------------------------------------------


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"affinity": node_affinity(*terms)}


@pytest.mark.parametrize(
    ("pod_kwargs", "fits"),
    [
        ({"node_selector": {"zone": "a"}}, True),
        ({"node_selector": {"zone": "b"}}, False),
        ({"node_selector": {"zone": "a", "gen": "5"}}, True),
        ({"node_selector": {"disk": "ssd"}}, False),
        ({"node_selector": {}}, True),
        (affinity(term(requirement("zone", "In", "a", "b"))), True),
        (affinity(term(requirement("zone", "In", "b", "c"))), False),
        (affinity(term(requirement("disk", "In", "ssd"))), False),
        (affinity(term(requirement("zone", "NotIn", "b"))), True),
        (affinity(term(requirement("zone", "NotIn", "a"))), False),
        (affinity(term(requirement("zone", "Exists"))), True),
        (affinity(term(requirement("disk", "Exists"))), False),
        (affinity(term(requirement("disk", "DoesNotExist"))), True),
        (affinity(term(requirement("zone", "DoesNotExist"))), False),
        (affinity(term(requirement("gen", "Gt", "4"))), True),
        (affinity(term(requirement("gen", "Gt", "5"))), False),
        (affinity(term(requirement("gen", "Lt", "6"))), True),
        (affinity(term(requirement("gen", "Lt", "5"))), False),
        (affinity(term(requirement("zone", "Gt", "1"))), False),
        (affinity(term(requirement("gen", "Gt", "four"))), False),
        (affinity(term(requirement("cores", "Lt", "100"))), False),
        (affinity(term(fields=[requirement("metadata.name", "In", "n1")])), True),
        (affinity(term(fields=[requirement("metadata.name", "In", "n2")])), False),
        (affinity(term(fields=[requirement("metadata.name", "NotIn", "n2")])), True),
        (affinity(term()), False),
        (affinity(), False),
        (affinity(term(requirement("zone", "In", "b")), term(requirement("gen", "In", "5"))), True),
        (affinity(term(requirement("zone", "In", "a"), requirement("gen", "In", "6"))), False),
        (affinity(term(), term(requirement("zone", "In", "a"))), True),
        (
            affinity(
                term(
                    requirement("zone", "In", "a"), fields=[requirement("metadata.name", "In", "x")]
                )
            ),
            False,
        ),
        ({"affinity": {"nodeAffinity": None}}, True),
        ({"affinity": {"podAntiAffinity": {}}}, True),
    ],
    ids=[
        "nodeSelector matches",
        "nodeSelector with another value",
        "every nodeSelector label must match",
        "nodeSelector label missing from the node",
        "an empty nodeSelector",
        "In with the node's value",
        "In without the node's value",
        "In on a missing label",
        "NotIn with another value",
        "NotIn with the node's value",
        "Exists on a present label",
        "Exists on a missing label",
        "DoesNotExist on a missing label",
        "DoesNotExist on a present label",
        "Gt below the label",
        "Gt equal to the label",
        "Lt above the label",
        "Lt equal to the label",
        "Gt on a non-integer label",
        "Gt with a non-integer bound",
        "Lt on a missing label",
        "matchFields metadata.name In",
        "matchFields metadata.name In another name",
        "matchFields metadata.name NotIn another name",
        "an empty term matches nothing",
        "no terms at all match nothing",
        "terms are ORed",
        "expressions within a term are ANDed",
        "an empty term does not spoil the others",
        "expressions and fields of a term are ANDed",
        "a null nodeAffinity requires nothing",
        "pod anti-affinity alone does not filter nodes",
    ],
)
def test_node_selector_and_required_affinity(pod_kwargs: dict[str, Any], fits: bool) -> None:
    rejection = check(pod_kwargs, {"labels": ZONE_A})
    if fits:
        assert rejection is None
    else:
        assert rejection is not None and rejection.code is UNRESOLVABLE
        expected = (
            predicates.REASON_SELECTOR
            if "node_selector" in pod_kwargs
            else predicates.REASON_AFFINITY
        )
        assert rejection.reason == expected


def test_not_in_matches_a_node_without_the_label() -> None:
    assert check(affinity(term(requirement("disk", "NotIn", "hdd"))), {"labels": ZONE_A}) is None


@pytest.mark.parametrize("label", ["1_0", " 7"], ids=["an underscore", "a leading space"])
def test_gt_does_not_accept_integers_go_would_reject(label: str) -> None:
    assert check(affinity(term(requirement("n", "Gt", "1"))), {"labels": {"n": label}}) is not None


def test_the_first_failure_wins_unresolvable_before_resources() -> None:
    rejection = check({"cpu": "64", "node_selector": {"zone": "b"}}, {"labels": ZONE_A})
    assert rejection == predicates.Rejection(UNRESOLVABLE, predicates.REASON_SELECTOR)


def test_check_static_ignores_resources() -> None:
    pod = builders.pod("p", cpu="64")
    assert predicates.check_static(pod, builders.node("n1")) is None
    assert predicates.check(pod, builders.node("n1"), {}) is not None


# -- resources ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod_kwargs", "node_kwargs", "used", "reason"),
    [
        ({"cpu": "4"}, {}, {}, None),
        ({"cpu": "4001m"}, {}, {}, "Insufficient cpu"),
        ({"cpu": "1"}, {}, {"cpu": 3001}, "Insufficient cpu"),
        ({"memory": "8Gi"}, {}, {}, None),
        ({"memory": "9Gi"}, {}, {}, "Insufficient memory"),
        ({"cpu": "5", "memory": "9Gi"}, {}, {}, "Insufficient cpu, Insufficient memory"),
        (
            {"requests": {"ephemeral-storage": "20Gi"}},
            {"extra": {"ephemeral-storage": "10Gi"}},
            {},
            "Insufficient ephemeral-storage",
        ),
        ({"requests": {"ephemeral-storage": "1Gi"}}, {}, {}, "Insufficient ephemeral-storage"),
        (
            {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}},
            {},
            {},
            "Insufficient nvidia.com/gpu",
        ),
        (
            {"requests": {"nvidia.com/gpu": "2"}},
            {"extra": {"nvidia.com/gpu": "4"}},
            {"nvidia.com/gpu": 2},
            None,
        ),
        (
            {"requests": {"nvidia.com/gpu": "3"}},
            {"extra": {"nvidia.com/gpu": "4"}},
            {"nvidia.com/gpu": 2},
            "Insufficient nvidia.com/gpu",
        ),
        ({}, {"pods": "10"}, {"pods": 10}, predicates.REASON_TOO_MANY_PODS),
        ({}, {"pods": "10"}, {"pods": 9}, None),
        ({"cpu": "4"}, {"pods": "2"}, {"pods": 2, "cpu": 1}, "Insufficient cpu, Too many pods"),
    ],
    ids=[
        "exactly the allocatable cpu",
        "one millicore too many",
        "what is used counts",
        "exactly the allocatable memory",
        "too much memory",
        "every short resource is listed",
        "ephemeral storage",
        "ephemeral storage the node does not report",
        "an extended resource the node does not have",
        "an extended resource that fits",
        "an extended resource that is used up",
        "no pod slot left",
        "the last pod slot",
        "cpu and pod slots",
    ],
)
def test_resources_are_unschedulable_not_unresolvable(
    pod_kwargs, node_kwargs, used, reason
) -> None:
    rejection = check(pod_kwargs, node_kwargs, used)
    if reason is None:
        assert rejection is None
    else:
        assert rejection == predicates.Rejection(UNSCHEDULABLE, reason)


def test_toleration_semantics_directly() -> None:
    gpu = model.Taint("gpu", "true", "NoSchedule")
    assert model.Toleration("gpu", "Equal", "true").tolerates(gpu)
    assert model.Toleration("gpu", "", "true").tolerates(gpu), "an empty operator means Equal"
    assert not model.Toleration("gpu", "Equal", "").tolerates(gpu)
    assert not model.Toleration("gpu", "Gt", "true").tolerates(gpu), "unknown operators fail"
    assert model.Toleration("", "Exists").tolerates(gpu)


@pytest.mark.parametrize(
    ("label", "operator", "bound", "fits"),
    [
        ("5", "Gt", "9" * 4400, False),
        ("5", "Lt", "9" * 4400, False),
        ("9" * 4400, "Gt", "5", False),
        ("5", "Gt", "-" + "9" * 4400, False),
        ("9223372036854775807", "Gt", "9223372036854775806", True),
        ("9223372036854775808", "Gt", "0", False),
        ("-9223372036854775808", "Lt", "0", True),
        ("-9223372036854775809", "Lt", "0", False),
        ("0" * 5000 + "7", "Gt", "+6", True),
        ("5", "Gt", "4 ", False),
    ],
    ids=[
        "a bound of 4,400 digits never matches Gt",
        "nor Lt",
        "a label of 4,400 digits never matches",
        "a negative bound of 4,400 digits never matches",
        "the int64 maximum is compared",
        "one past the int64 maximum is no integer",
        "the int64 minimum is compared",
        "one below the int64 minimum is no integer",
        "leading zeros and a plus sign are read as Go reads them",
        "white space is not part of an integer",
    ],
)
def test_gt_and_lt_read_values_as_int64_like_kubernetes(
    label: str, operator: str, bound: str, fits: bool
) -> None:
    pod_kwargs = affinity(term(requirement("gen", operator, bound)))
    rejection = check(pod_kwargs, {"labels": {"gen": label}})
    assert (rejection is None) == fits
