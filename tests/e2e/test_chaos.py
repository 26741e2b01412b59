"""Chaos through the real control plane: muster killed mid-burst, the API server killed and
restarted, kube-scheduler killed while gang members wait at muster's gate, a broken queues file
written while muster runs, and the quota charged for pods that are all gone.

Every test runs its own muster (logs ``logs/muster-chaos-<test id>.<run>.log``) behind
its own recording proxy, and its own kube-scheduler (the shipped configuration) calling that
proxy: killing the session's muster would break the tests after these. The ``chaos`` fixture
puts the control plane back afterwards, pass or fail: kube-apiserver and the controller-manager
running, the session's scheduler variant restored, the session's muster restarted if the API
server went away under it.

Each test prints its figures (``pytest -s``) and carries them in its assertion messages.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
import pytest
from controlplane import ControlPlane, wait_until
from harness import (
    QUEUE_LABEL,
    MusterProcess,
    NodeSet,
    RecordingProxy,
    Sampler,
    create,
    placements,
    pod,
    put_queues,
    queue_setup,
    write_queues,
)

pytestmark = pytest.mark.e2e

READY_DROP_SECONDS = 4.0
"""How soon after the API server dies muster's /readyz must say 503: muster lets a watch fail
for 3 s before it says so (a dropped connection that resumes at once is no outage; README,
"When things go wrong"), plus one reading interval and a little jitter."""


# -----------------------------------------------------------------------------------------------
# the chaos bundle


@dataclass
class Chaos:
    """A muster, a proxy and a kube-scheduler of one chaos test, on the session's API server."""

    cp: ControlPlane
    muster: MusterProcess
    proxy: RecordingProxy
    queues_file: Path
    namespace: str
    nodes: NodeSet
    api_server_restarted: bool = False
    """Set by a test that killed kube-apiserver: the session's muster gets restarted after."""
    findings: list[str] = field(default_factory=list)

    def check(self, ok: bool, message: str) -> None:
        """Record a failed expectation and go on measuring; :meth:`verdict` asserts them all."""
        if not ok:
            self.findings.append(message)

    def verdict(self, figures: str) -> None:
        print(figures)
        assert not self.findings, "\n".join(self.findings) + "\n" + figures


def _install_workload_crd(cp: ControlPlane) -> None:
    cp.kubectl("apply", "-f", str(harness.WORKLOAD_CRD))
    cp.kubectl("wait", "--for=condition=Established", "crd/workloads.muster.dev", "--timeout=30s")


def restore_control_plane(cp: ControlPlane, *, api_server_restarted: bool) -> list[str]:
    """Put back what a chaos test may have taken away; returns what had to be done."""
    done = []
    if not cp.running("kube-apiserver"):
        cp.restart_apiserver()
        done.append("restarted kube-apiserver")
    if not cp.running("kube-controller-manager"):
        cp.restart_controller_manager()
        done.append("restarted kube-controller-manager (it had exited)")
    cp.stop_scheduler()
    switch = harness.shared_schedulers()
    if switch is not None and switch.variant is not None:
        switch.use(switch.variant)
        done.append(f"scheduler back on {switch.variant!r}")
    shared = harness.shared_muster()
    if api_server_restarted and shared is not None and shared.alive():
        # Its watches lived through the same outage; later tests must not depend on whether
        # they recovered (test_api_server_outage checks that on the chaos muster).
        shared.stop()
        shared.start()
        done.append("restarted the session's muster")
    return done


@pytest.fixture
def chaos(
    control_plane: ControlPlane, e2e_namespace: str, e2e_id: str, nodes: NodeSet
) -> Iterator[Chaos]:
    cp = control_plane
    _install_workload_crd(cp)  # muster looks for a served Workload API once, at start
    queues_file = cp.workdir / f"chaos-queues-{e2e_id}.yaml"
    queues_file.write_text("")
    process = MusterProcess(
        cp, extra_args=["--queues", str(queues_file)], name=f"muster-chaos-{e2e_id}"
    )
    proxy = RecordingProxy(process.port).start()
    bundle = Chaos(cp, process, proxy, queues_file, e2e_namespace, nodes)
    harness.REPORT_SECTIONS["chaos"] = lambda: [
        (f"chaos muster log ({process.log_path})", process.log_tail(60)),
        ("chaos proxy calls (last 30)", proxy.summary(30)),
    ]
    try:
        process.start()
        cp.start_scheduler(harness.scheduler_config("shipped", proxy.url), force_local=True)
        yield bundle
    finally:
        harness.REPORT_SECTIONS.pop("chaos", None)
        try:
            done = restore_control_plane(cp, api_server_restarted=bundle.api_server_restarted)
            if done:
                print(f"chaos teardown: {'; '.join(done)}")
        finally:
            process.kill()
            proxy.stop()


# -----------------------------------------------------------------------------------------------
# readings


def queue_usage(chaos: Chaos, cluster_queue: str, resource: str = "cpu") -> int:
    """What muster charges the ClusterQueue for ``resource`` (cpu in millicores)."""
    status, body = chaos.muster.get("/debug/queues")
    if status != 200:
        raise AssertionError(f"/debug/queues -> {status}: {body[:200]}")
    for cq in json.loads(body)["clusterQueues"]:
        if cq["name"] == cluster_queue:
            return sum(int(u["used"]) for u in cq["usage"] if u["resource"] == resource)
    raise AssertionError(f"muster has no ClusterQueue {cluster_queue}")


def readyz(muster: MusterProcess) -> int:
    """muster's /readyz status; 0: no answer within 1 s (a kubelet's default probe timeout)."""
    return muster.get("/readyz", timeout=1.0)[0]


def longest_without(samples: list[tuple[float, int]], status: int) -> float:
    """The longest stretch of consecutive readings other than ``status``, in seconds (from the
    first such reading to the next reading that is ``status``)."""
    longest, since = 0.0, None
    for t, s in samples:
        if s != status and since is None:
            since = t
        elif s == status and since is not None:
            longest, since = max(longest, t - since), None
    if since is not None and samples:
        longest = max(longest, samples[-1][0] - since)
    return longest


def muster_knows_every_node(chaos: Chaos) -> bool:
    count = len(chaos.cp.api("GET", "/api/v1/nodes")["items"])
    return chaos.muster.metric("muster_cluster_nodes") == count


def muster_passes_only(chaos: Chaos, pod_name: str, node: str) -> bool:
    """muster's own answer, as the scheduler would ask it: a filter call for the pod (as the
    API has it) offering only ``node`` passes that node (an unknown node is refused)."""
    raw = chaos.cp.get_pod(pod_name, chaos.namespace)
    args = {"Pod": raw, "Nodes": None, "NodeNames": [node]}
    status, body = chaos.muster.post("/filter", json.dumps(args).encode(), timeout=5)
    return status == 200 and json.loads(body).get("NodeNames") == [node]


def timed(
    fn: Callable[[], object], timeout: float, interval: float = 0.1, *, since: float | None = None
) -> float | None:
    """Seconds from ``since`` (default: now) until ``fn()`` is truthy, or None if it is not
    within ``timeout`` from now."""
    started = time.monotonic() if since is None else since
    try:
        wait_until(fn, timeout, interval)
    except TimeoutError:
        return None
    return time.monotonic() - started


def first_held(
    conditions: Mapping[str, Callable[[], object]], timeout: float, interval: float = 0.1
) -> dict[str, float | None]:
    """Poll all ``conditions`` together until each has held once or ``timeout`` has passed;
    returns when each first held (``time.monotonic()``), None for those that never did."""
    held: dict[str, float | None] = dict.fromkeys(conditions)
    deadline = time.monotonic() + timeout
    while True:
        for name, condition in conditions.items():
            if held[name] is None:
                try:
                    if condition():
                        held[name] = time.monotonic()
                except Exception:  # noqa: BLE001,S110 - not yet (the API may still be starting)
                    pass
        if all(t is not None for t in held.values()) or time.monotonic() >= deadline:
            return held
        time.sleep(interval)


def after(t: float | None, reference: float) -> float | None:
    return None if t is None else t - reference


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}s"


def queued_pod(name: str, selector: Mapping[str, str], cpu: str = "1") -> dict[str, Any]:
    return pod(name, selector, cpu=cpu, labels={QUEUE_LABEL: "user-queue"})


def gang_member(
    name: str, gang: str, selector: Mapping[str, str], *, size: int, **spec: Any
) -> dict[str, Any]:
    return pod(
        name,
        selector,
        cpu="1",
        labels={"muster.dev/workload": gang, "muster.dev/pod-group": "workers"},
        annotations={"muster.dev/min-count": str(size), "muster.dev/gang-timeout-seconds": "120"},
        **spec,
    )


@dataclass(frozen=True)
class Reading:
    """One LIST of the test namespace: where each live pod is, and the cpu of the bound,
    unfinished queued pods."""

    placements: dict[str, str]
    queued_cpu: int


def read_namespace(cp: ControlPlane, namespace: str) -> Reading:
    pods = [p for p in cp.list_pods(namespace) if not p["metadata"].get("deletionTimestamp")]
    queued_cpu = sum(
        harness.requested_cpu_millis(p)
        for p in pods
        if p["spec"].get("nodeName")
        and QUEUE_LABEL in (p["metadata"].get("labels") or {})
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    )
    return Reading({p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in pods}, queued_cpu)


# -----------------------------------------------------------------------------------------------
# 1. muster killed with -9 in the middle of a burst


GANGS, GANG_SIZE = 5, 4
QUEUED, QUOTA_CPU = 10, 6
RECOVERY_SECONDS = 10.0
MAX_SAMPLE_GAP = 1.0
"""Readings are taken every 200 ms; a LIST slowed by a busy machine may stretch one gap."""
GIVE_UP_SECONDS = 30.0
"""How long the figure is measured for before the test gives up waiting (kube-scheduler 1.20
retries pods it could not schedule after 60 to 90 s on its own)."""


def _burst(selector: Mapping[str, str]) -> list[dict[str, Any]]:
    """Five gangs of 4 created member after member, as their Jobs would, with the ten queued
    pods in between: g0-0 g0-1 q0 g0-2 g0-3 q1 g1-0 ..."""
    out: list[dict[str, Any]] = []
    queued = iter(range(QUEUED))
    for g in range(GANGS):
        for i in range(GANG_SIZE):
            out.append(gang_member(f"g{g}-{i}", f"g{g}", selector, size=GANG_SIZE))
            if i % 2 == 1:
                q = next(queued, None)
                if q is not None:
                    out.append(queued_pod(f"q{q}", selector))
    out.extend(queued_pod(f"q{q}", selector) for q in queued)
    return out


def _gang_counts(reading: Reading) -> dict[str, int]:
    return {
        f"g{g}": sum(1 for i in range(GANG_SIZE) if reading.placements.get(f"g{g}-{i}"))
        for g in range(GANGS)
    }


def _queued_bound(reading: Reading) -> int:
    return sum(1 for name, node in reading.placements.items() if name.startswith("q") and node)


def test_muster_killed_mid_burst_binds_gangs_whole_never_over_admits_and_recovers(
    chaos: Chaos,
) -> None:
    """5 gangs of 4 x 1 cpu and 10 queued pods of 1 cpu (ClusterQueue of 6 cpu) on 32 cpu;
    muster is SIGKILLed once the first bind call reached it (the first half of the burst
    created, or part of it), the rest of the burst is created while it is down, and it is
    started again once the scheduler has found it gone."""
    cp, ns, proxy = chaos.cp, chaos.namespace, chaos.proxy
    for i in range(4):
        chaos.nodes.add(f"n{i}", cpu="8")
    wait_until(lambda: muster_knows_every_node(chaos), 20, 0.1, "muster to see the nodes")
    put_queues(chaos, queue_setup(ns, cpu=QUOTA_CPU), f"cq-{ns}")
    burst = _burst(chaos.nodes.selector)
    created: list[str] = []
    creator_errors: list[str] = []
    killed_event = threading.Event()

    def create_all() -> None:
        """The first half at once; the second half once muster is dead (so the scheduler
        finds it gone), whenever that is."""
        try:
            for i, manifest in enumerate(burst):
                if i == len(burst) // 2 and not killed_event.wait(60):
                    raise TimeoutError("muster was not killed")
                create(cp, ns, manifest)
                created.append(manifest["metadata"]["name"])
        except Exception as exc:  # noqa: BLE001 - reported below
            creator_errors.append(repr(exc))

    with Sampler(lambda: read_namespace(cp, ns), 0.2, "chaos-quota") as sampler:
        creator = threading.Thread(target=create_all, name="chaos-burst", daemon=True)
        creator.start()
        wait_until(lambda: proxy.since(0, "bind"), 60, 0.02, "the first bind call")
        # 1. kill -9 in the middle of the burst;
        chaos.muster.kill()
        killed = time.monotonic()
        killed_event.set()
        at_kill = read_namespace(cp, ns)
        binds_at_kill = len(proxy.since(0, "bind"))
        creator.join(60)
        # 2. the scheduler fails calls against the dead extender meanwhile;
        wait_until(
            lambda: any(c.status == 502 and c.started > killed for c in proxy.since(0)),
            30,
            0.1,
            "a call to find muster gone",
        )
        failed_calls = sum(1 for c in proxy.since(0) if c.status == 502)
        # 3. a new muster: everything placeable is bound within RECOVERY_SECONDS of /readyz.
        ready = chaos.muster.start()
        down = ready - killed

        def all_placed() -> bool:
            now = read_namespace(cp, ns)
            return (
                all(c == GANG_SIZE for c in _gang_counts(now).values())
                and _queued_bound(now) == QUOTA_CPU
            )

        took = timed(all_placed, GIVE_UP_SECONDS, 0.1, since=ready)
        # Would anything more slip through? The quota is full: nothing may.
        time.sleep(2)
    final = read_namespace(cp, ns)
    counts = _gang_counts(final)
    partial = {g: c for g, c in counts.items() if 0 < c < GANG_SIZE}
    peak = max((r.queued_cpu for _, r in sampler.samples), default=-1)
    times = [t for t, _ in sampler.samples]
    gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))
    over = [(round(t - killed, 1), r.queued_cpu) for t, r in sampler.samples if r.queued_cpu > 6000]
    figures = (
        f"muster killed after {len(at_kill.placements)}/{len(burst)} pods created, "
        f"{sum(1 for n in at_kill.placements.values() if n)} bound, {binds_at_kill} bind calls; "
        f"{failed_calls} calls failed while it was down ({down:.1f}s until the new /readyz); "
        f"all placeable pods bound {seconds(took)} after /readyz "
        f"(limit {RECOVERY_SECONDS:.0f}s); gangs at the end {counts}; queued bound "
        f"{_queued_bound(final)}/{QUEUED} (quota {QUOTA_CPU}); peak sampled queued cpu "
        f"{peak}m of {QUOTA_CPU * 1000}m over {len(sampler.samples)} samples "
        f"({len(sampler.errors)} failed, largest gap {gap:.2f}s)"
    )
    chaos.check(not creator_errors, f"creating the burst failed: {creator_errors}")
    chaos.check(len(created) == len(burst), f"only {len(created)}/{len(burst)} pods created")
    chaos.check(not partial, f"gangs partly bound at the end: {partial}")
    chaos.check(not over, f"over-admission at (s after kill, cpu m): {over}")
    chaos.check(
        not sampler.errors and gap <= MAX_SAMPLE_GAP,
        f"the quota was not sampled throughout: largest gap {gap:.2f}s, errors {sampler.errors}",
    )
    chaos.check(
        took is not None and took <= RECOVERY_SECONDS,
        f"pending work bound {seconds(took)} after muster's /readyz, limit {RECOVERY_SECONDS}s",
    )
    chaos.check(
        _queued_bound(final) == QUOTA_CPU, f"queued pods bound at the end: {_queued_bound(final)}"
    )
    chaos.verdict(figures)


# -----------------------------------------------------------------------------------------------
# 2. kube-apiserver killed with -9 and started again


COMPONENTS_SECONDS = 90.0
"""How long after the API server's restart kube-scheduler and the controller-manager may take to
act again (a pod on a new node bound, a Job's pod made); 50 s seen after a 30 s outage."""


def _job(name: str, selector: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": dict(selector),
                    "containers": [
                        {
                            "name": "c",
                            "image": harness.IMAGE,
                            "resources": {"requests": {"cpu": "100m"}},
                        }
                    ],
                }
            },
        },
    }


@pytest.mark.parametrize("outage", [5.0, 30.0], ids=["5s-down", "30s-down"])
def test_api_server_outage_is_reported_and_muster_catches_up_after_it(
    chaos: Chaos, outage: float
) -> None:
    """kube-apiserver is SIGKILLed for ``outage`` seconds and started again on the same port
    and flags. While it is down muster's /readyz says 503; after it is back muster sees a node
    added (its node count, and its filter passes a pod that fits only that node) and a pod
    deleted (its quota comes back), each within 10 s, and /readyz is 200 again. The pod on the
    new node is then bound through muster once kube-scheduler has caught up too, and a new
    Job gets its pod (their informers back off for up to a minute after an outage: their
    figures, not muster's)."""
    cp, ns, muster, proxy = chaos.cp, chaos.namespace, chaos.muster, chaos.proxy
    chaos.nodes.add("a", cpu="4")
    wait_until(lambda: muster_knows_every_node(chaos), 20, 0.1, "muster to see node a")
    cq = f"cq-{ns}"
    put_queues(chaos, queue_setup(ns, cpu=4), cq)
    create(cp, ns, queued_pod("charged", chaos.nodes.selector))
    cp.wait_pod_bound("charged", ns)
    wait_until(lambda: queue_usage(chaos, cq) == 1000, 10, 0.1, "muster to charge 1 cpu")

    with Sampler(lambda: muster.get("/readyz", timeout=1.0), 0.2, "chaos-readyz") as ready:
        cp.kill("kube-apiserver")
        chaos.api_server_restarted = True
        killed = time.monotonic()
        # The outage itself is the fault being injected: it lasts `outage` seconds.
        time.sleep(max(0.0, outage - (time.monotonic() - killed)))
        up_took = cp.restart_apiserver()
        up = time.monotonic()
        survivors = {c: cp.running(c) for c in ("kube-controller-manager", "kube-scheduler")}
        # A node and a pod that fits only there; the charged pod is deleted.
        node = chaos.nodes.add("b", cpu="4")
        node_added = time.monotonic()
        create(cp, ns, pod("on-b", {**chaos.nodes.selector, "kubernetes.io/hostname": node}))
        harness.delete_pods(cp, ns, ["charged"])
        deleted = time.monotonic()
        cp.api("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", _job("after", chaos.nodes.selector))
        held = first_held(
            {
                "node": lambda: muster_knows_every_node(chaos),
                "filter": lambda: muster_passes_only(chaos, "on-b", node),
                "released": lambda: queue_usage(chaos, cq) == 0,
                "ready": lambda: ready.first(lambda s: s[0] == 200, after=up),
            },
            timeout=15,
        )
    # kube-scheduler's and the controller-manager's own informers back off exponentially
    # (client-go: up to 30 s, doubled by jitter) and the restarted API server refuses them
    # while its RBAC caches fill: their catching up is theirs, so it gets COMPONENTS_SECONDS.
    caught_up = first_held(
        {
            "bound": lambda: placements(cp, ns).get("on-b") == node,
            "job": lambda: cp.list_pods(ns, "job-name=after"),
        },
        timeout=max(0.0, up + COMPONENTS_SECONDS - time.monotonic()),
        interval=0.2,
    )
    bound = after(caught_up["bound"], node_added)
    job_pod = after(caught_up["job"], up)
    through_muster = [
        c.reply.get("Error") for c in proxy.for_pod("on-b", "bind", answered=True) if c.status
    ]
    seen_node = after(held["node"], node_added)
    filtered = after(held["filter"], node_added)
    released = after(held["released"], deleted)
    first_503 = ready.first(lambda s: s[0] == 503, after=killed)
    drop = after(first_503, killed)
    during = [s[0] for t, s in ready.since(first_503 or up) if t < killed + outage]
    ready_again = after(ready.first(lambda s: s[0] == 200, after=max(up, first_503 or up)), up)
    # What muster said while it was not ready yet after the restart (the last such answer).
    lagging = [s[1][:200] for _, s in ready.since(up) if s[0] != 200][-1:]
    figures = (
        f"outage {outage:.0f}s (api server ready {up_took:.1f}s after its restart); /readyz 503 "
        f"{seconds(drop)} after the kill (limit {READY_DROP_SECONDS:.0f}s), readings while down "
        f"after that: {sorted(set(during))}; after the restart muster counted the new node in "
        f"{seconds(seen_node)} and its filter passed a pod on it in {seconds(filtered)}, the "
        f"deleted pod's quota came back in {seconds(released)} (limit 10s each), /readyz 200 "
        f"{seconds(ready_again)} after the restart (its last reason before: {lagging}); the pod "
        f"on the new node bound by the scheduler {seconds(bound)} after the node was added "
        f"(muster's answers {through_muster}); "
        f"controller-manager/scheduler alive after the restart: {survivors}; a Job's pod made "
        f"{seconds(job_pod)} after the restart"
    )
    chaos.check(drop is not None and drop <= READY_DROP_SECONDS, "/readyz did not say 503 in time")
    chaos.check(set(during) <= {503}, f"/readyz answered {sorted(set(during))} while down")
    chaos.check(seen_node is not None and seen_node <= 10, "muster did not count the new node")
    chaos.check(
        filtered is not None and filtered <= 10, "muster's filter did not pass the new node"
    )
    chaos.check(released is not None and released <= 10, "the deleted pod stayed charged")
    chaos.check(ready_again is not None, "/readyz not 200 again")
    chaos.check(bound is not None and "" in through_muster, "the pod on the new node unbound")
    chaos.check(all(survivors.values()), f"components exited with the API server: {survivors}")
    chaos.check(job_pod is not None, "the controller-manager made no pod for a new Job")
    chaos.verdict(figures)


# -----------------------------------------------------------------------------------------------
# 3. kube-scheduler killed with -9 while gang members wait at muster's gate


def test_a_gang_waiting_at_the_gate_is_bound_whole_after_a_scheduler_restart(
    chaos: Chaos,
) -> None:
    """A gang of 4 whose 4th member cannot be placed (its claim does not exist): 3 members wait
    at muster's bind gate. kube-scheduler is SIGKILLed: its 3 bind calls are cut, and the proxy
    closes its connections to muster with them. A new scheduler retries the 3; then the 4th
    member is replaced by one that fits, and the gang is bound whole within 5 s."""
    cp, ns, proxy = chaos.cp, chaos.namespace, chaos.proxy
    chaos.nodes.add("a", cpu="4")
    chaos.nodes.add("b", cpu="4")
    wait_until(lambda: muster_knows_every_node(chaos), 20, 0.1, "muster to see the nodes")
    names = [f"gate-{i}" for i in range(4)]
    selector = chaos.nodes.selector
    missing_claim = [{"name": "data", "persistentVolumeClaim": {"claimName": "missing"}}]
    create(cp, ns, gang_member(names[3], "gate", selector, size=4, volumes=missing_claim))
    for name in names[:3]:
        create(cp, ns, gang_member(name, "gate", selector, size=4))
    old = wait_until(
        lambda: (
            [c for n in names[:3] for c in proxy.for_pod(n, "bind")][:3]
            if all(proxy.for_pod(n, "bind") for n in names[:3])
            else None
        ),
        30,
        0.1,
        "3 members waiting at bind",
    )
    assert not any(c.finished for c in old), proxy.summary()

    cp.kill("kube-scheduler")
    killed = time.monotonic()
    cut = timed(lambda: all(c.finished for c in old), 10, 0.05)
    mark = proxy.mark()
    cp.restart_scheduler()
    restarted = time.monotonic()
    # The new scheduler has each of the 3 reach bind again (answered or waiting).
    retried = timed(lambda: all(proxy.for_pod(n, "bind", mark) for n in names[:3]), 30, 0.05)
    harness.delete_pods(cp, ns, [names[3]])
    create(cp, ns, gang_member("gate-new", "gate", selector, size=4))
    arrived = time.monotonic()
    members = [*names[:3], "gate-new"]
    took = timed(lambda: all(placements(cp, ns).get(n) for n in members), 60, 0.05, since=arrived)
    final = placements(cp, ns)
    new_binds = [
        f"{c.pod_name}: {c.status or 'waiting'} {c.response[:100]!r}"
        for c in proxy.since(mark, "bind")
    ]
    figures = (
        f"old bind calls cut {seconds(cut)} after the kill, recorded as "
        f"{sorted({c.status for c in old})} ({harness.CLIENT_GONE} = the proxy closed its "
        f"connection to muster); new scheduler up {restarted - killed:.1f}s after the kill, "
        f"retried the 3 at bind in {seconds(retried)}; gang bound {seconds(took)} after its last "
        f"member was created (limit 5s); bound at the end "
        f"{sum(1 for n in members if final.get(n))}/4; new scheduler's bind calls: {new_binds}"
    )
    chaos.check(
        cut is not None and all(c.abandoned for c in old),
        "the old bind calls were not cut by the kill",
    )
    chaos.check(retried is not None, "the new scheduler never brought the 3 back to bind")
    chaos.check(took is not None and took <= 5.0, "the gang was not bound in time")
    # The dead scheduler's calls are gone with their connections: the new scheduler's calls
    # take their places at the gate, and it is they that muster answers with the binding.
    for name in names[:3]:
        answers = [c.reply.get("Error") for c in proxy.for_pod(name, "bind", mark, answered=True)]
        chaos.check(
            "" in answers,
            f"{name}: no bind call of the new scheduler succeeded; muster answered {answers}",
        )
    chaos.verdict(figures)


# -----------------------------------------------------------------------------------------------
# 4. a broken queues file written while muster runs


def _deeply_nested(good: str) -> str:
    return good + "---\n" + "[" * 20000 + "]" * 20000 + "\n"


BROKEN_FILES: dict[str, Callable[[str], bytes]] = {
    "non-utf8": lambda good: b"# caf\xe9 \xff\xfe\n" + good.encode(),
    "nan-quota": lambda good: good.replace("nominalQuota: 1}", "nominalQuota: .nan}").encode(),
    "deep-nesting": lambda good: _deeply_nested(good).encode(),
}


@pytest.mark.parametrize("broken", list(BROKEN_FILES))
def test_a_broken_queues_file_is_rejected_and_everything_else_keeps_running(
    chaos: Chaos, broken: str
) -> None:
    """The queues file (a ClusterQueue of 1 cpu) is replaced by a broken one while muster runs:
    muster rejects it, says so in its log, metrics and /debug/queues, keeps the 1-cpu quota,
    keeps watching the cluster (a node added afterwards is used) and the file (a corrected one
    is loaded), and /readyz stays 200."""
    cp, ns, muster = chaos.cp, chaos.namespace, chaos.muster
    chaos.nodes.add("a", cpu="4")
    wait_until(lambda: muster_knows_every_node(chaos), 20, 0.1, "muster to see node a")
    good = queue_setup(ns, cpu=1)
    put_queues(chaos, good, f"cq-{ns}")
    rejected_before = muster.metric("muster_queue_config_loads_total", result="rejected")

    with Sampler(lambda: readyz(muster), 0.2, "chaos-readyz") as ready:
        staged = chaos.queues_file.with_suffix(".staged")
        staged.write_bytes(BROKEN_FILES[broken](good))
        staged.replace(chaos.queues_file)

        def rejected() -> bool:
            return (
                muster.metric("muster_queue_config_loads_total", result="rejected")
                > rejected_before
            )

        counted = timed(rejected, 15)
        status, body = muster.get("/debug/queues")
        config_error = json.loads(body).get("configError", "") if status == 200 else body[:200]
        # The watches still run: a new node is seen and used.
        node = chaos.nodes.add("b", cpu="4")
        seen_node = timed(lambda: muster_knows_every_node(chaos), 10)
        create(cp, ns, pod("on-b", {**chaos.nodes.selector, "kubernetes.io/hostname": node}))
        bound_on_b = timed(lambda: placements(cp, ns).get("on-b") == node, 10)
        # The last good quota (1 cpu) still holds: of two queued pods one is bound.
        for i in range(2):
            create(cp, ns, queued_pod(f"q{i}", chaos.nodes.selector))
        one_bound = timed(lambda: sum(1 for n in _queued(cp, ns).values() if n) >= 1, 15)
        time.sleep(2)  # would the second slip through?
        queued_bound = sum(1 for n in _queued(cp, ns).values() if n)
        # The file is still watched: a corrected one (2 cpu) goes into force, and the second
        # queued pod is bound under it.
        write_queues(chaos, queue_setup(ns, cpu=2))
        reloaded = timed(lambda: _nominal_cpu(chaos, f"cq-{ns}") == 2000, 10)
        second_bound = timed(lambda: all(_queued(cp, ns).values()), 15)
    log_says = [line for line in muster.log_tail(400).splitlines() if "rejected" in line.lower()][
        -1:
    ]
    statuses = sorted({s for _, s in ready.samples})
    figures = (
        f"{broken}: rejection counted after {seconds(counted)}, configError "
        f"{config_error[:160]!r}, log {[line[:200] for line in log_says]}; muster alive "
        f"{muster.alive()}; new node seen in {seconds(seen_node)}, pod on it bound in "
        f"{seconds(bound_on_b)}; queued pods bound {queued_bound}/2 under the 1-cpu quota "
        f"(first after {seconds(one_bound)}); a corrected file (2 cpu) in force after "
        f"{seconds(reloaded)}, second queued pod bound after {seconds(second_bound)}; /readyz "
        f"readings {statuses} over {len(ready.samples)} samples, longest without a 200 "
        f"{longest_without(ready.samples, 200):.1f}s"
    )
    chaos.check(counted is not None, "muster_queue_config_loads_total{result=rejected} unchanged")
    chaos.check(bool(config_error), "/debug/queues shows no configError")
    chaos.check(bool(log_says), "muster's log does not say the file was rejected")
    chaos.check(muster.alive(), "muster exited")
    chaos.check(seen_node is not None, "muster did not see a node added after the bad file")
    chaos.check(bound_on_b is not None, "a pod on the new node was not bound")
    chaos.check(queued_bound == 1, f"{queued_bound} queued pods bound under a 1-cpu quota")
    chaos.check(statuses == [200], f"/readyz answered {statuses}")
    chaos.check(reloaded is not None, "a corrected queues file was not loaded")
    chaos.check(second_bound is not None, "the second queued pod was not bound under 2 cpu")
    chaos.verdict(figures)


def _nominal_cpu(chaos: Chaos, cluster_queue: str) -> int:
    status, body = chaos.muster.get("/debug/queues")
    for cq in json.loads(body)["clusterQueues"] if status == 200 else []:
        if cq["name"] == cluster_queue:
            return sum(int(u["nominal"]) for u in cq["usage"] if u["resource"] == "cpu")
    return -1


def _queued(cp: ControlPlane, namespace: str) -> dict[str, str]:
    return {
        name: node
        for name, node in placements(cp, namespace).items()
        if re.fullmatch(r"q\d+", name)
    }


# -----------------------------------------------------------------------------------------------
# 5. the quota charged after every pod is gone


def _quiet(proxy: RecordingProxy, seconds: float) -> bool:
    """No call is in flight and none was answered in the last ``seconds``."""
    calls = proxy.since(0)
    if any(not c.finished for c in calls):
        return False
    return not calls or time.monotonic() - max(c.finished for c in calls) >= seconds


def _bound_count(cp: ControlPlane, namespace: str) -> int:
    return sum(1 for node in placements(cp, namespace).values() if node)


def test_no_quota_stays_charged_after_every_queued_pod_is_deleted(chaos: Chaos) -> None:
    """Three rounds of 8 queued pods of 1 cpu against a ClusterQueue of 4 cpu: 4 are bound,
    then all 8 are deleted at once (grace period 0). Filter calls are held 0.3 s on their way
    to muster (a slow path), so some reach muster after their pod is gone. After each round,
    once every pod is gone and no call is in flight, muster's charge for the ClusterQueue
    returns to 0 within 5 s."""
    cp, ns, proxy = chaos.cp, chaos.namespace, chaos.proxy
    chaos.nodes.add("a", cpu="4")
    chaos.nodes.add("b", cpu="4")
    wait_until(lambda: muster_knows_every_node(chaos), 20, 0.1, "muster to see the nodes")
    cq = f"cq-{ns}"
    put_queues(chaos, queue_setup(ns, cpu=4), cq)
    proxy.delays["filter"] = 0.3
    deleted_at: dict[str, float] = {}
    rounds = []
    for r in range(3):
        names = [f"r{r}-{i}" for i in range(8)]
        for name in names:
            create(cp, ns, queued_pod(name, chaos.nodes.selector))
        # 4 fit the quota; fewer if an earlier round left quota charged (then say so below).
        timed(lambda: _bound_count(cp, ns) == 4, 15)
        bound, charged = _bound_count(cp, ns), queue_usage(chaos, cq)
        for name in names:
            cp.api(
                "DELETE",
                f"/api/v1/namespaces/{ns}/pods/{name}",
                {"gracePeriodSeconds": 0},
                ok=(200, 202, 404),
            )
            deleted_at[name] = time.monotonic()
        wait_until(lambda: not cp.list_pods(ns), 30, 0.1, f"round {r}: every pod gone")
        # Calls still on their way reach muster first (no pod is left to call about).
        wait_until(lambda: _quiet(proxy, 0.5), 15, 0.1, f"round {r}: no call in flight")
        zero = timed(lambda: queue_usage(chaos, cq) == 0, 5)
        rounds.append((bound, charged, zero, queue_usage(chaos, cq)))
    status, body = chaos.muster.get("/debug/queues")
    view = next(c for c in json.loads(body)["clusterQueues"] if c["name"] == cq)
    late = [
        c.pod_name
        for c in proxy.since(0, "filter")
        if c.pod_name in deleted_at and c.forwarded > deleted_at[c.pod_name]
    ]
    figures = "; ".join(
        f"round {r}: {bound} bound, {charged}m charged before the deletion, back to 0 "
        f"{seconds(zero)} after every pod was gone and calls drained (limit 5s), {left}m "
        "charged then"
        for r, (bound, charged, zero, left) in enumerate(rounds)
    ) + (
        f"; {len(late)} filter calls reached muster after their pod's deletion "
        f"({sorted(set(late))}); at the end admitted {view['admitted']}, pending "
        f"{[p['workload'] for p in view['pending']]}"
    )
    for r, (bound, _, zero, left) in enumerate(rounds):
        chaos.check(zero is not None, f"round {r}: {left}m cpu still charged with no pod left")
        chaos.check(bound == 4, f"round {r}: {bound}/4 pods bound under a 4-cpu quota")
    chaos.check(not view["admitted"], f"workloads still admitted: {view['admitted']}")
    chaos.verdict(figures)
