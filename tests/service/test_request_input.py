"""What the service takes from a request: the pod (converted once per spec) and the offered
node names (checked on every path, even where the fast paths do not look at them one by one)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from extender.core import cluster, objects
from extender.service import ExtenderService, RequestError
from extender.settings import Settings
from tests import builders
from tests.fakes import FakeBinder

GANG = {"labels": {"muster.dev/workload": "w"}, "annotations": {"muster.dev/min-count": "2"}}


def _service(state: cluster.ClusterState, *, cache: bool) -> ExtenderService:
    return ExtenderService(
        state=state, binder=FakeBinder(), settings=Settings(feasibility_cache=cache)
    )


@pytest.mark.parametrize("cache", [True, False], ids=["cache on", "cache off"])
@pytest.mark.parametrize("member", [{}, GANG], ids=["a plain pod", "a gang member"])
@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["node1", "ghost"], "unknown node(s) 'ghost'"),
        (["node1", 7], "NodeNames must be a list of strings"),
        ([["node1"]], "NodeNames must be a list of strings"),
    ],
    ids=["an unknown name", "a number", "a list"],
)
def test_every_path_refuses_names_that_are_not_nodes_of_the_view(
    state: cluster.ClusterState,
    cache: bool,
    member: dict[str, Any],
    verb: str,
    names: list[Any],
    message: str,
) -> None:
    service = _service(state, cache=cache)
    pod = service.pod_from_wire(builders.make_pod("p", cpu="1", **member))
    for _ in range(2):  # the second time from a warm cache entry
        with pytest.raises(RequestError, match="^" + re.escape(message)):
            getattr(service, verb)(pod, names)
        getattr(service, verb)(pod, ["node1", "node2"])


def test_pods_of_one_template_share_the_converted_spec(state: cluster.ClusterState) -> None:
    service = _service(state, cache=True)
    first, second = (
        builders.make_pod(name, cpu="2", tolerations=[builders.toleration("gpu")])
        for name in ("a", "b")
    )
    assert first["spec"] == second["spec"]
    key = repr(first["spec"]).encode()
    a = service.pod_from_wire(first, spec_key=key)
    b = service.pod_from_wire(second, spec_key=key)
    assert a == objects.to_pod(first) and b == objects.to_pod(second)
    assert b.requests is a.requests and b.uid != a.uid


def test_a_bad_spec_is_refused_every_time(state: cluster.ClusterState) -> None:
    service = _service(state, cache=True)
    raw = builders.make_pod("a", cpu="lots")
    for _ in range(2):
        with pytest.raises(objects.ObjectError, match="not a quantity"):
            service.pod_from_wire(raw, spec_key=b"same")
