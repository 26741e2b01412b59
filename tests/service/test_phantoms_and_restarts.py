"""The real world around the service: pods known only from the wire (forged, or deleted before
the watch saw them), deletions that race scheduler calls, binds that must name the very pod,
a view that resyncs after an outage, and bind calls whose caller went away."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from extender.core import cluster, gang, kueue, model
from extender.service import BindError, ExtenderService, NotFound
from extender.settings import Settings
from tests import builders
from tests.builders import member, queued
from tests.fakes import FakeClock, FlakyBinder, RecordingNotifier, names

TTL = 10.0
QUEUE = kueue.QUEUE_LABEL


def make_service(
    *, nodes: int = 4, cpu: str = "4", quota_cpu: int | None = None
) -> tuple[ExtenderService, RecordingNotifier, FlakyBinder, FakeClock]:
    clock = FakeClock()
    state = cluster.ClusterState()
    notifier = RecordingNotifier()
    binder = FlakyBinder(state, set())
    service = ExtenderService(
        state=state,
        binder=binder,
        notifier=notifier,
        settings=Settings(gang_timeout_seconds=30, tentative_seconds=TTL),
        clock=clock,
    )
    for i in range(nodes):
        instance = "on-demand" if i % 2 == 0 else "spot"
        state.upsert_node(builders.node(f"n{i}", cpu=cpu, labels={"instance-type": instance}))
    if quota_cpu is not None:
        service.admission.configure(builders.queue_config(str(quota_cpu)))
    service.mark_synced()
    return service, notifier, binder, clock


def charged_cpu(service: ExtenderService) -> int:
    return sum(
        amount
        for charge in service.admission.ledger.charges.values()
        for (_, resource), amount in charge.usage.items()
        if resource == "cpu"
    )


# -- pods known only from the wire ----------------------------------------------------------


async def test_forged_queued_pods_release_their_quota_when_the_watch_never_confirms_them():
    service, notifier, _, clock = make_service(quota_cpu=3)
    forged = [queued(f"forged-{i}") for i in range(3)]
    for pod in forged:  # filter calls only: the watch never delivers them
        assert service.filter(pod, ["n0"]).passed == ["n0"]
    assert charged_cpu(service) == 3000
    real = queued("real")
    service.apply_pod(real)
    assert not service.filter(real, ["n0"]).passed, "the quota is taken"
    clock.now += TTL - 1
    service.housekeep()
    assert charged_cpu(service) == 3000, "not before the window"
    clock.now += 2
    service.housekeep()
    assert all(p.uid not in service.admission.ledger.charges for p in forged)
    assert service.filter(real, ["n0"]).passed == ["n0"]


async def test_a_forged_gang_member_leaves_the_gang_when_unconfirmed():
    service, _, _, clock = make_service()
    real = [member(n, min_count=3) for n in "ab"]
    for pod in real:
        service.apply_pod(pod)
    forged = member("forged", min_count=3)
    service.filter(forged, names(service))  # completes the quorum on the wire alone
    key = gang.GroupKey("default", "train", "main")
    assert "forged" in service.gangs.groups[key].members
    clock.now += TTL + 1
    service.housekeep()
    group = service.gangs.groups[key]
    assert set(group.members) == {"a", "b"} and not group.plan
    assert "waiting for gang default/train/main: 2/3 pods" in next(
        iter(service.filter(real[0], names(service)).unresolvable.values())
    )


async def test_thousands_of_forged_gang_pods_are_all_dropped():
    service, _, _, clock = make_service()
    for i in range(2000):
        service.filter(member(f"f{i}", workload=f"w{i}", min_count=4), ["n0"])
    assert len(service.gangs.groups) == 2000
    clock.now += TTL + 1
    service.housekeep()
    assert service.gangs.groups == {} and service.gangs.group_of == {}


async def test_nothing_expires_while_the_watch_is_failing_nor_right_after():
    service, _, _, clock = make_service(quota_cpu=3)
    watch_problem = ["pods: watch failing for 5s: ConnectionRefusedError"]
    service.add_readiness_check(lambda: watch_problem[0])
    pod = queued("created-during-the-outage")
    service.filter(pod, ["n0"])
    clock.now += TTL + 1
    service.housekeep()
    assert pod.uid in service.admission.ledger.charges, "the watch could not confirm it"
    watch_problem[0] = ""
    clock.now += 1
    service.housekeep()
    assert pod.uid in service.admission.ledger.charges, "the recovered watch gets the whole window"
    clock.now += TTL
    service.housekeep()
    assert pod.uid not in service.admission.ledger.charges


async def test_a_pod_the_watch_confirms_is_never_expired():
    service, _, _, clock = make_service(quota_cpu=3)
    pod = queued("real")
    service.filter(pod, ["n0"])  # the scheduler was faster than the watch
    service.apply_pod(pod)
    clock.now += TTL + 1
    service.housekeep()
    assert pod.uid in service.admission.ledger.charges


async def test_a_relist_drops_unconfirmed_pods_older_than_the_window_and_keeps_young_ones():
    service, _, _, clock = make_service(quota_cpu=5)
    old, young, listed = queued("old"), queued("young"), queued("listed")
    service.filter(old, ["n0"])
    clock.now += TTL + 1
    service.filter(young, ["n0"])
    service.apply_pod(listed)
    service.filter(listed, ["n0"])
    service.replace_pods([listed])
    assert old.uid not in service.admission.ledger.charges
    charges = service.admission.ledger.charges
    assert young.uid in charges and listed.uid in charges


# -- deletions win --------------------------------------------------------------------------


async def test_a_filter_call_after_the_watch_reported_the_deletion_charges_nothing():
    service, _, _, _ = make_service(quota_cpu=3)
    pod = queued("deleted")
    service.apply_pod(pod)
    service.remove_pod(pod)
    outcome = service.filter(pod, ["n0", "n1"])  # the scheduler's queue lags the watch
    assert outcome.passed == [] and set(outcome.unresolvable.values()) == {
        "pod default/deleted is deleted"
    }
    assert charged_cpu(service) == 0 and pod.uid not in service.admission.waiting.pods
    with pytest.raises(BindError, match="is deleted"):
        await service.bind(namespace="default", name="deleted", uid=pod.uid, node_name="n0")


async def test_a_bind_that_finds_the_pod_gone_releases_its_charge():
    service, _, binder, _ = make_service(quota_cpu=3)
    raw = builders.make_pod("vanished", uid="vanished", cpu="1", labels={QUEUE: "user-queue"})
    pod = service.pod_from_wire(raw)
    assert service.filter(pod, ["n0"]).passed == ["n0"]  # known from the wire only

    async def gone(pod: model.Pod, node_name: str) -> None:
        raise NotFound('pods "vanished" not found', 404)

    binder.bind = gone  # type: ignore[method-assign]
    with pytest.raises(BindError, match="not found"):
        await service.bind(namespace="default", name="vanished", uid=pod.uid, node_name="n0")
    assert charged_cpu(service) == 0
    assert service.state.snapshot_used()["n0"] == {}


# -- bind names the very pod ----------------------------------------------------------------


async def test_a_bind_without_pod_uid_is_refused():
    service, _, binder, _ = make_service()
    pod = builders.pod("p", uid="secret-uid", cpu="1")
    service.apply_pod(pod)
    with pytest.raises(BindError, match="PodUID is required"):
        await service.bind(namespace="default", name="p", uid="", node_name="n0")
    assert binder.calls == []


async def test_a_wrong_pod_uid_is_refused_without_revealing_the_real_one():
    service, _, binder, _ = make_service()
    service.apply_pod(builders.pod("p", uid="secret-uid", cpu="1"))
    with pytest.raises(BindError) as refused:
        await service.bind(namespace="default", name="p", uid="guess", node_name="n0")
    assert "secret-uid" not in str(refused.value) and "does not match" in str(refused.value)
    assert binder.calls == []


async def test_a_pod_of_another_scheduler_is_never_bound():
    service, _, binder, _ = make_service()
    other = builders.pod("dns", uid="dns-uid", cpu="1", namespace="kube-system")
    other = dataclasses.replace(other, scheduler_name="other-scheduler")
    service.apply_pod(other)
    with pytest.raises(BindError, match="scheduler 'other-scheduler'.*does not serve"):
        await service.bind(namespace="kube-system", name="dns", uid="dns-uid", node_name="n0")
    assert binder.calls == []


# -- after the view (re)syncs ---------------------------------------------------------------


async def test_unschedulable_pods_are_nudged_when_the_view_syncs_and_after_a_relist():
    state = cluster.ClusterState()
    notifier = RecordingNotifier()
    service = ExtenderService(
        state=state, binder=FlakyBinder(state, set()), notifier=notifier, settings=Settings()
    )
    refused = dataclasses.replace(builders.pod("refused", uid="r", cpu="1"), unschedulable=True)
    fresh = builders.pod("fresh", uid="f", cpu="1")
    bound = dataclasses.replace(
        builders.pod("bound", uid="b", cpu="1"), node_name="n0", unschedulable=True
    )
    foreign = dataclasses.replace(
        builders.pod("foreign", uid="o", cpu="1"), unschedulable=True, scheduler_name="other"
    )
    service.replace_nodes([builders.node("n0", cpu="4")])
    service.replace_pods([refused, fresh, bound, foreign])
    assert notifier.nudged == [], "not before the view is whole"
    service.mark_synced()
    assert notifier.nudged == ["refused"]
    service.replace_pods([refused, fresh, bound, foreign])  # a relist (after a 410)
    assert notifier.nudged == ["refused", "refused"]


# -- readiness ------------------------------------------------------------------------------


async def test_readiness_names_what_is_wrong():
    state = cluster.ClusterState()
    service = ExtenderService(state=state, binder=FlakyBinder(state, set()), settings=Settings())
    assert service.readiness() == "cluster view not synced yet" and not service.ready
    service.mark_synced()
    problem = [""]
    service.add_readiness_check(lambda: problem[0])
    assert service.ready
    problem[0] = "nodes: watch failing for 4s: ConnectionRefusedError"
    assert service.readiness() == problem[0] and not service.ready


# -- bind calls whose caller went away ------------------------------------------------------


async def test_a_cancelled_bind_leaves_the_gate_and_the_member_keeps_its_place():
    service, _, binder, _ = make_service()
    pods = [member(n, min_count=3) for n in "abc"]
    for pod in pods:
        service.apply_pod(pod)
    service.filter(pods[0], names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    planned = dict(group.plan)
    used_before = service.state.snapshot_used()

    def bind(pod: model.Pod) -> asyncio.Task[None]:
        return asyncio.create_task(
            service.bind(
                namespace="default", name=pod.name, uid=pod.uid, node_name=planned[pod.uid]
            )
        )

    dead = bind(pods[0])  # the scheduler that made this call dies
    await asyncio.sleep(0)
    assert set(group.gate) == {"a"}
    dead.cancel()
    await asyncio.sleep(0)
    assert group.gate == {} and group.plan == planned
    assert service.state.snapshot_used() == used_before, "reserved again, not assumed"
    assert service.state.bound_node("a") == ""
    calls = [bind(p) for p in pods]  # the new scheduler binds all three
    await asyncio.wait_for(asyncio.gather(*calls), 1)
    assert sorted(binder.calls) == ["a", "b", "c"]


async def test_a_second_bind_for_a_waiting_member_takes_the_place_of_the_first():
    service, _, binder, _ = make_service()
    pods = [member(n, min_count=2) for n in "ab"]
    for pod in pods:
        service.apply_pod(pod)
    service.filter(pods[0], names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]

    def bind(pod: model.Pod) -> asyncio.Task[None]:
        return asyncio.create_task(
            service.bind(
                namespace="default", name=pod.name, uid=pod.uid, node_name=group.plan[pod.uid]
            )
        )

    orphan = bind(pods[0])  # its caller is gone but the connection was not seen closing
    await asyncio.sleep(0)
    retry = bind(pods[0])
    with pytest.raises(BindError, match="superseded"):
        await asyncio.wait_for(orphan, 1)
    await asyncio.wait_for(asyncio.gather(retry, bind(pods[1])), 1)
    assert sorted(binder.calls) == ["a", "b"]


# -- a gang is one workload from its first filter call --------------------------------------


async def test_a_queued_gang_member_filtered_before_the_watch_saw_it_is_not_admitted_alone():
    """The scheduler's informer can be faster than muster's watch: the first member's filter
    call is the first muster hears of it (seen as a flaky e2e: the member was admitted as a
    one-pod workload, then evicted alone)."""
    service, _, _, _ = make_service(quota_cpu=8)
    labels = {gang.WORKLOAD_LABEL: "train"}
    annotations = {gang.MIN_COUNT_ANNOTATION: "3"}
    first = queued("train-0", labels=labels, annotations=annotations)
    outcome = service.filter(first, ["n0", "n1"])
    assert outcome.passed == []
    assert "waiting for gang default/train/main: 1/3 pods" in outcome.unresolvable["n0"]
    assert service.admission.ledger.charges == {} and service.admission.ledger.admissions == {}


async def test_a_gang_member_of_a_workload_not_known_yet_waits_with_its_gang():
    service, _, _, _ = make_service(quota_cpu=8)
    first = queued("train-0", labels={gang.WORKLOAD_LABEL: "train"})  # no minCount anywhere
    outcome = service.filter(first, ["n0"])
    assert outcome.passed == [] and "Workload default/train not found" in outcome.unresolvable["n0"]
    assert service.admission.ledger.charges == {}


# -- a re-plan never strands members at the gate --------------------------------------------


async def test_members_waiting_at_the_gate_are_released_when_the_plan_is_let_go():
    service, _, binder, _ = make_service(nodes=2, cpu="4")
    pods = [member(n, min_count=2, cpu="2") for n in "ab"]
    for pod in pods:
        service.apply_pod(pod)
    service.filter(pods[0], names(service))
    group = service.gangs.groups[gang.GroupKey("default", "train", "main")]
    planned = dict(group.plan)
    waiting = asyncio.create_task(
        service.bind(namespace="default", name="a", uid="a", node_name=planned["a"])
    )
    await asyncio.sleep(0)
    # b's planned node is not offered and no offered node fits: the plan is let go
    elsewhere = [n for n in names(service) if n != planned["b"]]
    service.state.claim("someone-else", elsewhere[0], {"cpu": 4000})
    outcome = service.filter(pods[1], elsewhere)
    assert outcome.passed == [] and "re-planning" in outcome.unresolvable[elsewhere[0]]
    with pytest.raises(BindError, match="re-planned"):
        await asyncio.wait_for(waiting, 1)
    assert group.gate == {} and group.plan == {}
    assert service.state.bound_node("a") == ""
    service.state.release("someone-else")
    service.filter(pods[0], names(service))  # the scheduler's retries: a new plan, both bind
    retries = [
        service.bind(namespace="default", name=p.name, uid=p.uid, node_name=group.plan[p.uid])
        for p in pods
    ]
    await asyncio.wait_for(asyncio.gather(*retries), 1)
    assert sorted(binder.calls) == ["a", "b"]
