"""Which pods share an equivalence class, and which are judged fresh every time."""

from __future__ import annotations

import pytest

from extender.core import equivalence, objects
from tests import builders


def test_identity_and_labels_do_not_split_a_class():
    a = builders.pod("a", cpu="1", labels={"app": "x"}, annotations={"note": "1"}, priority=5)
    b = builders.pod("b", cpu="1", namespace="other")
    assert equivalence.signature(a) == equivalence.signature(b)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"cpu": "2"}, id="different request"),
        pytest.param({"cpu": "1", "node_selector": {"disk": "ssd"}}, id="node selector"),
        pytest.param({"cpu": "1", "tolerations": [builders.toleration("k")]}, id="toleration"),
        pytest.param({"cpu": "1", "overhead": {"cpu": "100m"}}, id="overhead"),
        pytest.param(
            {
                "cpu": "1",
                "affinity": builders.node_affinity(
                    builders.term(builders.requirement("zone", "In", "a"))
                ),
            },
            id="required node affinity",
        ),
    ],
)
def test_fields_that_checks_read_split_a_class(other):
    assert equivalence.signature(builders.pod("a", cpu="1")) != equivalence.signature(
        builders.pod("b", **other)
    )


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            builders.make_pod("p", containers=[builders.make_container(host_port=80)]),
            id="host port",
        ),
        pytest.param(
            builders.make_pod("p", affinity={"podAntiAffinity": {"x": 1}}), id="pod anti-affinity"
        ),
    ],
)
def test_pods_our_checks_cannot_treat_as_interchangeable_are_unsignable(raw):
    assert equivalence.signature(objects.to_pod(raw)) is None


def test_topology_spread_is_unsignable():
    raw = builders.make_pod("p")
    raw["spec"]["topologySpreadConstraints"] = [{"maxSkew": 1}]
    assert equivalence.signature(objects.to_pod(raw)) is None
