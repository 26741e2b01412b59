"""The feasibility cache is invisible: a cached service answers exactly what an uncached one
answers, call for call, whatever happens to the cluster in between (property-based)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender import simulation
from extender.core import cluster
from extender.service import BindError, ExtenderService, RequestError
from extender.settings import Settings
from tests import builders

NODES = ["n0", "n1", "n2"]

node_shapes = st.fixed_dictionaries(
    {
        "cpu": st.sampled_from(["1", "2", "4"]),
        "memory": st.sampled_from(["2Gi", "8Gi"]),
        "labels": st.sampled_from([{}, {"disk": "ssd"}, {"zone": "a"}]),
        "taints": st.sampled_from([None, [builders.taint("gpu", "yes")]]),
        "unschedulable": st.booleans(),
    }
)
# Few shapes, so that identical pods meet again after the cluster changed under them.
SHAPES = [
    {"cpu": "500m", "memory": "1Gi"},
    {"cpu": "3", "memory": "128Mi"},
    {"cpu": "1", "memory": "4Gi", "node_selector": {"disk": "ssd"}},
    {
        "cpu": "100m",
        "memory": "128Mi",
        "tolerations": [builders.toleration("gpu", operator="Exists")],
    },
]
pod_shapes = st.sampled_from(SHAPES)
# Offered names in any order; sometimes one the view does not know (deleted, or never there),
# which must be the same 400 with the cache as without.
offered = st.lists(st.sampled_from([*NODES, "ghost"]), unique=True)
operations = st.one_of(
    st.tuples(st.just("upsert_node"), st.sampled_from(NODES), node_shapes),
    st.tuples(st.just("delete_node"), st.sampled_from(NODES)),
    st.tuples(st.just("filter"), pod_shapes, offered),
    st.tuples(st.just("prioritize"), pod_shapes, offered),
    st.tuples(st.just("bind"), pod_shapes, st.sampled_from(NODES)),
    st.tuples(st.just("delete_pod"), st.integers(min_value=0, max_value=30)),
    st.tuples(st.just("reserve"), st.sampled_from(NODES), st.sampled_from(["500m", "2"])),
    st.tuples(st.just("release"), st.sampled_from(NODES)),
)


def _service(cache: bool) -> ExtenderService:
    state = cluster.ClusterState()
    service = ExtenderService(
        state=state,
        binder=simulation.SimulatedBinder(state),
        settings=Settings(feasibility_cache=cache),
    )
    service.mark_synced()
    return service


def _apply(service: ExtenderService, op: tuple, serial: int) -> object:
    kind = op[0]
    state = service.state
    if kind == "upsert_node":
        service.upsert_node(builders.node(op[1], **op[2]))
        return None
    if kind == "delete_node":
        service.delete_node(op[1])
        return None
    if kind in ("filter", "prioritize"):
        raw = builders.make_pod(f"p{serial}", uid=f"p{serial}", **op[1])
        pod = service.pod_from_wire(raw, spec_key=repr(raw["spec"]).encode())
        try:
            if kind == "filter":
                outcome = service.filter(pod, op[2])
                return outcome.passed, outcome.failed, outcome.unresolvable
            return service.prioritize(pod, op[2])
        except RequestError as exc:
            return "400", str(exc)
    if kind == "bind":
        if op[2] not in state.nodes:
            return None
        raw = builders.make_pod(f"b{serial}", uid=f"b{serial}", **op[1])
        service.pod_from_wire(raw)
        try:
            asyncio.run(
                service.bind(
                    namespace="default", name=f"b{serial}", uid=f"b{serial}", node_name=op[2]
                )
            )
        except BindError as exc:
            return str(exc)
        return "bound"
    if kind == "delete_pod":
        uid = f"b{op[1]}"
        pod = state.pods.get(uid)
        if pod is not None:
            service.remove_pod(pod)
        return None
    if kind == "reserve":
        state.claim(f"test/{op[1]}", op[1], {"cpu": 500 if op[2] == "500m" else 2000})
        return None
    state.release(f"test/{op[1]}")
    return None


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=4, max_size=40))
def test_cached_answers_equal_uncached_answers_call_for_call(ops):
    cached, fresh = _service(cache=True), _service(cache=False)
    for serial, op in enumerate(ops):
        assert _apply(cached, op, serial) == _apply(fresh, op, serial), op
        # After every step, every pod shape asks about every node: a stale entry shows.
        present = [n for n in NODES if n in cached.state.nodes]
        for shape in SHAPES:
            for kind in ("filter", "prioritize"):
                probe = (kind, shape, present)
                assert _apply(cached, probe, serial) == _apply(fresh, probe, serial), (op, probe)
    assert cached.state.snapshot_used() == fresh.state.snapshot_used()
