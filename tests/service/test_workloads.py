"""The workload lifecycle through the service: PodsReady timeouts requeue with backoff and
deactivate at the limit, muster.dev/active, the maximum execution time across admissions,
dynamic reclaim, elastic Jobs and their slices, and state persisted on the pods."""

from __future__ import annotations

import asyncio
import dataclasses

import yaml

from extender.core import gang, kueue, lifecycle, model
from tests import builders
from tests.builders import gang_members, queued
from tests.fakes import NODES, schedule, settle
from tests.fakes import queue_service as make_service

WAIT = """\
---
apiVersion: config.kueue.x-k8s.io/v1beta1
kind: Configuration
waitForPodsReady:
  timeout: {timeout}s
  requeuingStrategy: {{backoffBaseSeconds: {base}, backoffMaxSeconds: 10{limit}}}
"""


def configure(
    service, *, cpu: int = 9, timeout: float = 0.05, base: float = 0.2, limit: int | None = None
) -> None:
    text = builders.queue_setup(cpu) + WAIT.format(
        timeout=timeout, base=base, limit=f", backoffLimitCount: {limit}" if limit else ""
    )
    service.admission.configure(kueue.parse(yaml.safe_load_all(text)))


def record(service, key: str) -> lifecycle.Record:
    return service.admission.lifecycle.records[builders.workload_key(key)]


def ready(pod: model.Pod) -> model.Pod:
    return dataclasses.replace(pod, ready=True, resource_version="2")


async def test_pods_not_ready_in_time_are_evicted_and_requeued_with_backoff():
    service, notifier, evictor = make_service()
    timers = service.timers
    configure(service, timeout=0.3, base=0.2)
    pod = queued("slow")
    assert await schedule(service, pod) in ("n0", "n2")
    timers.advance(0.25)
    await settle()
    assert evictor.evicted == []  # within the timeout
    timers.advance(0.15)  # past the timeout: evicted, gone
    await settle()
    assert evictor.evicted == ["slow"]
    state = service.admission.lifecycle._resting[builders.workload_key("pod/default/slow")].requeue
    assert state.count == 1
    assert any(r == "WorkloadRequeued" for _, r, _ in notifier.events)
    # Its controller makes it again: it waits for the backoff, then is admitted (and nudged).
    again = queued("slow", uid="slow-again")  # the pod recreated: a new uid
    assert "requeued 1 time(s) after PodsReady timeout" in await schedule(service, again)
    timers.advance(0.3)  # past the backoff
    await settle()
    assert "slow" in notifier.nudged
    assert await schedule(service, again) in ("n0", "n2")
    service.apply_pod(ready(service.state.pods[again.uid]))
    timers.advance(0.4)
    await settle()
    assert evictor.evicted == ["slow"]  # Ready in time: it stays
    assert record(service, "pod/default/slow").status is lifecycle.Status.ADMITTED
    assert record(service, "pod/default/slow").conditions["PodsReady"].status


async def schedule_gang(service, pods: list[model.Pod]) -> list[str]:
    """Filter every member, then bind them all at once (a gang's binds wait at its gate);
    returns the nodes, or the first rejection."""
    for pod in pods:
        service.apply_pod(pod)
    chosen = []
    for pod in pods:
        outcome = service.filter(pod, NODES)
        if not outcome.passed:
            return [next(iter({**outcome.unresolvable, **outcome.failed}.values()))]
        chosen.append(outcome.passed[0])
    binds = (
        service.bind(namespace=p.namespace, name=p.name, uid=p.uid, node_name=node)
        for p, node in zip(pods, chosen, strict=True)
    )
    await asyncio.wait_for(asyncio.gather(*binds), 2)
    return chosen


async def test_a_gang_replacement_arriving_during_its_eviction_waits_for_the_gang():
    """The Job recreates evicted pods while the old ones are still terminating: the new pods
    belong to the gang's next admission, not to admissions of their own."""
    service, _, evictor = make_service()
    evictor.service = None  # evicted pods linger, terminating, until removed below
    configure(service, timeout=0.2, base=0.01)
    old = gang_members("train", "old", "1")
    assert set(await schedule_gang(service, old)) <= set(NODES)
    service.timers.advance(0.3)  # past the PodsReady timeout
    await settle()
    assert sorted(evictor.evicted) == ["old0", "old1", "old2"]
    new = gang_members("train", "new")
    for pod in new:
        service.apply_pod(pod)
        assert not service.filter(pod, NODES).passed
    assert not any(pod.uid in service.admission.ledger.charges for pod in new)
    for pod in old:
        service.remove_pod(pod)
    service.timers.advance(0.1)  # past the backoff
    await settle()
    assert set(await schedule_gang(service, new)) <= set(NODES)
    assert {str(service.admission.ledger.charges[pod.uid].workload) for pod in new} == {
        "gang/default/train/main"
    }


async def test_the_backoff_limit_deactivates_and_active_true_queues_again():
    service, notifier, evictor = make_service()
    configure(service, limit=1, base=0.01)
    for attempt in range(2):
        pod = queued("flaky", uid=f"flaky-{attempt}")  # recreated each time: a new uid
        service.timers.advance(0.05)  # past the backoff of the previous attempt
        await settle()
        service.admission.run_cycle()
        assert await schedule(service, pod) in ("n0", "n2"), attempt
        service.timers.advance(0.1)  # past the PodsReady timeout
        await settle()
    assert evictor.evicted == ["flaky", "flaky"]
    back = queued("flaky", uid="flaky-back")
    reason = await schedule(service, back)
    assert reason.startswith(
        "queue default/user-queue: workload deactivated: RequeuingLimitExceeded"
    )
    persisted = notifier.annotated[-1][1]
    assert persisted[lifecycle.ACTIVE_ANNOTATION] == "false"
    assert persisted[lifecycle.REQUEUE_COUNT_ANNOTATION] == "1"
    # The user sets muster.dev/active back to "true": queued again, requeue state reset.
    activated = dataclasses.replace(
        back,
        annotations={**back.annotations, lifecycle.ACTIVE_ANNOTATION: "true"},
        resource_version="9",
    )
    service.apply_pod(activated)
    assert record(service, "pod/default/flaky").requeue == lifecycle.RequeueState()
    assert await schedule(service, activated) in ("n0", "n2")


async def test_active_false_evicts_a_running_workload_and_never_requeues_it():
    service, _, evictor = make_service()
    pod = queued("paused")
    assert await schedule(service, pod) in ("n0", "n2")
    bound = service.state.pods[pod.uid]
    service.apply_pod(
        dataclasses.replace(
            bound, annotations={lifecycle.ACTIVE_ANNOTATION: "false"}, resource_version="3"
        )
    )
    await settle()  # the eviction task runs
    assert evictor.evicted == ["paused"]
    again = queued("paused", uid="paused-again")
    reason = await schedule(service, again)
    assert "workload deactivated: InactiveWorkload" in reason


async def test_maximum_execution_time_counts_earlier_admissions():
    service, _, evictor = make_service()
    pod = queued("bounded", labels={lifecycle.MAX_EXEC_LABEL: "2"})
    service.apply_pod(pod)
    key = builders.workload_key("pod/default/bounded")
    service.admission.lifecycle.record(key, "default").accumulated = 1.5
    assert await schedule(service, pod) in ("n0", "n2")
    service.timers.advance(0.25)
    await settle()
    assert evictor.evicted == []  # 1.5 s before, 0.25 s now: within 2 s
    service.timers.advance(0.25)  # 1.5 s before, 0.5 s now: 2 s reached
    await settle()
    assert evictor.evicted == ["bounded"]
    rested = service.admission.lifecycle._resting[builders.workload_key("pod/default/bounded")]
    assert not rested.active
    assert rested.deactivation.startswith("MaximumExecutionTimeExceeded")
    assert rested.accumulated == 0.0  # reset on deactivation, as Kueue does


async def test_finished_pods_give_their_quota_back_at_once():
    service, _, _ = make_service(cpu=4)
    members = gang_members("sweep", "s", "1")
    for m in members:
        service.apply_pod(m)
    service.filter(members[0], NODES)
    used = service.admission.ledger.book.used
    assert used("cluster-queue", ("on-demand", "cpu")) == 3000
    service.apply_pod(dataclasses.replace(members[0], phase="Succeeded", resource_version="5"))
    assert used("cluster-queue", ("on-demand", "cpu")) == 2000
    view = {w["key"]: w for w in service.admission.lifecycle.describe()}
    assert view["gang/default/sweep/main"]["reclaimablePods"] == 1


def job_pod(name: str, cpu: str = "1", **annotations: str) -> model.Pod:
    pod = queued(name, cpu, annotations={lifecycle.ELASTIC_ANNOTATION: "true", **annotations})
    return dataclasses.replace(pod, owner=("Job", "train"))


async def test_an_elastic_job_grows_by_slices_in_its_flavor_and_shrinks_in_place():
    service, notifier, _ = make_service(cpu=4)
    config = kueue.parse(
        yaml.safe_load_all(
            builders.QUEUE_SETUP.replace("nominalQuota: CPU", "nominalQuota: 4").replace(
                "[{name: cpu, nominalQuota: 0}, {name: memory, nominalQuota: 0}]",
                "[{name: cpu, nominalQuota: 8}, {name: memory, nominalQuota: 8Gi}]",
            )
        )
    )
    service.admission.configure(config)
    used = service.admission.ledger.book.used
    first = [job_pod(f"j{i}") for i in range(3)]
    for p in first:
        service.apply_pod(p)
    assert (await schedule(service, first[0])) in ("n0", "n2")
    assert used("cluster-queue", ("on-demand", "cpu")) == 3000
    # Scaled 3 -> 5: one more fits on-demand, the second would not; the slice never spills
    # into spot, it waits for its own flavor.
    grown = [job_pod(f"j{i}") for i in (3, 4)]
    for p in grown:
        service.apply_pod(p)
    reason = await schedule(service, grown[0])
    assert "cpu 2 requested, 1 of 4 free in flavor on-demand" in reason
    assert used("cluster-queue", ("spot", "cpu")) == 0
    # 5 -> 2: pods deleted give their quota back, and the grown slice now fits.
    for p in first[1:3]:
        service.remove_pod(p)
    assert used("cluster-queue", ("on-demand", "cpu")) == 1000
    assert (await schedule(service, grown[0])) in ("n0", "n2")
    assert used("cluster-queue", ("on-demand", "cpu")) == 3000
    view = {w["key"]: w for w in service.admission.lifecycle.describe()}["job/default/train"]
    assert view["slice"] == 2 and view["admittedCount"] == 3
    assert any(r == "WorkloadSliceReplaced" for _, r, _ in notifier.events)


async def test_an_elastic_job_cannot_use_partial_admission():
    service, _, _ = make_service()
    pod = job_pod("partial", **{lifecycle.MIN_PARALLELISM_ANNOTATION: "2"})
    assert "cannot use partial admission" in await schedule(service, pod)


async def test_a_restart_restores_requeue_state_from_pod_annotations():
    service, _, _ = make_service()
    configure(service, base=60)
    persisted = lifecycle.Record("pod/default/back", "default")
    persisted.requeue = lifecycle.RequeueState(2, 4.0e9)  # far in the future
    pod = queued("back", annotations=persisted.persisted())
    reason = await schedule(service, pod)
    assert "requeued 2 time(s) after PodsReady timeout" in reason


async def test_labels_are_replicated_into_the_record():
    from extender.core import cluster
    from extender.service import ExtenderService
    from extender.settings import Settings
    from tests.fakes import FlakyBinder, RecordingNotifier

    state = cluster.ClusterState()
    service = ExtenderService(
        state=state,
        binder=FlakyBinder(state, set()),
        notifier=RecordingNotifier(),
        settings=Settings(replicate_labels=("team",)),
    )
    state.upsert_node(builders.node("n0", cpu="8"))
    state.mark_synced()
    service.admission.configure(builders.queue_config(9))
    pod = queued("labelled", labels={"team": "vision", "other": "x"})
    service.apply_pod(pod)
    view = service.admission.lifecycle.describe()
    assert view[0]["labels"] == {"team": "vision"}


async def test_a_ready_workload_that_loses_a_pod_is_evicted_after_the_recovery_timeout():
    service, _, evictor = make_service()
    text = builders.QUEUE_SETUP.replace("nominalQuota: CPU", "nominalQuota: 9") + (
        "---\napiVersion: config.kueue.x-k8s.io/v1beta1\nkind: Configuration\n"
        "waitForPodsReady: {timeout: 5s, recoveryTimeout: 0.1s}\n"
    )
    service.admission.configure(kueue.parse(yaml.safe_load_all(text)))
    pod = queued("steady")
    assert await schedule(service, pod) in ("n0", "n2")
    running = ready(service.state.pods[pod.uid])
    service.apply_pod(running)
    service.timers.advance(10)
    await settle()
    assert evictor.evicted == []  # Ready: nothing happens, past the 5 s timeout too
    service.apply_pod(dataclasses.replace(running, ready=False, resource_version="3"))
    service.timers.advance(0.05)
    await settle()
    assert evictor.evicted == []  # still within the recovery timeout
    service.timers.advance(0.15)
    await settle()
    assert evictor.evicted == ["steady"]


async def test_a_workload_object_turned_inactive_and_active_again():
    service, _, evictor = make_service()
    members = [
        queued(
            f"w{i}",
            labels={gang.WORKLOAD_LABEL: "train", gang.POD_GROUP_LABEL: "workers"},
        )
        for i in range(2)
    ]
    workload = gang.Workload("default", "train", {"workers": gang.PodGroupPolicy(True, 2)})
    service.apply_workload(workload)
    for m in members:
        service.apply_pod(m)
    assert len(service.filter(members[0], NODES).passed) == 1
    service.apply_workload(dataclasses.replace(workload, active=False))
    await settle()  # the eviction tasks run
    assert sorted(evictor.evicted) == ["w0", "w1"]
    back = [queued(f"w{i}", labels=members[0].labels) for i in range(2, 4)]
    for m in back:
        service.apply_pod(m)
    assert "workload deactivated" in next(
        iter(service.filter(back[0], NODES).unresolvable.values())
    )
    service.apply_workload(workload)
    assert len(service.filter(back[0], NODES).passed) == 1


async def test_a_preempted_workload_admitted_again_is_no_longer_marked_preempted():
    service, _, _ = make_service()
    lifecycles = service.admission.lifecycle
    key = builders.workload_key("pod/default/w")
    lifecycles.admitted(key, "default")
    lifecycles.evicted(key, lifecycle.Reason.PREEMPTED, "preempted", preempted="InClusterQueue")
    preempted = record(service, "pod/default/w").conditions["Preempted"]
    assert (preempted.status, preempted.reason) == (True, "InClusterQueue")
    lifecycles.admitted(key, "default")
    assert not record(service, "pod/default/w").conditions["Preempted"].status
