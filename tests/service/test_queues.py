"""Queue admission through the service: quota holds pods back with the numbers, flavors steer
them, usage is released when pods finish, preemption evicts whole workloads, restarts rebuild
usage, and the configuration reloads without losing anything."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path

import pytest

from extender import queuefile
from extender.core import gang, kueue, model
from extender.service import ExtenderService
from tests import builders
from tests.builders import gang_members, queued
from tests.fakes import NODES, schedule, settle
from tests.fakes import queue_service as make_service


def bound(service: ExtenderService, pod: model.Pod) -> model.Pod:
    return service.state.pods[pod.uid]


async def test_nine_cpus_admit_nine_pods_the_tenth_waits_until_one_finishes():
    service, notifier, _ = make_service()
    pods = [queued(f"p{i}", created=f"2025-01-01T00:00:{i:02d}Z") for i in range(10)]
    placed = [await schedule(service, p) for p in pods]
    assert all(n in ("n0", "n2") for n in placed[:9])  # on-demand nodes only
    assert placed[9] == (
        "queue default/user-queue -> cluster-queue: cpu 1 requested, 0 of 9 free in flavor "
        "on-demand; cpu 1 requested, 0 of 0 free in flavor spot (never fits: at most 0); "
        "position 1 of 1"
    )
    assert ("p9", "QueuePending", placed[9]) in notifier.events
    # p0 succeeds: its cpu goes back to the queue and p9 is admitted (and nudged) at once.
    service.apply_pod(model_with(bound(service, pods[0]), phase="Succeeded"))
    assert "p9" not in notifier.nudged  # the cycle is asked for soon, not run inside the watch
    service.timers.advance()  # the cycle asked for runs
    assert "p9" in notifier.nudged
    assert await schedule(service, pods[9]) in ("n0", "n2")


def test_changes_ask_the_services_timers_for_one_cycle_and_a_filter_call_runs_a_due_one():
    service, _, _ = make_service(cpu=1)
    timers, cycle = service.timers, service.admission.cycle
    timers.advance()  # what building and configuring asked for
    assert timers.scheduled == [] and not cycle.due
    cycle.changed()
    cycle.changed(full=False)
    assert cycle.due and len(timers.scheduled) == 1  # one cycle for both changes
    timers.advance()
    assert not cycle.due and timers.scheduled == []
    # A filter call finds the cycle due and runs it at once; the one asked for finds none due.
    cycle.changed()
    pod = queued("first")
    service.apply_pod(pod)
    assert service.filter(pod, NODES).passed
    assert not cycle.due and len(timers.scheduled) == 1
    timers.advance()
    assert not cycle.due and timers.scheduled == []


def model_with(pod: model.Pod, **changes) -> model.Pod:
    return dataclasses.replace(pod, **changes)


async def test_admitted_pods_are_held_to_their_flavors_nodes():
    service, _, _ = make_service()
    pod = queued("steered")
    service.apply_pod(pod)
    outcome = service.filter(pod, NODES)
    assert outcome.passed == ["n0", "n2"]
    assert outcome.unresolvable == {
        "n1": "node(s) didn't match node selector",
        "n3": "node(s) didn't match node selector",
    }


async def test_pods_without_a_queue_label_bypass_quota():
    service, _, _ = make_service(cpu=0)
    plain = builders.pod("plain", uid="plain", cpu="1")
    service.apply_pod(plain)
    assert service.filter(plain, NODES).passed == NODES


async def test_unknown_queue_and_priority_class_say_what_is_missing():
    service, _, _ = make_service()
    lost = queued("lost", queue="nope")
    assert await schedule(service, lost) == "queue default/nope: LocalQueue default/nope not found"
    odd = queued("odd", labels={kueue.PRIORITY_CLASS_LABEL: "gold"})
    assert await schedule(service, odd) == (
        "queue default/user-queue: WorkloadPriorityClass gold not found"
    )


async def test_a_gang_is_admitted_whole_once_its_quorum_exists():
    service, _, _ = make_service(cpu=4)
    members = gang_members("train", "m", "1")
    service.apply_pod(members[0])
    first = service.filter(members[0], NODES)
    assert not first.passed
    assert set(first.unresolvable.values()) == {
        "queue default/user-queue: waiting for gang default/train/main: 1/3 pods"
    }
    for m in members[1:]:
        service.apply_pod(m)
    outcome = service.filter(members[0], NODES)
    assert len(outcome.passed) == 1  # planned and steered by the gang coordinator
    assert service.admission.ledger.book.used("cluster-queue", ("on-demand", "cpu")) == 3000


async def test_a_gang_that_exceeds_its_quota_holds_no_capacity():
    service, _, _ = make_service(cpu=4)
    members = gang_members("big", "b", "2")
    for m in members:
        service.apply_pod(m)
    outcome = service.filter(members[0], NODES)
    assert not outcome.passed
    assert "cpu 6 requested, 4 of 4 free in flavor on-demand" in outcome.unresolvable["n0"]
    assert all(not claims for claims in service.state.snapshot_used().values() if claims)
    assert service.state.claim_of("gang/" + members[0].uid) is None


async def test_a_higher_priority_workload_preempts_and_is_admitted_when_the_victim_is_gone():
    service, notifier, evictor = make_service(cpu=4)
    low = queued("low", "4", priority=-1)
    assert await schedule(service, low) in ("n0", "n2")
    urgent = queued("urgent", "2", labels={kueue.PRIORITY_CLASS_LABEL: "urgent"})
    evictor.service = None  # the victim's pod stays until removed below
    first = await schedule(service, urgent)
    assert "preempting 1 workload(s)" in first
    await settle()  # the eviction task runs
    assert evictor.evicted == ["low"]
    why = "preempted to admit pod/default/urgent (priority 1000) within its ClusterQueue"
    assert ("low", "QueueEvicted", why) in notifier.events
    record = service.admission.lifecycle.records[builders.workload_key("pod/default/low")]
    preempted = record.conditions["Preempted"]
    assert (preempted.status, preempted.reason, preempted.message) == (
        True,
        "InClusterQueue",
        why,
    )
    service.remove_pod(bound(service, low))
    assert await schedule(service, urgent) in ("n0", "n2")


async def test_restart_rebuilds_usage_from_bound_pods_and_never_over_admits():
    service, _, _ = make_service(cpu=4)
    running = [queued(f"r{i}", "2", node_name="n0") for i in range(2)]
    service.replace_pods(running)
    assert service.admission.ledger.book.used("cluster-queue", ("on-demand", "cpu")) == 4000
    late = queued("late", "1")
    assert "0 of 4 free" in await schedule(service, late)


async def test_a_spot_node_charges_the_spot_flavor_after_a_restart():
    service, _, _ = make_service(cpu=4)
    service.replace_pods([queued("s", "1", node_name="n1")])
    assert service.admission.ledger.book.used("cluster-queue", ("spot", "cpu")) == 1000


async def test_reloading_a_larger_quota_admits_waiting_pods_and_hold_and_drain_evicts():
    service, notifier, evictor = make_service(cpu=1)
    first, second = queued("first"), queued("second")
    assert await schedule(service, first) in ("n0", "n2")
    assert "0 of 1 free" in await schedule(service, second)
    service.admission.configure(builders.queue_config(2))
    service.timers.advance()  # the cycle asked for runs
    assert "second" in notifier.nudged
    assert await schedule(service, second) in ("n0", "n2")
    service.admission.configure(
        builders.queue_config(
            2, **{"namespaceSelector: {}": ("namespaceSelector: {}\n  stopPolicy: HoldAndDrain")}
        )
    )
    service.timers.advance()  # the cycle drains the stopped queue
    await settle()  # the eviction tasks run
    assert sorted(evictor.evicted) == ["first", "second"]
    third = queued("third")
    assert await schedule(service, third) == (
        "queue default/user-queue: ClusterQueue cluster-queue is stopped (HoldAndDrain)"
    )


def test_debug_view_lists_usage_and_pending_in_order():
    service, _, _ = make_service(cpu=1)
    for name in ("a", "b", "c"):
        pod = queued(name)
        service.apply_pod(pod)
        service.filter(pod, NODES)
    view = service.admission.describe()
    (cq,) = view["clusterQueues"]
    assert cq["name"] == "cluster-queue"
    cpu = next(u for u in cq["usage"] if u["flavor"] == "on-demand" and u["resource"] == "cpu")
    assert (cpu["used"], cpu["nominal"]) == (1000, 1000)
    assert cq["admitted"] == ["pod/default/a"]
    assert [p["workload"] for p in cq["pending"]] == ["pod/default/b", "pod/default/c"]
    assert [p["position"] for p in cq["pending"]] == [1, 2]


def test_a_changed_file_that_is_invalid_keeps_the_last_good_configuration(tmp_path: Path):
    path = tmp_path / "queues.yaml"
    path.write_text(builders.QUEUE_SETUP.replace("CPU", "9"))
    applied: list[kueue.QueueConfig] = []
    watcher = queuefile.QueueFile(path, applied.append)
    watcher.load_now()
    assert applied[-1].cluster_queues["cluster-queue"].quota("on-demand", "cpu").nominal == 9000
    assert watcher.check() is False  # unchanged
    path.write_text(builders.QUEUE_SETUP.replace("CPU", "nine"))
    os.utime(path, (1, 1))
    assert watcher.check() is False
    assert len(applied) == 1
    assert "ClusterQueue cluster-queue: spec.resourceGroups[0].flavors[0].resources[0]" in (
        watcher.error
    )
    path.write_text(builders.QUEUE_SETUP.replace("CPU", "12"))
    os.utime(path, (2, 2))
    assert watcher.check() is True
    assert applied[-1].cluster_queues["cluster-queue"].quota("on-demand", "cpu").nominal == 12000


def test_an_invalid_file_at_start_is_an_error(tmp_path: Path):
    path = tmp_path / "queues.yaml"
    path.write_text(
        textwrap.dedent("""\
        apiVersion: kueue.x-k8s.io/v1beta1
        kind: ClusterQueue
        metadata: {name: q}
        spec: {queueingStrategy: Random}
        """)
    )
    with pytest.raises(kueue.ConfigError, match=r"queues.yaml: ClusterQueue q: spec"):
        queuefile.QueueFile(path, lambda c: None).load_now()
    with pytest.raises(kueue.ConfigError, match="cannot read"):
        queuefile.load(tmp_path / "missing.yaml")


async def test_an_older_gang_waiting_for_quota_is_not_planned_ahead_of_others():
    service, _, _ = make_service(cpu=1)
    waiting = [
        queued(
            f"w{i}",
            "2",
            labels={gang.WORKLOAD_LABEL: "waiting"},
            annotations={gang.MIN_COUNT_ANNOTATION: "2"},
            created="2025-01-01T00:00:00Z",
        )
        for i in range(2)
    ]
    free = [
        builders.pod(
            f"f{i}",
            uid=f"f{i}",
            cpu="2",
            labels={gang.WORKLOAD_LABEL: "free"},
            annotations={gang.MIN_COUNT_ANNOTATION: "2"},
            created="2025-01-01T00:01:00Z",
        )
        for i in range(2)
    ]
    for pod in waiting + free:
        service.apply_pod(pod)
    assert not service.filter(waiting[0], NODES).passed  # 4 cpu requested, quota 1
    assert len(service.filter(free[0], NODES).passed) == 1  # planned, alone
    reserved = {uid for uid in ("w0", "w1") if service.state.claim_of("gang/" + uid)}
    assert reserved == set()


async def test_debug_queues_endpoint_serves_the_view(aiohttp_client):
    from extender.web.app import make_app

    service, _, _ = make_service(cpu=1)
    for name in ("a", "b"):
        pod = queued(name)
        service.apply_pod(pod)
        service.filter(pod, NODES)
    client = await aiohttp_client(make_app(service))
    response = await client.get("/debug/queues")
    assert response.status == 200
    body = await response.json()
    assert body["clusterQueues"][0]["pending"][0]["workload"] == "pod/default/b"
    assert body["configError"] == ""


async def test_namespace_selector_reads_the_watched_namespace_labels():
    service, _, _ = make_service()
    service.admission.configure(
        builders.queue_config(
            **{"namespaceSelector: {}": "namespaceSelector: {matchLabels: {team: a}}"}
        )
    )
    pod = queued("p")
    assert await schedule(service, pod) == (
        "queue default/user-queue: namespace default is not selected by ClusterQueue cluster-queue"
    )
    service.apply_namespace(model.Namespace("default", {"team": "a"}))
    assert await schedule(service, pod) in ("n0", "n2")


async def test_a_pod_that_requests_the_reserved_pods_resource_is_refused():
    service, _, _ = make_service()
    greedy = queued("greedy", requests={"cpu": "1", "pods": "2"})
    assert greedy.requests_pods
    assert await schedule(service, greedy) == (
        "queue default/user-queue: pod default/greedy requests the reserved resource pods; "
        "the queue counts pods itself"
    )


async def test_an_arrival_that_goes_ahead_of_the_waiting_line_reorders_it():
    service, _, _ = make_service(cpu=1)
    for i, name in enumerate(("a", "b", "c")):
        pod = queued(name, created=f"2025-01-01T00:00:0{i}Z")
        service.apply_pod(pod)
        service.filter(pod, NODES)
    positions = {str(k): p.position for k, p in service.admission.cycle.pending.items()}
    assert positions == {"pod/default/b": 1, "pod/default/c": 2}
    urgent = queued(
        "d", labels={kueue.PRIORITY_CLASS_LABEL: "urgent"}, created="2025-01-01T00:00:09Z"
    )
    service.apply_pod(urgent)
    service.filter(urgent, NODES)
    positions = {str(k): p.position for k, p in service.admission.cycle.pending.items()}
    assert positions == {"pod/default/d": 1, "pod/default/b": 2, "pod/default/c": 3}
    late = queued("e", created="2025-01-01T00:00:10Z")
    service.apply_pod(late)
    assert service.filter(late, NODES).unresolvable["n0"].endswith("position 4 of 4")


async def test_a_waiting_pod_with_an_unknown_node_name_is_a_bad_request():
    from extender.service import RequestError

    service, _, _ = make_service(cpu=0)
    pod = queued("waits")
    service.apply_pod(pod)
    with pytest.raises(RequestError, match="unknown node"):
        service.filter(pod, ["n0", "ghost"])
