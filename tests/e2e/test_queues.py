"""Queue admission through the real kube-scheduler 1.20.2: Kueue's own objects loaded from the
``--queues`` file (rewritten while muster runs), a ClusterQueue of 9 cpu never over-admitted at
any sampled moment, waiting pods bound as admitted ones finish, and the reason on the pods.

The queue objects name this test's namespace, so every test writes its own configuration and
empties the file afterwards (muster reloads it within a second).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from controlplane import ControlPlane, wait_until
from harness import (
    QUEUE_LABEL,
    Extender,
    NodeSet,
    create,
    messages,
    pod,
    put_queues,
    queue_setup,
    write_queues,
)

pytestmark = pytest.mark.e2e


def cpu_millis(p: dict[str, Any]) -> int:
    total = 0
    for c in p["spec"]["containers"]:
        raw = str(c["resources"]["requests"]["cpu"])
        total += int(raw[:-1]) if raw.endswith("m") else int(float(raw) * 1000)
    return total


class QuotaSampler:
    """Lists the namespace every 100 ms; records the cpu of pods bound and not finished."""

    def __init__(self, cp: ControlPlane, namespace: str) -> None:
        self.cp, self.namespace = cp, namespace
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pods = self.cp.list_pods(self.namespace)
            self.samples.append(
                sum(
                    cpu_millis(p)
                    for p in pods
                    if p["spec"].get("nodeName")
                    and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
                )
            )
            self._stop.wait(0.1)

    def __enter__(self) -> QuotaSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def bound(cp: ControlPlane, namespace: str) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName", "")
        for p in cp.list_pods(namespace)
        if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    }


def finish(cp: ControlPlane, namespace: str, name: str) -> None:
    """Mark a pod Succeeded, as its kubelet would when its containers exit 0."""
    cp.api(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{name}/status",
        {"status": {"phase": "Succeeded"}},
        content_type="application/merge-patch+json",
    )


def test_a_cluster_queue_of_nine_cpus_is_never_over_admitted(
    queues: Extender, nodes: NodeSet, e2e_namespace: str
) -> None:
    cp, ns = queues.cp, e2e_namespace
    for i in range(3):
        nodes.add(f"n{i}", cpu="4")
    put_queues(queues, queue_setup(ns, cpu=9), f"cq-{ns}")
    with QuotaSampler(cp, ns) as sampler:
        for i in range(12):
            create(
                cp,
                ns,
                pod(f"job-{i:02d}", nodes.selector, cpu="1", labels={QUEUE_LABEL: "user-queue"}),
            )
        wait_until(
            lambda: sum(1 for n in bound(cp, ns).values() if n) == 9 or None,
            60,
            0.2,
            "nine pods bound",
        )
        time.sleep(2)  # would a tenth slip through?
        placed = bound(cp, ns)
        assert sum(1 for n in placed.values() if n) == 9
        waiting = sorted(name for name, node in placed.items() if not node)
        assert len(waiting) == 3
        reason = wait_until(
            lambda: next(iter(messages(cp, ns, waiting[0], "QueuePending")), None),
            20,
            0.2,
            "a QueuePending event",
        )
        assert (
            f"queue {ns}/user-queue -> cq-{ns}: cpu 1 requested, 0 of 9 free in flavor "
            "default-flavor" in reason
        )
        # Three admitted pods finish: their quota goes to the three waiting ones.
        for name in sorted(n for n, node in placed.items() if node)[:3]:
            finish(cp, ns, name)
        wait_until(
            lambda: all(bound(cp, ns).values()) or None, 60, 0.2, "the waiting pods to be bound"
        )
        time.sleep(1)
    assert sampler.samples, "no samples"
    assert max(sampler.samples) <= 9000, sampler.samples
    assert sampler.samples[-1] == 9000


def test_a_bad_change_to_the_queues_file_keeps_the_last_good_configuration(
    queues: Extender, nodes: NodeSet, e2e_namespace: str
) -> None:
    cp, ns = queues.cp, e2e_namespace
    nodes.add("n0", cpu="4")
    good = queue_setup(ns, cpu=1)
    put_queues(queues, good, f"cq-{ns}")
    write_queues(queues, good.replace("nominalQuota: 1}", "nominalQuota: lots}"))

    def rejected() -> str | None:
        view = json.loads(queues.muster.get("/debug/queues")[1])
        return view["configError"] or None

    error = wait_until(rejected, 15, 0.2, "the change to be rejected")
    assert (
        f"ClusterQueue cq-{ns}: spec.resourceGroups[0].flavors[0].resources[0]"
        ".nominalQuota: not a quantity" in error
    )
    for i in range(2):
        create(cp, ns, pod(f"p{i}", nodes.selector, cpu="1", labels={QUEUE_LABEL: "user-queue"}))
    wait_until(
        lambda: sum(1 for n in bound(cp, ns).values() if n) == 1 or None,
        30,
        0.2,
        "one pod bound under the old 1-cpu quota",
    )
    time.sleep(2)
    assert sum(1 for n in bound(cp, ns).values() if n) == 1
