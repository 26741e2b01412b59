"""Quota arithmetic, flavor assignment and preemption targets, after Kueue's documented examples."""

from __future__ import annotations

import pytest
import yaml

from extender.core import kueue, quota
from tests import builders


def config(text: str) -> kueue.QueueConfig:
    return kueue.parse(yaml.safe_load_all(text))


def cq_yaml(name: str, cpu: str, *, cohort: str = "", extra: str = "", flavors: str = "") -> str:
    resource = f"{{name: cpu, nominalQuota: {cpu}{extra}}}"
    flavor_lines = flavors or f"    - name: default\n      resources:\n      - {resource}\n"
    return (
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ClusterQueue\n"
        f"metadata: {{name: {name}}}\nspec:\n  namespaceSelector: {{}}\n"
        + (f"  cohortName: {cohort}\n" if cohort else "")
        + "  resourceGroups:\n  - coveredResources: [cpu]\n    flavors:\n"
        + flavor_lines
        + "---\n"
    )


FLAVOR = (
    "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: default}\n---\n"
)


def cpu(millis: int) -> dict[tuple[str, str], int]:
    return {("default", "cpu"): millis}


def test_without_a_cohort_a_queue_takes_exactly_its_nominal_quota():
    book = quota.QuotaBook(config(FLAVOR + cq_yaml("a", "9")))
    a = book.config.cluster_queues["a"]
    book.add("a", cpu(8000))
    assert book.available(a, ("default", "cpu")) == 1000
    assert book.potential(a, ("default", "cpu")) == 9000
    book.remove("a", cpu(8000))
    assert book.usage["a"] == {}


def test_borrowing_within_a_cohort_and_its_limits():
    # A (9) and B (6, may borrow 2) in one cohort: the module docstring's example.
    book = quota.QuotaBook(
        config(
            FLAVOR
            + cq_yaml("a", "9", cohort="c")
            + cq_yaml("b", "6", cohort="c", extra=", borrowingLimit: 2")
        )
    )
    a, b = book.config.cluster_queues["a"], book.config.cluster_queues["b"]
    fr = ("default", "cpu")
    assert book.available(b, fr) == 8000  # 6 own + at most 2 borrowed
    assert book.available(a, fr) == 15000  # no borrowing limit: the whole cohort
    book.add("a", cpu(8000))
    book.add("b", cpu(4000))
    assert book.available(b, fr) == 3000
    assert book.available(a, fr) == 3000
    assert book.borrowing(a, [fr]) is False
    book.add("b", cpu(3000))
    assert book.borrowing(b, [fr]) is True
    assert book.potential(b, fr) == 8000


def test_a_lending_limit_keeps_the_rest_for_its_owner():
    # A lends at most 4 of its 9: 5 are A's alone, whatever B does.
    book = quota.QuotaBook(
        config(
            FLAVOR
            + cq_yaml("a", "9", cohort="c", extra=", lendingLimit: 4")
            + cq_yaml("b", "2", cohort="c")
        )
    )
    a, b = book.config.cluster_queues["a"], book.config.cluster_queues["b"]
    fr = ("default", "cpu")
    assert book.available(b, fr) == 6000  # its own 2 + A's lendable 4
    book.add("b", cpu(6000))
    assert book.available(a, fr) == 5000
    assert book.potential(b, fr) == 6000


def test_assignment_walks_flavors_in_order_and_reports_the_numbers():
    text = (
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: on-demand}\n"
        "spec: {nodeLabels: {type: on-demand}}\n---\n"
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: spot}\n"
        "spec:\n  nodeLabels: {type: spot}\n"
        "  nodeTaints: [{key: spot, value: 'true', effect: NoSchedule}]\n---\n"
        + cq_yaml(
            "q",
            "",
            flavors=(
                "    - name: on-demand\n      resources: [{name: cpu, nominalQuota: 4}]\n"
                "    - name: spot\n      resources: [{name: cpu, nominalQuota: 8}]\n"
            ),
        )
    )
    book = quota.QuotaBook(config(text))
    q = book.config.cluster_queues["q"]
    small = builders.pod("small", cpu="3")
    fit = quota.assign(q, small.requests, [small], book)
    assert fit.mode is quota.Mode.FIT and fit.flavors == {"cpu": "on-demand"}
    big = builders.pod("big", cpu="6")
    no_toleration = quota.assign(q, big.requests, [big], book)
    assert no_toleration.mode is quota.Mode.NO_FIT
    assert "cpu 6 requested, 4 of 4 free in flavor on-demand (never fits: at most 4)" in (
        no_toleration.reason
    )
    assert "flavor spot: taint {spot: true} of the flavor is not tolerated" in no_toleration.reason
    tolerant = builders.pod(
        "tolerant",
        cpu="6",
        tolerations=[builders.toleration("spot", value="true", effect="NoSchedule")],
    )
    assert quota.assign(q, tolerant.requests, [tolerant], book).flavors == {"cpu": "spot"}
    pinned = builders.pod("pinned", cpu="1", node_selector={"type": "spot"})
    assert quota.assign(q, pinned.requests, [pinned], book).mode is quota.Mode.NO_FIT
    book.add("q", {("on-demand", "cpu"): 4000})
    waits = quota.assign(q, small.requests, [small], book)
    assert waits.mode is quota.Mode.PREEMPT
    assert waits.flavors == {"cpu": "on-demand"}
    assert "cpu 3 requested, 0 of 4 free in flavor on-demand" in waits.reason


def test_uncovered_resources_do_not_fit_and_pods_count_only_when_covered():
    book = quota.QuotaBook(config(FLAVOR + cq_yaml("a", "9")))
    a = book.config.cluster_queues["a"]
    gpu = builders.pod("gpu", cpu="1", requests={"cpu": "1", "nvidia.com/gpu": "1"})
    result = quota.assign(a, gpu.requests, [gpu], book)
    assert result.mode is quota.Mode.NO_FIT
    assert result.reason == "resource nvidia.com/gpu is not covered by ClusterQueue a"
    plain = builders.pod("plain", cpu="1")
    assert quota.assign(a, plain.requests, [plain], book).usage == cpu(1000)


def admitted(key: str, cq: str, millis: int, *, priority: int = 0, at: float = 0.0):
    return quota.Admitted(key, cq, priority, created=at, admitted_at=at, usage=cpu(millis))


def keys(targets: list[quota.Target]) -> list[str]:
    return [t.victim.key for t in targets]


@pytest.mark.parametrize(
    ("policy", "victims", "expected"),
    [
        ("Never", [admitted("low", "a", 9000, priority=-1)], []),
        ("LowerPriority", [admitted("low", "a", 9000, priority=-1)], ["low"]),
        ("LowerPriority", [admitted("same", "a", 9000, at=200.0)], []),
        ("LowerOrNewerEqualPriority", [admitted("newer", "a", 9000, at=200.0)], ["newer"]),
        ("LowerOrNewerEqualPriority", [admitted("older", "a", 9000, at=50.0)], []),
    ],
    ids=[
        "Never preempts nobody",
        "LowerPriority preempts a lower priority workload",
        "LowerPriority spares an equal priority one",
        "LowerOrNewerEqualPriority preempts a newer equal one",
        "LowerOrNewerEqualPriority spares an older equal one",
    ],
)
def test_within_cluster_queue_policies(policy, victims, expected):
    book = quota.QuotaBook(
        config(
            FLAVOR
            + cq_yaml("a", "9").replace(
                "spec:\n", f"spec:\n  preemption: {{withinClusterQueue: {policy}}}\n"
            )
        )
    )
    a = book.config.cluster_queues["a"]
    for v in victims:
        book.add(v.cluster_queue, v.usage)
    need = quota.assign(a, {"cpu": 4000}, [], book)
    chosen = quota.preemption_targets(
        a, need, priority=0, created=100.0, admitted=victims, book=book
    )
    assert keys(chosen) == expected
    assert all(t.reason is quota.PreemptionReason.IN_CLUSTER_QUEUE for t in chosen)


def test_preemption_takes_the_fewest_victims_lowest_priority_and_newest_first():
    book = quota.QuotaBook(
        config(
            FLAVOR
            + cq_yaml("a", "9").replace(
                "spec:\n", "spec:\n  preemption: {withinClusterQueue: LowerPriority}\n"
            )
        )
    )
    a = book.config.cluster_queues["a"]
    victims = [
        admitted("p1-old", "a", 3000, priority=1, at=1.0),
        admitted("p1-new", "a", 3000, priority=1, at=2.0),
        admitted("p0", "a", 3000, priority=0, at=3.0),
    ]
    for v in victims:
        book.add("a", v.usage)
    need = quota.assign(a, {"cpu": 5000}, [], book)
    chosen = quota.preemption_targets(a, need, priority=5, created=0.0, admitted=victims, book=book)
    assert keys(chosen) == ["p0", "p1-new"]
    # The book itself is untouched: preemption only simulates.
    assert book.used("a", ("default", "cpu")) == 9000


def test_reclaim_within_cohort_evicts_borrowers_only_to_regain_nominal_quota():
    text = (
        FLAVOR
        + cq_yaml("a", "6", cohort="c").replace(
            "spec:\n", "spec:\n  preemption: {reclaimWithinCohort: Any}\n"
        )
        + cq_yaml("b", "6", cohort="c")
    )
    book = quota.QuotaBook(config(text))
    a = book.config.cluster_queues["a"]
    borrower = admitted("b-big", "b", 10000, priority=100)
    book.add("b", borrower.usage)
    need = quota.assign(a, {"cpu": 4000}, [], book)
    assert need.mode is quota.Mode.PREEMPT
    assert quota.preemption_targets(
        a, need, priority=0, created=0.0, admitted=[borrower], book=book
    ) == [(borrower, quota.PreemptionReason.IN_COHORT_RECLAMATION)]
    # Asking for more than its own nominal quota is borrowing, not reclaiming: no victims.
    greedy = quota.assign(a, {"cpu": 7000}, [], book)
    assert (
        quota.preemption_targets(a, greedy, priority=0, created=0.0, admitted=[borrower], book=book)
        == []
    )


def test_reclaim_never_takes_a_queue_below_its_nominal_quota():
    # a, b and c have 6 each; b borrows 2 with two workloads of 4, c borrows 4 with one of 10.
    text = (
        FLAVOR
        + cq_yaml("a", "6", cohort="c").replace(
            "spec:\n", "spec:\n  preemption: {reclaimWithinCohort: Any}\n"
        )
        + cq_yaml("b", "6", cohort="c")
        + cq_yaml("c", "6", cohort="c")
    )
    book = quota.QuotaBook(config(text))
    a = book.config.cluster_queues["a"]
    running = [
        admitted("b-old", "b", 4000, at=1.0),
        admitted("b-new", "b", 4000, at=2.0),
        admitted("c-big", "c", 10000, at=0.0),
    ]
    for v in running:
        book.add(v.cluster_queue, v.usage)
    need = quota.assign(a, {"cpu": 6000}, [], book)
    assert need.mode is quota.Mode.PREEMPT
    # b-new is tried first (newest) but is not enough; b-old is then within b's nominal quota
    # and is skipped; c-big is enough on its own, so b-new is given back.
    chosen = quota.preemption_targets(a, need, priority=0, created=0.0, admitted=running, book=book)
    assert keys(chosen) == ["c-big"]


BORROWER = "spec:\n  preemption:\n    reclaimWithinCohort: LowerPriority\n"


@pytest.mark.parametrize(
    ("borrow_within_cohort", "preemptor", "expected"),
    [
        ("", 1000, []),
        ("    borrowWithinCohort: {policy: Never}\n", 1000, []),
        ("    borrowWithinCohort: {policy: LowerPriority}\n", 1000, ["b-low"]),
        ("    borrowWithinCohort: {policy: LowerPriority}\n", 40, []),
        (
            "    borrowWithinCohort: {policy: LowerPriority, maxPriorityThreshold: 100}\n",
            1000,
            ["b-low"],
        ),
        (
            "    borrowWithinCohort: {policy: LowerPriority, maxPriorityThreshold: 10}\n",
            1000,
            [],
        ),
    ],
    ids=[
        "unset: a borrower preempts nobody in the cohort",
        "Never: the same",
        "LowerPriority: a lower priority workload of a borrowing queue",
        "LowerPriority: never one of higher priority than the preemptor",
        "maxPriorityThreshold: a victim at most the threshold",
        "maxPriorityThreshold: never one above it",
    ],
)
def test_borrow_within_cohort(borrow_within_cohort, preemptor, expected):
    # a (4) must borrow 2 for a workload of 6; b (8) borrows 2: b-low (4, priority 50) and
    # b-mid (6, priority 200).  Evicting b-low leaves exactly 6 for a.
    text = (
        FLAVOR
        + cq_yaml("a", "4", cohort="c").replace("spec:\n", BORROWER + borrow_within_cohort)
        + cq_yaml("b", "8", cohort="c")
    )
    book = quota.QuotaBook(config(text))
    a = book.config.cluster_queues["a"]
    running = [
        admitted("b-low", "b", 4000, priority=50, at=1.0),
        admitted("b-mid", "b", 6000, priority=200, at=2.0),
    ]
    for v in running:
        book.add(v.cluster_queue, v.usage)
    need = quota.assign(a, {"cpu": 6000}, [], book)
    assert need.mode is quota.Mode.PREEMPT and need.borrows
    chosen = quota.preemption_targets(
        a, need, priority=preemptor, created=0.0, admitted=running, book=book
    )
    assert keys(chosen) == expected
    assert all(t.reason is quota.PreemptionReason.IN_COHORT_RECLAIM_WHILE_BORROWING for t in chosen)
