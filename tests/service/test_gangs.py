"""Gang scheduling through the service: quorum, plan and reservation, steering, the bind gate,
deadlines, the elastic tail, restarts and preemption."""

from __future__ import annotations

import asyncio

import pytest

from extender.core import gang, model
from extender.service import BindError, Victims
from tests import builders
from tests.builders import member
from tests.fakes import RACK, names, settle
from tests.fakes import gang_service as make_service


def test_members_wait_for_quorum_without_holding_capacity():
    service, notifier, _ = make_service()
    a, b = member("a"), member("b")
    first = service.filter(a, names(service))
    second = service.filter(b, names(service))
    assert first.passed == [] and second.passed == []
    assert set(second.unresolvable.values()) == {"waiting for gang default/train/main: 2/3 pods"}
    assert all(not used.get("cpu") for used in service.state.snapshot_used().values())
    assert ("a", "GangWaiting", "waiting for gang default/train/main: 1/3 pods") in notifier.events


def test_quorum_plans_the_whole_gang_reserves_it_and_nudges_the_others():
    service, notifier, _ = make_service()
    a, b, c = member("a"), member("b"), member("c")
    service.filter(a, names(service))
    service.filter(b, names(service))
    outcome = service.filter(c, names(service))
    assert len(outcome.passed) == 1
    plan = service.gangs.groups[gang.GroupKey("default", "train", "main")].plan
    assert set(plan) == {"a", "b", "c"}
    assert outcome.passed == [plan["c"]]
    reserved = sum(u.get("cpu", 0) for u in service.state.snapshot_used().values())
    assert reserved == 6000
    assert sorted(notifier.nudged) == ["a", "b"]
    # a member asking again passes exactly its planned node, every other node is explained
    again = service.filter(a, names(service))
    assert again.passed == [plan["a"]] and len(again.unresolvable) == 3


def test_reserved_capacity_is_used_capacity_for_everyone_else():
    service, _, _ = make_service(nodes=2)  # 8 cpu, one rack
    for name in "abc":
        service.filter(member(name), names(service))  # plans 3 x 2 cpu
    outsider = builders.pod("big", cpu="3")
    outcome = service.filter(outsider, names(service))
    assert outcome.passed == []
    assert set(outcome.failed.values()) == {"Insufficient cpu"}


def test_unplaceable_gang_holds_nothing_and_says_why():
    service, notifier, _ = make_service(nodes=2)
    pods = [member(f"m{i}", min_count=5) for i in range(5)]
    for pod in pods:
        outcome = service.filter(pod, names(service))
    assert set(outcome.unresolvable.values()) == {
        "gang default/train/main: gang needs 5 x {cpu: 2}; best domain fits 4"
    }
    assert all(not u.get("cpu") for u in service.state.snapshot_used().values())
    assert any(reason == "GangUnplaceable" for _, reason, _ in notifier.events)


def test_steering_moves_a_member_to_an_offered_node_when_its_planned_one_is_not_offered():
    service, _, _ = make_service()
    for name in "abc":
        service.filter(member(name), names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    planned = group.plan["a"]
    offered = [n for n in names(service) if n != planned]
    outcome = service.filter(member("a"), offered)
    assert len(outcome.passed) == 1 and outcome.passed[0] != planned
    assert group.plan["a"] == outcome.passed[0]
    assert service.state.claim_of("gang/a") == outcome.passed[0]


async def test_bind_waits_at_the_gate_until_every_member_arrives():
    service, notifier, binder = make_service()
    pods = [member(n) for n in "abc"]
    for pod in pods:
        service.filter(pod, names(service))
    plan = dict(service.gangs.groups[gang.GroupKey("default", "train", "main")].plan)

    def bind(pod: model.Pod) -> asyncio.Task[None]:
        return asyncio.create_task(
            service.bind(namespace="default", name=pod.name, uid=pod.uid, node_name=plan[pod.uid])
        )

    first, second = bind(pods[0]), bind(pods[1])
    await settle()
    assert not first.done() and not second.done()
    assert binder.calls == []
    third = bind(pods[2])
    await asyncio.wait_for(asyncio.gather(first, second, third), 1)
    assert sorted(binder.calls) == ["a", "b", "c"]
    assert {service.state.pods[p].node_name for p in plan} == set(plan.values())
    assert any(reason == "GangBound" for _, reason, _ in notifier.events)


async def test_deadline_fails_every_waiting_bind_and_releases_the_reservation():
    service, notifier, binder = make_service(timeout=5)
    timers = service.timers
    pods = [member(n) for n in "abc"]
    for pod in pods:
        service.filter(pod, names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    planned = group.plan["a"]
    waiting = asyncio.create_task(
        service.bind(namespace="default", name="a", uid="a", node_name=planned)
    )
    await settle()
    timers.advance(4.9)
    await settle()
    assert not waiting.done()  # the deadline has not passed yet
    timers.advance(0.1)
    with pytest.raises(BindError, match="timed out after 5s: 1/3 planned member"):
        await waiting
    assert binder.calls == []
    assert all(not u.get("cpu") for u in service.state.snapshot_used().values())
    assert group.plan == {} and group.attempts == 1
    backing_off = service.filter(pods[1], names(service))
    assert backing_off.passed == []
    assert "backing off" in next(iter(backing_off.unresolvable.values()))
    assert any(reason == "GangBackingOff" for _, reason, _ in notifier.events)
    # At the end of the backoff (60 s, the first of the exponential steps) the waiting
    # members are nudged, so the scheduler retries them into a new plan.
    notifier.nudged.clear()
    timers.advance(59.9)
    assert notifier.nudged == []
    timers.advance(0.1)
    assert sorted(notifier.nudged) == ["a", "b", "c"]
    assert len(service.filter(pods[1], names(service)).passed) == 1


def test_a_planned_gangs_deadline_timer_is_cancelled_when_the_service_closes():
    service, _, _ = make_service(timeout=5)
    timers = service.timers
    for name in "abc":
        service.filter(member(name), names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    assert group.timer is not None and timers.scheduled == [group.timer]
    service.close()
    assert group.timer.cancelled() and timers.scheduled == []
    timers.advance(3600)
    assert set(group.plan) == {"a", "b", "c"} and group.attempts == 0


async def test_failed_binding_is_reported_and_only_that_member_is_replanned():
    service, _, binder = make_service(fail={"b"})
    pods = [member(n) for n in "abc"]
    for pod in pods:
        service.filter(pod, names(service))
    plan = dict(service.gangs.groups[gang.GroupKey("default", "train", "main")].plan)
    results = await asyncio.gather(
        *(
            service.bind(namespace="default", name=p.name, uid=p.uid, node_name=plan[p.uid])
            for p in pods
        ),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BindError)]
    assert len(errors) == 1 and "binding gang member default/b" in str(errors[0])
    binder.fail.clear()
    retry = service.filter(pods[1], names(service))
    assert len(retry.passed) == 1


async def test_members_beyond_min_count_schedule_individually_once_the_gang_is_bound():
    service, _, _ = make_service()
    pods = [member(n) for n in "abcd"]
    for pod in pods:
        service.filter(pod, names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    assert "d" not in group.plan
    held = service.filter(pods[3], names(service))
    assert held.passed == [] and "wait for it" in next(iter(held.unresolvable.values()))
    plan = dict(group.plan)
    await asyncio.gather(
        *(
            service.bind(namespace="default", name=p.name, uid=p.uid, node_name=plan[p.uid])
            for p in pods[:3]
        )
    )
    tail = service.filter(pods[3], names(service))
    assert len(tail.passed) >= 1


def test_after_a_restart_bound_members_count_and_the_rest_are_planned_around_them():
    service, _, _ = make_service()
    bound = member("a", node_name="n0")
    service.replace_pods([bound, member("b"), member("c")])
    outcome = service.filter(member("b"), names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    assert set(group.plan) == {"b", "c"}
    assert len(outcome.passed) == 1


def test_two_competing_gangs_never_hold_half_each():
    service, _, _ = make_service(nodes=2)  # 8 cpu: room for one gang of 3 x 2 cpu
    for i in range(3):
        service.filter(member(f"x{i}", workload="x"), names(service))
        service.filter(member(f"y{i}", workload="y"), names(service))
    x = service.gangs.groups[gang.GroupKey("default", "x", "main")]
    y = service.gangs.groups[gang.GroupKey("default", "y", "main")]
    assert (len(x.plan), len(y.plan)) in ((3, 0), (0, 3))


def test_higher_priority_gang_is_planned_first():
    service, _, _ = make_service(nodes=2)
    for i in range(3):
        service.apply_pod(member(f"hi{i}", workload="hi", priority=100))
    for i in range(3):
        service.filter(member(f"lo{i}", workload="lo"), names(service))
    hi = service.gangs.groups[gang.GroupKey("default", "hi", "main")]
    lo = service.gangs.groups[gang.GroupKey("default", "lo", "main")]
    assert len(hi.plan) == 3 and lo.plan == {}


def test_preemption_never_takes_part_of_a_gang():
    service, _, _ = make_service()
    service.replace_pods(
        [
            member("a", node_name="n0"),
            member("b", node_name="n1"),
            member("c", node_name="n1"),
            builders.pod("solo", uid="solo", node_name="n2"),
        ]
    )
    candidates = {
        "n0": Victims(uids=("a",)),
        "n1": Victims(uids=("b", "c")),
        "n2": Victims(uids=("solo",)),
    }
    assert set(service.preempt(builders.pod("p"), candidates)) == {"n2"}
    whole = {"n0": Victims(uids=("a", "b", "c"))}
    assert service.preempt(builders.pod("p"), whole) == whole


def test_workload_object_decides_min_count_and_a_missing_group_waits_with_the_reason():
    service, _, _ = make_service()
    service.apply_workload(
        gang.Workload("default", "train", {"main": gang.PodGroupPolicy(gang=True, min_count=2)})
    )
    service.filter(member("a", min_count=9), names(service))
    outcome = service.filter(member("b", min_count=9), names(service))
    assert len(outcome.passed) == 1
    stray = builders.pod(
        "s", uid="s", labels={gang.WORKLOAD_LABEL: "train", gang.POD_GROUP_LABEL: "ps"}
    )
    waiting = service.filter(stray, names(service))
    assert set(waiting.unresolvable.values()) == {
        "waiting for gang default/train/ps: pod group 'ps' not in Workload default/train"
    }


def test_steering_prefers_an_offered_node_in_the_plans_own_domain():
    service, _, _ = make_service()  # racks r0 = n0, n1 and r1 = n2, n3
    for name in "ab":
        service.filter(member(name, min_count=2, cpu="1"), names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    assert group.domain == f"{RACK}=r0" and group.plan["a"] == "n0"
    outcome = service.filter(member("a", min_count=2, cpu="1"), ["n2", "n3", "n1"])
    assert outcome.passed == ["n1"]


async def test_a_member_bound_outside_the_gate_counts_as_bound():
    service, _, _ = make_service()
    pods = [member(n) for n in "abcd"]
    for pod in pods:
        service.filter(pod, names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    plan = dict(group.plan)
    await asyncio.gather(
        *(
            service.bind(namespace="default", name=p.name, uid=p.uid, node_name=plan[p.uid])
            for p in pods[:3]
        )
    )
    tail = service.filter(pods[3], names(service))
    await service.bind(namespace="default", name="d", uid="d", node_name=tail.passed[0])
    assert group.bound == {"a", "b", "c", "d"}
    three = {"n0": Victims(uids=("a", "b", "c"))}
    assert service.preempt(builders.pod("p"), three) == {}, "d is bound too"
    service.remove_pod(pods[3])
    assert service.preempt(builders.pod("p"), three) == three
