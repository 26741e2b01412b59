"""The bind verb as the last check: a pod that no longer fits is refused, and pods turned away
for room that muster held are retried when it lets the room go."""

from __future__ import annotations

import asyncio

import pytest

from extender.core import gang
from extender.service import BindError
from tests import builders
from tests.builders import member
from tests.fakes import gang_service as make_service
from tests.fakes import names, settle


async def test_two_pods_that_passed_filter_on_the_last_room_cannot_both_bind():
    service, _, binder = make_service(nodes=1, cpu="4")
    first, second = (builders.pod(n, uid=n, cpu="3") for n in ("first", "second"))
    for pod in (first, second):
        service.apply_pod(pod)
        assert service.filter(pod, ["n0"]).passed == ["n0"]  # the scheduler filters both first
    await service.bind(namespace="default", name="first", uid="first", node_name="n0")
    with pytest.raises(BindError, match="pod default/second no longer fits n0: Insufficient cpu"):
        await service.bind(namespace="default", name="second", uid="second", node_name="n0")
    assert binder.calls == ["first"]
    assert service.state.snapshot_used()["n0"]["cpu"] == 3000


async def test_pods_turned_away_by_a_reservation_are_retried_when_it_is_released():
    service, notifier, _ = make_service(nodes=2, timeout=5, cpu="4")
    gang_pods = [member(n, cpu="4", min_count=2) for n in "ab"]
    for pod in gang_pods:
        service.apply_pod(pod)
    service.filter(gang_pods[0], names(service))  # planned: both nodes reserved
    plain = builders.pod("plain", uid="plain", cpu="1")
    service.apply_pod(plain)
    turned_away = service.filter(plain, names(service))
    assert turned_away.passed == [] and set(turned_away.failed.values()) == {"Insufficient cpu"}
    assert "plain" not in notifier.nudged
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    waiting = asyncio.create_task(
        service.bind(namespace="default", name="a", uid="a", node_name=group.plan["a"])
    )
    await settle()
    service.timers.advance(5)  # the gang's deadline: its reservation is released
    with pytest.raises(BindError, match="timed out"):
        await waiting
    assert "plain" in notifier.nudged
    assert service.filter(plain, names(service)).passed


async def test_a_member_replaced_while_the_others_wait_at_the_gate_completes_the_gang():
    service, _, binder = make_service(timeout=30)
    a, b, c = (member(n) for n in "abc")
    for pod in (a, b, c):
        service.apply_pod(pod)
    service.filter(a, names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    waiting = [
        asyncio.create_task(
            service.bind(namespace="default", name=p.name, uid=p.uid, node_name=group.plan[p.uid])
        )
        for p in (a, b)
    ]
    await settle()  # both wait at the gate
    service.remove_pod(c)  # never reached bind; its Job makes a replacement
    assert set(group.plan) == {"a", "b"}
    d = member("d")
    service.apply_pod(d)
    outcome = service.filter(d, names(service))
    assert outcome.passed == [group.plan["d"]]
    await service.bind(namespace="default", name="d", uid="d", node_name=outcome.passed[0])
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    assert sorted(binder.calls) == ["a", "b", "d"]


async def test_pods_turned_away_lately_are_retried_when_a_pod_leaves_its_node():
    # kube-scheduler retries its unschedulable pods when a bound pod goes; muster's watch may
    # see that a moment later, so what it turned away just before is retried once more.
    service, notifier, _ = make_service(nodes=1, cpu="4")  # on a manual clock
    running = builders.pod("running", uid="running", cpu="3", node_name="n0")
    early, late = (builders.pod(n, uid=n, cpu="2") for n in ("early", "late"))
    for pod in (running, early, late):
        service.apply_pod(pod)
    assert not service.filter(early, ["n0"]).passed
    service.timers.advance(10)
    assert not service.filter(late, ["n0"]).passed
    service.timers.advance(1)
    assert notifier.nudged == []
    service.remove_pod(running)
    assert notifier.nudged == ["late"]  # "early" was turned away long before: not stale
    assert service.filter(late, ["n0"]).passed
