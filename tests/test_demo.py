"""``muster demo`` end to end: a real HTTP server on loopback, driven like kube-scheduler."""

from __future__ import annotations

from extender import demo, simulation
from extender.core import predicates


async def test_the_demo_binds_pods_and_explains_the_ones_it_cannot_place() -> None:
    report = await demo.run(nodes=20, pods=40)
    nodes = report.state.nodes
    outcomes = {o.pod: o for o in report.outcomes}

    assert len(report.outcomes) == 41, "40 pods plus the one that fits nowhere"
    assert report.imitation.errors == 0
    assert all(not o.error for o in report.outcomes)

    too_big = outcomes["demo/too-big"]
    assert too_big.node == ""
    assert any("Insufficient cpu" in reason for reason in too_big.reasons)
    assert sum(too_big.reasons.values()) == 20, "every node said why"

    # 20 generated nodes make one rack in one zone: zone-b pods can go nowhere, and say so
    zone_b_nodes = [s for s in nodes.values() if s.node.labels[simulation.ZONE_LABEL] == "zone-b"]
    for name, outcome in outcomes.items():
        if "/zone-b-" not in name:
            continue
        if zone_b_nodes:
            assert nodes[outcome.node].node.labels[simulation.ZONE_LABEL] == "zone-b"
        else:
            assert outcome.node == ""
            assert outcome.reasons == {predicates.REASON_SELECTOR: 20}

    bound = [o for o in report.outcomes if o.node]
    others = [o for o in report.outcomes if "/zone-b-" not in o.pod and o.pod != "demo/too-big"]
    assert len(others) == 36 and all(o.node for o in others), "every other pod was placed"

    # the binds reached the view: every bound pod is accounted on its node
    assert sum(s.used.get("pods", 0) for s in nodes.values()) == len(bound)
    assert sum(s.used.get("cpu", 0) for s in nodes.values()) == 32 * 250 + 4 * 3000
    assert all(s.used.get("cpu", 0) <= s.node.allocatable["cpu"] for s in nodes.values())

    text = report.render()
    assert f"scheduled {len(bound)} of 41 pods on 20 simulated nodes" in text
    assert "not placed: demo/too-big" in text and "Insufficient cpu" in text
    assert "filter" in text and "bind" in text
