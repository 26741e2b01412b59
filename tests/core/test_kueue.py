"""Loading Kueue's queue objects: the shapes of Kueue's example setups load unchanged, and every
invalid field is named in the error."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from extender.core import kueue, model, resources

# Not builders.QUEUE_SETUP: these are Kueue's example setups as Kueue writes them (quoted names,
# comments, both API versions, cohorts, taints, a gpu group), which must load unchanged.
SINGLE_CLUSTER_QUEUE = """\
apiVersion: kueue.x-k8s.io/v1beta1
kind: ResourceFlavor
metadata:
  name: "default-flavor"
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: ClusterQueue
metadata:
  name: "cluster-queue"
spec:
  namespaceSelector: {} # match all.
  resourceGroups:
  - coveredResources: ["cpu", "memory", "pods"]
    flavors:
    - name: "default-flavor"
      resources:
      - name: "cpu"
        nominalQuota: 9
      - name: "memory"
        nominalQuota: 36Gi
      - name: "pods"
        nominalQuota: 5
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: LocalQueue
metadata:
  namespace: "default"
  name: "user-queue"
spec:
  clusterQueue: "cluster-queue"
"""

FLAVORS_AND_COHORT = """\
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: spot}
spec:
  nodeLabels: {instance-type: spot}
  nodeTaints:
  - {key: spot, value: "true", effect: NoSchedule}
  tolerations:
  - {key: spot, operator: Equal, value: "true", effect: NoSchedule}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: a100}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: on-demand}
spec:
  nodeLabels: {instance-type: on-demand}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: team-a-cq}
spec:
  cohortName: team-ab
  queueingStrategy: StrictFIFO
  namespaceSelector:
    matchExpressions:
    - {key: team, operator: In, values: [a]}
  preemption:
    withinClusterQueue: LowerPriority
    reclaimWithinCohort: Any
    borrowWithinCohort: {policy: LowerPriority, maxPriorityThreshold: 100}
  resourceGroups:
  - coveredResources: [cpu, memory]
    flavors:
    - name: on-demand
      resources:
      - {name: cpu, nominalQuota: 9, borrowingLimit: 6, lendingLimit: 4}
      - {name: memory, nominalQuota: 36Gi}
    - name: spot
      resources:
      - {name: cpu, nominalQuota: 18}
      - {name: memory, nominalQuota: 72Gi}
  - coveredResources: [nvidia.com/gpu]
    flavors:
    - name: a100
      resources: [{name: nvidia.com/gpu, nominalQuota: 4}]
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: ClusterQueue
metadata: {name: team-b-cq}
spec:
  cohort: team-ab
  namespaceSelector: {}
  resourceGroups:
  - coveredResources: [cpu]
    flavors:
    - name: on-demand
      resources: [{name: cpu, nominalQuota: 12}]
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: WorkloadPriorityClass
metadata: {name: high}
value: 10000
description: "urgent"
"""


def _load(text: str) -> kueue.QueueConfig:
    return kueue.parse(yaml.safe_load_all(text))


def test_single_cluster_queue_setup_loads():
    config = _load(SINGLE_CLUSTER_QUEUE)
    cq = config.cluster_queues["cluster-queue"]
    assert cq.quota("default-flavor", "cpu") == kueue.Quota(9000)
    assert cq.quota("default-flavor", "memory") == kueue.Quota(36 * 2**30)
    assert cq.quota("default-flavor", "pods") == kueue.Quota(5)
    assert cq.admits_namespace({"kubernetes.io/metadata.name": "anything"})
    assert config.local_queues[("default", "user-queue")].cluster_queue == "cluster-queue"
    assert cq.strategy is kueue.QueueingStrategy.BEST_EFFORT_FIFO


def test_flavors_cohorts_and_both_api_versions_load():
    config = _load(FLAVORS_AND_COHORT)
    spot = config.flavors["spot"]
    assert spot.node_labels == {"instance-type": "spot"}
    assert spot.node_taints == (model.Taint("spot", "true", "NoSchedule"),)
    assert spot.tolerations[0].key == "spot"
    a, b = config.cluster_queues["team-a-cq"], config.cluster_queues["team-b-cq"]
    assert a.cohort == b.cohort == "team-ab"  # cohortName (v1beta2) and cohort (v1beta1)
    assert a.quota("on-demand", "cpu") == kueue.Quota(9000, 6000, 4000)
    assert a.quota("on-demand", "cpu").guaranteed == 5000
    assert a.quota("a100", "nvidia.com/gpu") == kueue.Quota(4)
    assert [f.flavor for f in a.resource_groups[0].flavors] == ["on-demand", "spot"]
    assert a.strategy is kueue.QueueingStrategy.STRICT_FIFO
    assert a.within_cluster_queue is kueue.WithinClusterQueue.LOWER_PRIORITY
    assert a.reclaim_within_cohort is kueue.ReclaimWithinCohort.ANY
    assert a.borrow_within_cohort == kueue.BorrowWithinCohort(
        kueue.BorrowWithinCohortPolicy.LOWER_PRIORITY, 100
    )
    assert b.borrow_within_cohort.policy is kueue.BorrowWithinCohortPolicy.NEVER
    assert a.admits_namespace({"team": "a"}) and not a.admits_namespace({"team": "b"})
    assert config.priority_classes["high"].value == 10000
    assert [cq.name for cq in config.cohort_members("team-ab")] == ["team-a-cq", "team-b-cq"]


def test_a_missing_namespace_selector_admits_no_namespace():
    text = SINGLE_CLUSTER_QUEUE.replace("  namespaceSelector: {} # match all.\n", "")
    cq = _load(text).cluster_queues["cluster-queue"]
    assert not cq.admits_namespace({"kubernetes.io/metadata.name": "default"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("nominalQuota: 9", "nominalQuota: nine"),
            "ClusterQueue cluster-queue: spec."
            "resourceGroups[0].flavors[0].resources[0].nominalQuota: not a quantity",
        ),
        (("nominalQuota: 9", "nominalQuota: -1"), "nominalQuota: must not be negative"),
        (
            ('name: "default-flavor"\n      resources', 'name: "gpu-flavor"\n      resources'),
            "ResourceFlavor 'gpu-flavor' is not defined",
        ),
        (('      - name: "pods"\n        nominalQuota: 5\n', ""), "has no quota for pods"),
        (("kind: LocalQueue", "kind: Workload"), "kind 'Workload' is not"),
        (("v1beta1\nkind: LocalQueue", "v1\nkind: LocalQueue"), "apiVersion 'kueue.x-k8s.io/v1'"),
        (
            ('clusterQueue: "cluster-queue"', "clusterQueue: 7"),
            "LocalQueue default/user-queue: spec.clusterQueue: must be a string",
        ),
        (
            (
                "namespaceSelector: {} # match all.",
                "namespaceSelector: {}\n  queueingStrategy: Sometimes",
            ),
            "spec.queueingStrategy: 'Sometimes' is not one of StrictFIFO, BestEffortFIFO",
        ),
        (
            ("nominalQuota: 9", "nominalQuota: 9\n        borrowingLimit: 1"),
            "borrowingLimit and lendingLimit need a cohort",
        ),
        (
            (
                "namespaceSelector: {} # match all.",
                "namespaceSelector: {}\n  preemption:\n"
                "    borrowWithinCohort: {policy: LowerPriority}",
            ),
            "spec.preemption.borrowWithinCohort: needs spec.preemption.reclaimWithinCohort "
            "other than Never",
        ),
        (
            (
                "namespaceSelector: {} # match all.",
                "namespaceSelector: {}\n  preemption:\n    reclaimWithinCohort: Any\n"
                "    borrowWithinCohort: {policy: LowerPriority, maxPriorityThreshold: high}",
            ),
            "spec.preemption.borrowWithinCohort.maxPriorityThreshold: must be an integer",
        ),
    ],
    ids=[
        "a quota that is no quantity",
        "a negative quota",
        "a flavor nobody defined",
        "a covered resource without quota",
        "a kind that is not a queue object",
        "an apiVersion that is not Kueue's",
        "a field of the wrong type",
        "an unknown queueing strategy",
        "borrowing without a cohort",
        "borrowWithinCohort without reclaimWithinCohort",
        "a priority threshold that is no integer",
    ],
)
def test_invalid_configurations_name_object_and_field(change, message):
    old, new = change
    assert old in SINGLE_CLUSTER_QUEUE
    with pytest.raises(kueue.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _load(SINGLE_CLUSTER_QUEUE.replace(old, new, 1))


def test_duplicate_objects_are_rejected():
    with pytest.raises(kueue.ConfigError, match="ResourceFlavor default-flavor: defined twice"):
        _load(SINGLE_CLUSTER_QUEUE + "---\n" + SINGLE_CLUSTER_QUEUE.split("---")[0])


def test_a_list_wrapper_and_empty_documents_are_accepted():
    items = list(yaml.safe_load_all(SINGLE_CLUSTER_QUEUE))
    config = kueue.parse([None, {"apiVersion": "v1", "kind": "List", "items": items}])
    assert set(config.cluster_queues) == {"cluster-queue"}


def test_label_selector_operators():
    selector = (
        _load(
            textwrap.dedent("""\
        apiVersion: kueue.x-k8s.io/v1beta2
        kind: ClusterQueue
        metadata: {name: q}
        spec:
          namespaceSelector:
            matchLabels: {env: prod}
            matchExpressions:
            - {key: team, operator: NotIn, values: [x]}
            - {key: billing, operator: Exists}
            - {key: legacy, operator: DoesNotExist}
        """)
        )
        .cluster_queues["q"]
        .namespace_selector
    )
    assert selector is not None
    assert selector.matches({"env": "prod", "billing": "1"})
    assert not selector.matches({"env": "prod", "billing": "1", "team": "x"})
    assert not selector.matches({"env": "prod"})
    assert not selector.matches({"env": "prod", "billing": "1", "legacy": "y"})
    assert not selector.matches({"env": "dev", "billing": "1"})


def test_the_shipped_deploy_configuration_loads():
    from pathlib import Path

    configmap = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "queues.yaml").read_text())
    config = _load(configmap["data"]["queues.yaml"])
    assert config.local_queues[("default", "user-queue")].cluster_queue == "cluster-queue"


# -- every number, every type: refused with the object and field, never another exception ----

# Not builders.QUEUE_SETUP: a field of every kind muster reads, for the replacements below (the
# error names the object and the field); builders.KUEUE_OBJECTS has still more, for properties.
EVERY_FIELD = """\
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: default-flavor}
spec:
  nodeLabels: {pool: batch}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: team-a}
spec:
  cohortName: all
  namespaceSelector: {matchLabels: {team: a}}
  fairSharing: {weight: 2}
  preemption:
    reclaimWithinCohort: Any
    borrowWithinCohort: {policy: LowerPriority, maxPriorityThreshold: 100}
  resourceGroups:
  - coveredResources: [cpu, memory]
    flavors:
    - name: default-flavor
      resources:
      - {name: cpu, nominalQuota: 9, borrowingLimit: 3, lendingLimit: 1}
      - {name: memory, nominalQuota: 36Gi}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {namespace: team-a, name: user-queue}
spec: {clusterQueue: team-a}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: WorkloadPriorityClass
metadata: {name: high}
value: 1000
"""
QUOTA = "ClusterQueue team-a: spec.resourceGroups[0].flavors[0].resources[0]"


def test_the_every_field_setup_loads():
    config = _load(EVERY_FIELD)
    assert config.cluster_queues["team-a"].quota("default-flavor", "cpu") == kueue.Quota(
        9000, 3000, 1000
    )
    assert config.priority_classes["high"].value == 1000


def _refused(old: str, new: str) -> str:
    assert old in EVERY_FIELD
    with pytest.raises(kueue.ConfigError) as caught:
        _load(EVERY_FIELD.replace(old, new, 1))
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "nominalQuota: 9",
            "nominalQuota: .nan",
            f"{QUOTA}.nominalQuota: not a valid quantity: '.nan'",
        ),
        (
            "nominalQuota: 9",
            "nominalQuota: .inf",
            f"{QUOTA}.nominalQuota: not a valid quantity: '.inf'",
        ),
        (
            "nominalQuota: 9",
            "nominalQuota: -.inf",
            f"{QUOTA}.nominalQuota: not a valid quantity: '-.inf'",
        ),
        (
            "nominalQuota: 9",
            "nominalQuota: 1.0e+999",
            f"{QUOTA}.nominalQuota: not a valid quantity: '.inf'",
        ),
        ("nominalQuota: 9", "nominalQuota: -9", f"{QUOTA}.nominalQuota: must not be negative"),
        (
            "nominalQuota: 9",
            "nominalQuota: [9]",
            f"{QUOTA}.nominalQuota: not a valid quantity: [9]",
        ),
        (
            "nominalQuota: 9",
            "nominalQuota: {a: 9}",
            f"{QUOTA}.nominalQuota: not a valid quantity: {{'a': 9}}",
        ),
        (
            "nominalQuota: 9",
            "nominalQuota: true",
            f"{QUOTA}.nominalQuota: not a valid quantity: True",
        ),
        ("nominalQuota: 9", "nominalQuota: null", f"{QUOTA}.nominalQuota: is missing"),
        (
            "borrowingLimit: 3",
            "borrowingLimit: .nan",
            f"{QUOTA}.borrowingLimit: not a valid quantity: '.nan'",
        ),
        (
            "borrowingLimit: 3",
            "borrowingLimit: .inf",
            f"{QUOTA}.borrowingLimit: not a valid quantity: '.inf'",
        ),
        (
            "lendingLimit: 1",
            "lendingLimit: .nan",
            f"{QUOTA}.lendingLimit: not a valid quantity: '.nan'",
        ),
        ("lendingLimit: 1", "lendingLimit: -1", f"{QUOTA}.lendingLimit: must not be negative"),
        (
            "weight: 2",
            "weight: .nan",
            "ClusterQueue team-a: spec.fairSharing.weight: not a valid quantity: '.nan'",
        ),
        (
            "weight: 2",
            "weight: .inf",
            "ClusterQueue team-a: spec.fairSharing.weight: not a valid quantity: '.inf'",
        ),
        (
            "weight: 2",
            "weight: -1",
            "ClusterQueue team-a: spec.fairSharing.weight: must not be negative",
        ),
        (
            "maxPriorityThreshold: 100",
            "maxPriorityThreshold: 99999999999",
            "ClusterQueue team-a: spec.preemption.borrowWithinCohort.maxPriorityThreshold: "
            "must be an integer from -2147483648 to 2147483647, got 99999999999",
        ),
        (
            "maxPriorityThreshold: 100",
            "maxPriorityThreshold: .inf",
            "spec.preemption.borrowWithinCohort.maxPriorityThreshold: "
            "must be an integer, got '.inf'",
        ),
        (
            "value: 1000",
            "value: .nan",
            "WorkloadPriorityClass high: value: must be an integer, got '.nan'",
        ),
        (
            "value: 1000",
            "value: 1.5",
            "WorkloadPriorityClass high: value: must be an integer, got 1.5",
        ),
        (
            "value: 1000",
            "value: 2147483648",
            "WorkloadPriorityClass high: value: must be an integer from -2147483648 to 2147483647",
        ),
        (
            "value: 1000",
            "value: " + "9" * 4000,
            "WorkloadPriorityClass high: value: must be an integer from -2147483648 to 2147483647, "
            "got 999999999999999999...9999999999999999999",
        ),
        (
            "value: 1000",
            "value: null",
            "WorkloadPriorityClass high: value: must be an integer, got None",
        ),
    ],
    ids=[
        "a NaN quota",
        "an infinite quota",
        "a negative infinite quota",
        "a float quota past the float range",
        "a negative quota",
        "a list where a quota is expected",
        "a mapping where a quota is expected",
        "a boolean quota",
        "a null quota",
        "a NaN borrowing limit",
        "an infinite borrowing limit",
        "a NaN lending limit",
        "a negative lending limit",
        "a NaN fair-sharing weight",
        "an infinite fair-sharing weight",
        "a negative fair-sharing weight",
        "a priority threshold past int32",
        "an infinite priority threshold",
        "a NaN priority",
        "a fractional priority",
        "a priority past int32",
        "a priority too long to print",
        "a null priority",
    ],
)
def test_numbers_are_validated_where_they_are_read(old, new, message):
    assert message in _refused(old, new)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("nominalQuota: 9", "nominalQuota: 1e999999", f"{QUOTA}.nominalQuota: "),
        ("nominalQuota: 36Gi", "nominalQuota: 1e999999Ei", "resources[1].nominalQuota: "),
        ("lendingLimit: 1", "lendingLimit: 1e999999", f"{QUOTA}.lendingLimit: "),
    ],
    ids=["a cpu quota", "a memory quota", "a lending limit"],
)
def test_a_huge_exponent_quantity_is_refused_or_capped(old, new, message):
    """Kubernetes caps quantities at the int64 maximum; whatever the quantity parser makes of
    ``1e999999`` (a cap, its own error or an arithmetic one), loading gives a configuration or
    a ConfigError naming the field, nothing else."""
    try:
        config = _load(EVERY_FIELD.replace(old, new, 1))
    except kueue.ConfigError as exc:
        assert message in str(exc)
    else:
        cq = config.cluster_queues["team-a"]
        quotas = [cq.quota("default-flavor", r) for r in ("cpu", "memory")]
        assert any(
            q is not None and resources.MAX_AMOUNT in (q.nominal, q.lending_limit) for q in quotas
        )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("kind: LocalQueue", "kind: [LocalQueue]", "kind: must be a string, got ['LocalQueue']"),
        ("kind: LocalQueue", "kind: null", "kind is missing"),
        (
            "apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue",
            "apiVersion: [kueue.x-k8s.io/v1beta2]\nkind: LocalQueue",
            "apiVersion: must be a string, got ['kueue.x-k8s.io/v1beta2']",
        ),
        (
            "metadata: {namespace: team-a, name: user-queue}",
            "metadata: [team-a, user-queue]",
            "document 3 (LocalQueue): metadata: must be an object",
        ),
        (
            "metadata: {namespace: team-a, name: user-queue}",
            "metadata: {namespace: [team-a], name: user-queue}",
            "LocalQueue user-queue: metadata.namespace: must be a string, got ['team-a']",
        ),
        (
            "metadata: {name: high}",
            "metadata: {name: 7}",
            "document 4 (WorkloadPriorityClass): metadata.name: must be a string, got 7",
        ),
        (
            "metadata: {name: high}",
            "metadata: {name: 2001-01-01}",
            "metadata.name: must be a string, got datetime.date(2001, 1, 1)",
        ),
        (
            "spec: {clusterQueue: team-a}",
            "spec: [team-a]",
            "LocalQueue team-a/user-queue: spec: must be an object",
        ),
        (
            "spec: {clusterQueue: team-a}",
            "spec: {clusterQueue: [team-a]}",
            "spec.clusterQueue: must be a string",
        ),
        (
            "  resourceGroups:\n",
            "  resourceGroups: {}\n  x:\n",
            "ClusterQueue team-a: spec.resourceGroups: must be a list",
        ),
        (
            "  - coveredResources: [cpu, memory]",
            "  - coveredResources: cpu\n  - coveredResources: [memory]",
            "spec.resourceGroups[0].coveredResources: must be a list, got 'cpu'",
        ),
        (
            "coveredResources: [cpu, memory]",
            "coveredResources: [cpu, 7]",
            "must be a non-empty list of resource names",
        ),
        (
            "coveredResources: [cpu, memory]",
            "coveredResources: [cpu, cpu, memory]",
            "coveredResources: lists a resource twice",
        ),
        (
            "    - name: default-flavor\n      resources:",
            "    - default-flavor\n    - resources:",
            "spec.resourceGroups[0].flavors[0]: must be an object, got 'default-flavor'",
        ),
        (
            "- {name: memory, nominalQuota: 36Gi}",
            "- {name: cpu, nominalQuota: 36Gi}",
            "resources[1].name: 'cpu' appears twice",
        ),
        (
            "- {name: memory, nominalQuota: 36Gi}",
            "- [memory, 36Gi]",
            "resources[1]: must be an object, got ['memory', '36Gi']",
        ),
        (
            "matchLabels: {team: a}",
            "matchLabels: {7: a}",
            "spec.namespaceSelector.matchLabels: keys must be strings",
        ),
        (
            "matchLabels: {team: a}",
            "matchLabels: {team: [a]}",
            "spec.namespaceSelector.matchLabels: values must be strings",
        ),
        (
            "namespaceSelector: {matchLabels: {team: a}}",
            "namespaceSelector: [team]",
            "spec.namespaceSelector: must be an object",
        ),
        ("fairSharing: {weight: 2}", "fairSharing: [2]", "spec.fairSharing: must be an object"),
        ("preemption:\n", "preemption: 7\n  x:\n", "spec.preemption: must be an object, got 7"),
        (
            "nodeLabels: {pool: batch}",
            "nodeLabels: {pool: 7}",
            "ResourceFlavor default-flavor: spec.nodeLabels: values must be strings",
        ),
        ("nodeLabels: {pool: batch}", "nodeLabels: [pool]", "spec.nodeLabels: must be an object"),
    ],
    ids=[
        "a list for the kind",
        "no kind",
        "a list for the apiVersion",
        "a list for the metadata",
        "a list for the namespace",
        "a number for the name",
        "a date for the name",
        "a list for a spec",
        "a list for a string field",
        "a mapping for the resource groups",
        "a string for the covered resources",
        "a number among the covered resources",
        "a covered resource listed twice",
        "a string for a flavor",
        "a resource quota given twice",
        "a list for a resource quota",
        "a number as a label key",
        "a list as a label value",
        "a list for a selector",
        "a list for fair sharing",
        "a number for preemption",
        "a number as a node label",
        "a list for node labels",
    ],
)
def test_wrong_types_at_every_level_name_the_field(old, new, message):
    assert message in _refused(old, new)


def test_kueue_list_limits_bound_the_work_of_aliased_lists():
    many = "\n".join(f"  - {{coveredResources: [r{i}], flavors: []}}" for i in range(17))
    assert "spec.resourceGroups: has 17 items, more than 16" in _refused(
        "  resourceGroups:\n", f"  resourceGroups:\n{many}\n  x:\n"
    )


@pytest.mark.parametrize(
    "document",
    [
        7,
        "text",
        [1, 2],
        {"kind": {"a": [1] * 10}, "apiVersion": 5},
        {
            "kind": "Queue",
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "metadata": {"name": "\n"},
        },
        {"apiVersion": [[[[[[[[[[[]]]]]]]]]]], "kind": "ResourceFlavor"},
    ],
    ids=[
        "a number",
        "a string",
        "a list",
        "a mapping for the kind",
        "a name with a newline",
        "a deeply nested apiVersion",
    ],
)
def test_documents_of_any_shape_are_refused_in_one_line(document):
    with pytest.raises(kueue.ConfigError) as caught:
        kueue.parse([document])
    assert "\n" not in str(caught.value)


def test_a_structure_deeper_than_the_interpreter_can_print_is_still_one_line():
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(kueue.ConfigError, match=r"apiVersion: must be a string, got \[\[\[\["):
        kueue.parse([{"kind": "ClusterQueue", "apiVersion": deep, "metadata": {"name": "q"}}])
