"""Admission decision time: pending workloads across many ClusterQueues of one cohort (issue #7).

    python loadtest/admission.py                       # 1000 workloads, 100 ClusterQueues
    python loadtest/admission.py --workloads 15000 --queues 30 --json out.json

Builds a cohort of ClusterQueues (each with nominal cpu quota and unlimited borrowing), queues
the workloads (1, 5 or 20 cpu, priorities 0..2, round-robin over the queues, like Kueue's
baseline generator), then measures in-process through the service (no HTTP):

* one full admission cycle with everything pending (the worst case after a restart or a
  configuration change), and the time per workload decided;
* the steady state: a filter call of a pending pod when nothing changed (the common call:
  kube-scheduler retrying a pod that waits for quota) and when one admitted pod finished
  (a cycle runs, then the answer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from extender import simulation
from extender.core import cluster, kueue, manifests, objects
from extender.service import ExtenderService
from extender.settings import Settings

SIZES = (1, 5, 20)


def queue_config(count: int, cpu_each: int) -> kueue.QueueConfig:
    docs: list[object] = [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": "default"},
        }
    ]
    for i in range(count):
        docs.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ClusterQueue",
                "metadata": {"name": f"cq-{i}"},
                "spec": {
                    "cohortName": "all",
                    "namespaceSelector": {},
                    "resourceGroups": [
                        {
                            "coveredResources": ["cpu"],
                            "flavors": [
                                {
                                    "name": "default",
                                    "resources": [{"name": "cpu", "nominalQuota": cpu_each}],
                                }
                            ],
                        }
                    ],
                },
            }
        )
        docs.append(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": {"name": f"lq-{i}", "namespace": "bench"},
                "spec": {"clusterQueue": f"cq-{i}"},
            }
        )
    return kueue.parse(docs)


def pod(i: int, queue: int) -> object:
    hours, minutes, seconds = i // 3600 % 24, i // 60 % 60, i % 60
    return objects.to_pod(
        manifests.pod(
            f"w{i}",
            namespace="bench",
            uid=f"uid-{i}",
            resource_version="1",
            created=f"2025-01-01T{hours:02d}:{minutes:02d}:{seconds:02d}Z",
            labels={kueue.QUEUE_LABEL: f"lq-{queue}"},
            containers=[manifests.container("c", image=None, requests={"cpu": str(SIZES[i % 3])})],
            spec={"priority": i % 3},
        )
    )


def run(workloads: int, queue_count: int, cpu_each: int, samples: int) -> dict[str, float]:
    state = cluster.ClusterState()
    service = ExtenderService(
        state=state, binder=simulation.SimulatedBinder(state), settings=Settings()
    )
    state.replace_nodes(simulation.generated_nodes(10))
    state.mark_synced()
    service.admission.configure(queue_config(queue_count, cpu_each))
    pods = [pod(i, i % queue_count) for i in range(workloads)]
    for p in pods:
        service.apply_pod(p)  # type: ignore[arg-type]

    started = time.perf_counter()
    service.admission.run_cycle()
    full_cycle = time.perf_counter() - started
    admitted = len(service.admission.ledger.admissions)
    pending = [p for p in pods if p.uid not in service.admission.ledger.charges]  # type: ignore[attr-defined]

    quiet, after_finish = [], []
    names = list(state.nodes)
    for k in range(samples):
        target = pending[k % len(pending)] if pending else pods[0]
        t0 = time.perf_counter()
        service.filter(target, names)  # type: ignore[arg-type]
        quiet.append(time.perf_counter() - t0)
        done = next(iter(service.admission.ledger.charges))
        finished = service.admission.waiting.pods[done].pod
        service.remove_pod(finished)
        t0 = time.perf_counter()
        service.filter(target, names)  # type: ignore[arg-type]
        after_finish.append(time.perf_counter() - t0)
    return {
        "workloads": workloads,
        "cluster_queues": queue_count,
        "admitted_in_first_cycle": admitted,
        "full_cycle_ms": full_cycle * 1e3,
        "full_cycle_us_per_workload": full_cycle * 1e6 / workloads,
        "filter_pending_quiet_ms_p50": statistics.median(quiet) * 1e3,
        "filter_pending_quiet_ms_p99": sorted(quiet)[int(len(quiet) * 0.99) - 1] * 1e3,
        "filter_after_a_pod_finished_ms_p50": statistics.median(after_finish) * 1e3,
        "filter_after_a_pod_finished_ms_p99": sorted(after_finish)[
            int(len(after_finish) * 0.99) - 1
        ]
        * 1e3,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        prog="loadtest/admission.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workloads", type=int, default=1000)
    p.add_argument("--queues", type=int, default=100)
    p.add_argument("--cpu-per-queue", type=int, default=20, help="nominal cpu of each queue")
    p.add_argument("--samples", type=int, default=200, help="steady-state filter calls")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    result = run(args.workloads, args.queues, args.cpu_per_queue, args.samples)
    width = max(map(len, result))
    for key, value in result.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
