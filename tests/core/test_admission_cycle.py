"""One admission cycle: Kueue's documented behaviours of ClusterQueues, cohorts and strategies."""

from __future__ import annotations

import yaml

from extender.core import admission_cycle, kueue, quota
from tests import builders

FLAVOR = "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: default}\n"


def setup(*queue_specs: str, local: tuple[tuple[str, str], ...] = ()) -> kueue.QueueConfig:
    """ClusterQueues from ``name:cpu[|option ...]`` specs, a LocalQueue ``<name>-lq`` in namespace
    ``ns`` for each, plus ``local`` (namespace, cq) extras."""
    docs = [FLAVOR]
    for spec in queue_specs:
        head, *options = spec.split("|")
        name, cpu = head.split(":")
        extra = "\n".join(f"  {o}" for o in options)
        docs.append(
            "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ClusterQueue\n"
            f"metadata: {{name: {name}}}\nspec:\n  namespaceSelector: {{}}\n{extra}\n"
            "  resourceGroups:\n  - coveredResources: [cpu]\n    flavors:\n"
            f"    - name: default\n      resources: [{{name: cpu, nominalQuota: {cpu}}}]\n"
        )
        docs.append(
            "apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\n"
            f"metadata: {{name: {name}-lq, namespace: ns}}\nspec: {{clusterQueue: {name}}}\n"
        )
    for namespace, cq in local:
        docs.append(
            "apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\n"
            f"metadata: {{name: {cq}-lq, namespace: {namespace}}}\nspec: {{clusterQueue: {cq}}}\n"
        )
    return kueue.parse(yaml.safe_load_all("---\n".join(docs)))


def workload(
    name: str, cq: str, cpu: str, *, priority: int = 0, created: float = 0.0, namespace: str = "ns"
) -> admission_cycle.Workload:
    pod = builders.pod(name, cpu=cpu, namespace=namespace)
    return admission_cycle.Workload(
        builders.workload_key(f"pod/{namespace}/{name}"),
        namespace,
        f"{cq}-lq",
        priority,
        created,
        (pod,),
    )


def run(config, pending, *, book=None, admitted=(), **kwargs):
    book = book or quota.QuotaBook(config)
    decisions = admission_cycle.cycle(
        pending,
        config=config,
        book=book,
        admitted=list(admitted),
        namespace_labels=lambda ns: {"kubernetes.io/metadata.name": ns},
        **kwargs,
    )
    return decisions, book


def names(decisions: admission_cycle.Decisions) -> list[str]:
    return [w.key.name for w, _, _ in decisions.admitted]


def test_quota_of_nine_cpus_admits_nine_one_cpu_workloads_and_the_tenth_waits():
    config = setup("cq:9")
    pending = [workload(f"p{i}", "cq", "1", created=float(i)) for i in range(10)]
    decisions, book = run(config, pending)
    assert names(decisions) == [f"p{i}" for i in range(9)]
    assert book.used("cq", ("default", "cpu")) == 9000
    waiting = decisions.pending[builders.workload_key("pod/ns/p9")]
    assert (
        waiting.cluster_queue == "cq"
        and waiting.position == 1
        and decisions.lines["cq"].length == 1
    )
    assert waiting.reason == "cpu 1 requested, 0 of 9 free in flavor default"


def test_higher_priority_goes_first_then_older():
    config = setup("cq:2")
    pending = [
        workload("old", "cq", "1", created=1.0),
        workload("urgent", "cq", "1", priority=10, created=5.0),
        workload("new", "cq", "1", created=2.0),
    ]
    decisions, _ = run(config, pending)
    assert names(decisions) == ["urgent", "old"]
    assert decisions.pending[builders.workload_key("pod/ns/new")].position == 1


def test_strict_fifo_blocks_behind_an_inadmissible_head_best_effort_does_not():
    for strategy, expected in (("BestEffortFIFO", ["small"]), ("StrictFIFO", [])):
        config = setup(f"cq:4|queueingStrategy: {strategy}")
        pending = [
            workload("big", "cq", "6", created=1.0),
            workload("small", "cq", "1", created=2.0),
        ]
        decisions, _ = run(config, pending)
        assert names(decisions) == expected, strategy
        if strategy == "StrictFIFO":
            assert (
                decisions.pending[builders.workload_key("pod/ns/small")].reason
                == "waiting behind pod/ns/big (StrictFIFO)"
            )
            assert decisions.pending[builders.workload_key("pod/ns/small")].position == 2


def test_borrowing_unused_quota_of_the_cohort():
    config = setup("a:3|cohortName: c", "b:6|cohortName: c")
    decisions, book = run(config, [workload("w", "a", "7")])
    assert names(decisions) == ["w"]
    assert decisions.admitted[0][2].borrows is True
    assert book.borrowing(config.cluster_queues["a"], [("default", "cpu")])


def test_a_queue_gets_its_nominal_quota_before_others_borrow_it():
    # Both heads compete for the cohort's last 4 cpus: b's fits in b's own quota, a's would
    # borrow, so b's goes first even though a's is older and more important.
    config = setup("a:2|cohortName: c", "b:4|cohortName: c")
    pending = [
        workload("a-borrower", "a", "4", priority=5, created=1.0),
        workload("b-owner", "b", "4", created=2.0),
    ]
    book = quota.QuotaBook(config)
    book.add("a", {("default", "cpu"): 2000})
    decisions, _ = run(config, pending, book=book)
    assert names(decisions) == ["b-owner"]
    assert "0 of 2 free" in decisions.pending[builders.workload_key("pod/ns/a-borrower")].reason


def test_workloads_that_cannot_be_queued_say_why():
    config = setup("cq:9|stopPolicy: Hold", "sel:9", local=(("other", "nope"),))
    selective = config.cluster_queues["sel"]
    config = kueue.QueueConfig(
        config.flavors,
        {
            **config.cluster_queues,
            "sel": kueue.ClusterQueue(
                "sel",
                selective.resource_groups,
                namespace_selector=kueue.LabelSelector({"team": "x"}),
            ),
        },
        config.local_queues,
        config.priority_classes,
    )
    pending = [
        workload("held", "cq", "1"),
        workload("lost", "missing", "1"),
        workload("orphan", "nope", "1", namespace="other"),
        workload("outsider", "sel", "1"),
    ]
    decisions, _ = run(config, pending)
    assert decisions.admitted == []
    reasons = {k.name: p.reason for k, p in decisions.pending.items()}
    assert reasons == {
        "held": "ClusterQueue cq is stopped (Hold)",
        "lost": "LocalQueue ns/missing-lq not found",
        "orphan": "ClusterQueue nope of LocalQueue other/nope-lq not found",
        "outsider": "namespace ns is not selected by ClusterQueue sel",
    }


def test_a_preemptor_names_its_victims_once():
    config = setup("cq:4|preemption: {withinClusterQueue: LowerPriority}")
    book = quota.QuotaBook(config)
    victim = quota.Admitted(
        builders.workload_key("pod/ns/low"), "cq", -5, 0.0, 0.0, {("default", "cpu"): 4000}
    )
    book.add("cq", victim.usage)
    high = workload("high", "cq", "3", priority=10)
    decisions, _ = run(config, [high], book=book, admitted=[victim])
    assert [(str(w.key), [str(t.victim.key) for t in vs]) for w, vs in decisions.preemptions] == [
        ("pod/ns/high", ["pod/ns/low"])
    ]
    assert decisions.pending[builders.workload_key("pod/ns/high")].reason.endswith(
        "; preempting 1 workload(s)"
    )
    again, _ = run(config, [high], book=book, admitted=[victim], waiting_for_victims={high.key: 1})
    assert again.preemptions == []
    assert (
        "waiting for 1 preempted workload(s) to stop"
        in again.pending[builders.workload_key("pod/ns/high")].reason
    )
