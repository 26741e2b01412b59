"""Read-only views of queue admission: ``GET /debug/queues`` and the queue metrics."""

from __future__ import annotations

from typing import Any

from extender import metrics
from extender.core import admission_cycle, model, quota
from extender.service.admission.cycle import AdmissionCycle
from extender.service.admission.ledger import Ledger
from extender.service.admission.pending import PendingPods


def describe(
    ledger: Ledger, cycle: AdmissionCycle, waiting: PendingPods, config_error: str
) -> dict[str, Any]:
    """Every queue's usage, admitted workloads and pending workloads in order, with why."""
    config, book = ledger.config, ledger.book
    by_cq: dict[str, list[tuple[model.WorkloadKey, admission_cycle.Pending]]] = {}
    for key, pending in cycle.pending.items():
        by_cq.setdefault(pending.cluster_queue, []).append((key, pending))
    out = []
    for cq in sorted(config.cluster_queues.values(), key=lambda c: c.name):
        usage = [
            {
                "flavor": fr[0],
                "resource": fr[1],
                "used": (used := book.used(cq.name, fr)),
                "nominal": q.nominal,
                "borrowed": max(0, used - q.nominal),
                "available": book.available(cq, fr),
            }
            for fr, q in quota.quotas(cq)
        ]
        waiting_here = sorted(by_cq.get(cq.name, []), key=lambda kp: kp[1].position or 1 << 30)
        out.append(
            {
                "name": cq.name,
                "cohort": cq.cohort,
                "queueingStrategy": cq.strategy.value,
                "stopPolicy": cq.stop_policy.value,
                "usage": usage,
                "admitted": sorted(
                    str(a.key) for a in ledger.admissions.values() if a.cluster_queue == cq.name
                ),
                "pending": [
                    {"workload": str(key), "position": p.position, "reason": p.reason}
                    for key, p in waiting_here
                ],
            }
        )
    return {
        "configError": config_error,
        "clusterQueues": out,
        "localQueues": [
            {
                "namespace": lq.namespace,
                "name": lq.name,
                "clusterQueue": lq.cluster_queue,
                "stopPolicy": lq.stop_policy.value,
            }
            for lq in sorted(config.local_queues.values(), key=lambda q: q.key)
        ],
        "notQueued": sorted(
            ({"workload": str(k), "reason": r} for k, r in waiting.unqueued.items()),
            key=lambda entry: entry["workload"],
        ),
    }


def reading(ledger: Ledger, cycle: AdmissionCycle) -> metrics.QueueReading:
    """Per ClusterQueue: pending and admitted workloads, usage and quota by flavor."""
    pending: dict[str, int] = {}
    for p in cycle.pending.values():
        if p.cluster_queue:
            pending[p.cluster_queue] = pending.get(p.cluster_queue, 0) + 1
    admitted: dict[str, int] = {}
    for a in ledger.admissions.values():
        admitted[a.cluster_queue] = admitted.get(a.cluster_queue, 0) + 1
    config = ledger.config
    usage = [
        (cq.name, fr[0], fr[1], ledger.book.used(cq.name, fr), q.nominal)
        for cq in config.cluster_queues.values()
        for fr, q in quota.quotas(cq)
    ]
    names = sorted(config.cluster_queues)
    return metrics.QueueReading(
        pending={n: pending.get(n, 0) for n in names},
        admitted={n: admitted.get(n, 0) for n in names},
        usage=usage,
    )
