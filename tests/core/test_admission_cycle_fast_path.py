"""The admission cycle's fast path is exact: when only new workloads arrived since the last
cycle, judging them alone admits what the full cycle would, puts them at the same places with
the same reasons, and leaves the same lines; or it declines and changes nothing
(property-based)."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.core import admission_cycle, kueue, model, quota
from tests import builders

FLAVORS = (
    "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: on-demand}\n"
    "---\napiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: spot}\n"
)
CLUSTER_QUEUES = ("a", "b", "c")


def cluster_queue(name: str, spec: dict[str, object]) -> str:
    """A ClusterQueue with one or two flavors of cpu; no preemption: a preempting cycle may
    also act on what waited (see the example test below), so fast and full differ by design."""
    flavors = [
        f"    - name: on-demand\n      resources: [{{name: cpu, nominalQuota: {spec['a']}}}]"
    ]
    if spec["spot"]:
        limit = f", borrowingLimit: {spec['limit']}" if spec["cohort"] else ""
        resources = f"[{{name: cpu, nominalQuota: {spec['spot']}{limit}}}]"
        flavors.append(f"    - name: spot\n      resources: {resources}")
    cohort = f"  cohortName: {spec['cohort']}\n" if spec["cohort"] else ""
    return (
        f"apiVersion: kueue.x-k8s.io/v1beta2\nkind: ClusterQueue\nmetadata: {{name: {name}}}\n"
        f"spec:\n  namespaceSelector: {{}}\n  queueingStrategy: {spec['strategy']}\n{cohort}"
        "  resourceGroups:\n  - coveredResources: [cpu]\n    flavors:\n"
        + "\n".join(flavors)
        + "\n---\napiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\n"
        f"metadata: {{name: {name}-lq, namespace: ns}}\nspec: {{clusterQueue: {name}}}\n"
    )


queue_specs = st.fixed_dictionaries(
    {
        "a": st.integers(0, 6),
        "spot": st.integers(0, 4),
        "limit": st.integers(0, 3),
        "cohort": st.sampled_from(["", "pool"]),
        "strategy": st.sampled_from(["BestEffortFIFO", "StrictFIFO"]),
    }
)
configs = st.lists(queue_specs, min_size=1, max_size=3).map(
    lambda specs: kueue.parse(
        yaml.safe_load_all(
            FLAVORS
            + "".join(
                "---\n" + cluster_queue(CLUSTER_QUEUES[i], spec) for i, spec in enumerate(specs)
            )
        )
    )
)
# (ClusterQueue, cpu, priority, created); a LocalQueue that does not exist now and then.
shapes = st.tuples(
    st.sampled_from([*CLUSTER_QUEUES, "missing"]),
    st.integers(1, 4),
    st.integers(0, 2),
    st.integers(0, 5),
)


def workloads(
    prefix: str, specs: list[tuple[str, int, int, int]]
) -> list[admission_cycle.Workload]:
    return [
        admission_cycle.Workload(
            model.WorkloadKey(model.WorkloadKind.POD, "ns", f"{prefix}{i}"),
            "ns",
            f"{cq}-lq",
            priority,
            float(created),
            (builders.pod(f"{prefix}{i}", cpu=str(cpu), namespace="ns"),),
        )
        for i, (cq, cpu, priority, created) in enumerate(specs)
    ]


def cycle(config, book, pending, **kwargs):
    return admission_cycle.cycle(
        pending,
        config=config,
        book=book,
        admitted=[],
        namespace_labels=lambda ns: {"kubernetes.io/metadata.name": ns},
        **kwargs,
    )


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(configs, st.lists(shapes, max_size=8), st.lists(shapes, min_size=1, max_size=4))
def test_the_fast_path_decides_arrivals_as_the_full_cycle_would(config, before, after):
    book = quota.QuotaBook(config)
    old = workloads("old", before)
    first = cycle(config, book, old)
    assert first is not None
    arrivals = workloads("new", after)
    still_waiting = [w for w in old if w.key in first.pending]

    fast_book, lines = book.copy(), copy.deepcopy(first.lines)
    fast = cycle(config, fast_book, arrivals, arrivals_after=lines)
    full_book = book.copy()
    full = cycle(config, full_book, still_waiting + arrivals)
    assert full is not None

    if fast is None:  # declined: nothing was changed
        assert fast_book.usage == book.usage and lines == first.lines
        return
    assert {w.key for w, _, _ in fast.admitted} == {w.key for w, _, _ in full.admitted}
    assert fast_book.usage == full_book.usage
    for workload in arrivals:
        assert fast.pending.get(workload.key) == full.pending.get(workload.key), workload.key
    for workload in still_waiting:
        assert full.pending[workload.key].position == first.pending[workload.key].position
    assert lines == full.lines


def test_the_fast_path_declines_an_arrival_ahead_of_a_waiting_workload_and_changes_nothing():
    config = kueue.parse(yaml.safe_load_all(FLAVORS + "---\n" + cluster_queue("a", SMALL)))
    book = quota.QuotaBook(config)
    first = cycle(config, book, workloads("old", [("a", 4, 0, 1)]))  # 4 cpus of 2: waits
    assert first is not None and first.lines["a"].length == 1
    lines, before = copy.deepcopy(first.lines), book.copy()
    urgent = workloads("new", [("a", 1, 5, 2)])  # fits, but goes ahead of the waiting one
    assert cycle(config, book, urgent, arrivals_after=lines) is None
    assert book.usage == before.usage and lines == first.lines


def test_the_fast_path_declines_an_arrival_that_would_preempt():
    spec = (
        cluster_queue("a", SMALL)
        + "---\n"
        + (
            "apiVersion: kueue.x-k8s.io/v1beta2\nkind: WorkloadPriorityClass\n"
            "metadata: {name: high}\nvalue: 100\n"
        )
    ).replace(
        "  queueingStrategy:",
        "  preemption: {withinClusterQueue: LowerPriority}\n  queueingStrategy:",
    )
    config = kueue.parse(yaml.safe_load_all(FLAVORS + "---\n" + spec))
    book = quota.QuotaBook(config)
    first = cycle(config, book, workloads("old", [("a", 2, 0, 1)]))  # admitted: the queue is full
    assert first is not None and len(first.admitted) == 1
    before = book.copy()
    assert cycle(config, book, workloads("new", [("a", 1, 0, 2)]), arrivals_after={}) is None
    assert book.usage == before.usage


SMALL = {"a": 2, "spot": 0, "limit": 0, "cohort": "", "strategy": "BestEffortFIFO"}
