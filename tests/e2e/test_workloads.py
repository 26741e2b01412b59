"""Workload lifecycle through the real kube-scheduler 1.20.2 and controller-manager: a gang Job
whose pods never become Ready is evicted and requeued with backoff, then runs once its pods
are Ready; an elastic Job scaled 3 -> 5 -> 2 is charged exactly for the pods it has.

There is no kubelet: the tests mark pods Ready by patching their status, and confirm the
graceful deletions (evictions, scale-down) a kubelet would confirm, with grace period 0.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from typing import Any

import pytest
from controlplane import ControlPlane, wait_until
from harness import IMAGE, QUEUE_LABEL, Extender, NodeSet, put_queues, queue_setup

pytestmark = pytest.mark.e2e


def setup(namespace: str, *, cpu: int, wait: str = "") -> str:
    return queue_setup(namespace, cpu=cpu) + (f"---\n{textwrap.dedent(wait)}" if wait else "")


def job(
    name: str,
    selector: dict[str, str],
    *,
    parallelism: int,
    labels: dict[str, str],
    annotations: dict[str, str],
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "parallelism": parallelism,
            "completions": 100,
            "backoffLimit": 100,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": selector,
                    "containers": [
                        {
                            "name": "c",
                            "image": IMAGE,
                            "resources": {"requests": {"cpu": "1", "memory": "64Mi"}},
                        }
                    ],
                },
            },
        },
    }


def job_pods(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    return cp.list_pods(namespace, f"job-name={name}")


def live(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def confirm_deletions(cp: ControlPlane, namespace: str, pods: list[dict[str, Any]]) -> None:
    """What a kubelet does for a pod being deleted: confirm it (grace period 0)."""
    for p in pods:
        if p["metadata"].get("deletionTimestamp"):
            cp.api(
                "DELETE",
                f"/api/v1/namespaces/{namespace}/pods/{p['metadata']['name']}",
                {"gracePeriodSeconds": 0},
                ok=(200, 202, 404),
            )


def mark_ready(cp: ControlPlane, namespace: str, name: str) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cp.api(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{name}/status",
        {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                ],
            }
        },
        content_type="application/merge-patch+json",
    )


def workload_view(ext: Extender, key: str) -> dict[str, Any] | None:
    status, body = ext.muster.get("/debug/workloads")
    assert status == 200
    return next((w for w in json.loads(body)["workloads"] if w["key"] == key), None)


def used_cpu(ext: Extender, cluster_queue: str) -> int:
    status, body = ext.muster.get("/debug/queues")
    assert status == 200
    for cq in json.loads(body)["clusterQueues"]:
        if cq["name"] == cluster_queue:
            return sum(u["used"] for u in cq["usage"] if u["resource"] == "cpu")
    raise AssertionError(f"no ClusterQueue {cluster_queue}")


WAIT = """\
apiVersion: config.kueue.x-k8s.io/v1beta1
kind: Configuration
waitForPodsReady:
  enable: true
  timeout: 4s
  requeuingStrategy: {backoffBaseSeconds: 3, backoffMaxSeconds: 30}
"""


def test_a_gang_whose_pods_never_become_ready_is_evicted_and_requeued(
    queues: Extender,
    nodes: NodeSet,
    e2e_namespace: str,
) -> None:
    cp, ns = queues.cp, e2e_namespace
    for i in range(2):
        nodes.add(f"n{i}", cpu="4")
    put_queues(queues, setup(ns, cpu=8, wait=WAIT), f"cq-{ns}")
    created_at = time.monotonic()  # no admission before the Job exists
    cp.apply(
        job(
            "train",
            nodes.selector,
            parallelism=3,
            labels={QUEUE_LABEL: "user-queue", "muster.dev/workload": "train"},
            annotations={"muster.dev/min-count": "3"},
        ),
        "-n",
        ns,
    )
    key = f"gang/{ns}/train/main"

    def bound_pods() -> list[dict[str, Any]] | None:
        pods = live(job_pods(cp, ns, "train"))
        return pods if len(pods) == 3 and all(p["spec"].get("nodeName") for p in pods) else None

    first = wait_until(bound_pods, 60, 0.2, "the gang bound")
    first_names = {p["metadata"]["name"] for p in first}

    # Nobody marks them Ready: after the 4 s timeout muster evicts the whole gang.
    def evicted() -> bool:
        pods = job_pods(cp, ns, "train")
        confirm_deletions(cp, ns, pods)
        return not first_names & {p["metadata"]["name"] for p in pods}

    wait_until(evicted, 30, 0.2, "the gang evicted")
    # Not before the timeout: counted from admission, which the scheduler's backoff can put
    # well before the binding, so the bounds are the Job's creation and muster's own clock.
    assert time.monotonic() - created_at >= 4.0
    view = wait_until(lambda: workload_view(queues, key), 10, 0.2, "the workload record")
    assert view["accumulatedExecutionSeconds"] >= 3.9
    assert view["requeueState"]["count"] == 1
    assert any(c["reason"] == "PodsReadyTimeout" for c in view["conditions"])

    # The Job makes new pods; they wait out the backoff, then the gang is bound again. Each
    # is marked Ready as soon as it is bound: the 4 s run from the new admission.
    marked: set[str] = set()

    def bound_and_ready() -> list[dict[str, Any]] | None:
        pods = [
            p for p in live(job_pods(cp, ns, "train")) if p["metadata"]["name"] not in first_names
        ]
        for p in pods:
            name = p["metadata"]["name"]
            if p["spec"].get("nodeName") and name not in marked:
                mark_ready(cp, ns, name)
                marked.add(name)
        return pods if len(pods) == 3 and marked >= {p["metadata"]["name"] for p in pods} else None

    second = wait_until(bound_and_ready, 60, 0.05, "the requeued gang bound again")
    time.sleep(6)  # past the timeout: Ready pods stay
    assert {p["metadata"]["name"] for p in live(job_pods(cp, ns, "train"))} == {
        p["metadata"]["name"] for p in second
    }
    view = workload_view(queues, key)
    assert view is not None and view["status"] == "Admitted"
    assert view["requeueState"]["count"] == 1


def test_an_elastic_job_is_charged_for_exactly_the_pods_it_has(
    queues: Extender,
    nodes: NodeSet,
    e2e_namespace: str,
) -> None:
    cp, ns = queues.cp, e2e_namespace
    for i in range(2):
        nodes.add(f"n{i}", cpu="4")
    put_queues(queues, setup(ns, cpu=8), f"cq-{ns}")
    cp.apply(
        job(
            "elastic",
            nodes.selector,
            parallelism=3,
            labels={QUEUE_LABEL: "user-queue"},
            annotations={"kueue.x-k8s.io/elastic-job": "true"},
        ),
        "-n",
        ns,
    )
    samples: list[tuple[int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        # muster follows the API through its watch, a little behind. A reading of muster is
        # compared with the Job's pods listed just before and just after it, counting pods
        # being deleted too: they are gone only once muster has let go of them (below).
        while not stop.is_set():
            before = len(job_pods(cp, ns, "elastic"))
            used = used_cpu(queues, f"cq-{ns}")
            after = len(job_pods(cp, ns, "elastic"))
            samples.append((used, max(before, after)))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for parallelism in (3, 5, 2):
            cp.api(
                "PATCH",
                f"/apis/batch/v1/namespaces/{ns}/jobs/elastic",
                {"spec": {"parallelism": parallelism}},
                content_type="application/merge-patch+json",
            )

            def settled(count: int = parallelism) -> bool:
                alive = live(job_pods(cp, ns, "elastic"))
                return (
                    len(alive) == count
                    and all(p["spec"].get("nodeName") for p in alive)
                    and used_cpu(queues, f"cq-{ns}") == 1000 * count
                )

            # On scale-down the quota comes back when the pods are marked for deletion, before
            # a kubelet confirms it: the deletions are confirmed only after that.
            wait_until(settled, 60, 0.2, f"{parallelism} pods bound and charged")
            confirm_deletions(cp, ns, job_pods(cp, ns, "elastic"))
            wait_until(
                lambda count=parallelism: len(job_pods(cp, ns, "elastic")) == count,
                30,
                0.2,
                f"only {parallelism} pods left",
            )
    finally:
        stop.set()
        sampler.join(timeout=10)
    assert samples
    # Never charged for more pods than the Job has.
    over = [(used, had) for used, had in samples if used > 1000 * had]
    assert not over, over
    view = workload_view(queues, f"job/{ns}/elastic")
    assert view is not None and view["slice"] >= 2
