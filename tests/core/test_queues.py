"""Loading Kueue's queue objects: the shapes of Kueue's example setups load unchanged, and every
invalid field is named in the error."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from extender.core import model, queues

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


def _load(text: str) -> queues.QueueConfig:
    return queues.parse(yaml.safe_load_all(text))


def test_single_cluster_queue_setup_loads():
    config = _load(SINGLE_CLUSTER_QUEUE)
    cq = config.cluster_queues["cluster-queue"]
    assert cq.quota("default-flavor", "cpu") == queues.Quota(9000)
    assert cq.quota("default-flavor", "memory") == queues.Quota(36 * 2**30)
    assert cq.quota("default-flavor", "pods") == queues.Quota(5)
    assert cq.admits_namespace({"kubernetes.io/metadata.name": "anything"})
    assert config.local_queues[("default", "user-queue")].cluster_queue == "cluster-queue"
    assert cq.strategy is queues.QueueingStrategy.BEST_EFFORT_FIFO


def test_flavors_cohorts_and_both_api_versions_load():
    config = _load(FLAVORS_AND_COHORT)
    spot = config.flavors["spot"]
    assert spot.node_labels == {"instance-type": "spot"}
    assert spot.node_taints == (model.Taint("spot", "true", "NoSchedule"),)
    assert spot.tolerations[0].key == "spot"
    a, b = config.cluster_queues["team-a-cq"], config.cluster_queues["team-b-cq"]
    assert a.cohort == b.cohort == "team-ab"  # cohortName (v1beta2) and cohort (v1beta1)
    assert a.quota("on-demand", "cpu") == queues.Quota(9000, 6000, 4000)
    assert a.quota("on-demand", "cpu").guaranteed == 5000
    assert a.quota("a100", "nvidia.com/gpu") == queues.Quota(4)
    assert [f.flavor for f in a.resource_groups[0].flavors] == ["on-demand", "spot"]
    assert a.strategy is queues.QueueingStrategy.STRICT_FIFO
    assert a.within_cluster_queue is queues.WithinClusterQueue.LOWER_PRIORITY
    assert a.reclaim_within_cohort is queues.ReclaimWithinCohort.ANY
    assert a.borrow_within_cohort == queues.BorrowWithinCohort(
        queues.BorrowWithinCohortPolicy.LOWER_PRIORITY, 100
    )
    assert b.borrow_within_cohort.policy is queues.BorrowWithinCohortPolicy.NEVER
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
    with pytest.raises(queues.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _load(SINGLE_CLUSTER_QUEUE.replace(old, new, 1))


def test_duplicate_objects_are_rejected():
    with pytest.raises(queues.ConfigError, match="ResourceFlavor default-flavor: defined twice"):
        _load(SINGLE_CLUSTER_QUEUE + "---\n" + SINGLE_CLUSTER_QUEUE.split("---")[0])


def test_a_list_wrapper_and_empty_documents_are_accepted():
    items = list(yaml.safe_load_all(SINGLE_CLUSTER_QUEUE))
    config = queues.parse([None, {"apiVersion": "v1", "kind": "List", "items": items}])
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
