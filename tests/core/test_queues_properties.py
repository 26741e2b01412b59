"""Property: Kueue objects with any field mutated (any YAML value, in any place, keys removed
or added) either load or raise ``ConfigError`` in one line, never another exception.  The
strategies here also feed the file-level properties in tests/test_queuefile.py."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.core import queues

VALID = """\
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: on-demand}
spec:
  nodeLabels: {pool: batch}
  nodeTaints: [{key: spot, value: "true", effect: NoSchedule}]
  tolerations: [{key: spot, operator: Equal, value: "true", effect: NoSchedule}]
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: team-a}
spec:
  cohortName: all
  queueingStrategy: StrictFIFO
  stopPolicy: None
  namespaceSelector:
    matchLabels: {team: a}
    matchExpressions: [{key: tier, operator: In, values: [gold]}]
  fairSharing: {weight: 2}
  preemption:
    withinClusterQueue: LowerPriority
    reclaimWithinCohort: Any
    borrowWithinCohort: {policy: LowerPriority, maxPriorityThreshold: 100}
  resourceGroups:
  - coveredResources: [cpu, memory]
    flavors:
    - name: on-demand
      resources:
      - {name: cpu, nominalQuota: 9, borrowingLimit: 3, lendingLimit: 1}
      - {name: memory, nominalQuota: 36Gi}
---
apiVersion: v1
kind: List
items:
- apiVersion: kueue.x-k8s.io/v1beta1
  kind: LocalQueue
  metadata: {namespace: team-a, name: user-queue}
  spec: {clusterQueue: team-a, stopPolicy: Hold}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: WorkloadPriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: config.kueue.x-k8s.io/v1beta1
kind: Configuration
waitForPodsReady:
  enable: true
  timeout: 5m
  recoveryTimeout: 90s
  requeuingStrategy: {backoffLimitCount: 5, backoffBaseSeconds: 60, backoffMaxSeconds: 3600}
"""
DOCUMENTS: list[Any] = list(yaml.safe_load_all(VALID))

SPECIAL_TEXT = [
    "",
    ".nan",
    "NaN",
    "nan",
    "inf",
    "-Infinity",
    "1e999999",
    "-1e999999",
    "1e-999999",
    "1e999999Ei",
    "9" * 40,
    "-1",
    "0x_",
    "500m",
    "2Gi",
    "1.5",
    "5m",
    "1h30m",
    "0s",
    "9" * 400 + "h",
    "cpu",
    "memory",
    "on-demand",
    "team-a",
    "Any",
    "kueue.x-k8s.io/v1beta2",
    "ClusterQueue",
    "List",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and both infinities included
    st.sampled_from(SPECIAL_TEXT),
    st.text(max_size=12),
    st.dates(),
    st.binary(max_size=6),
)
keys = st.one_of(st.text(max_size=8), st.integers(), st.none(), st.booleans(), st.floats())
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=10,
)


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys(v)


KNOWN_KEYS = sorted({k for doc in DOCUMENTS for k in _keys(doc)})


def _places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in ``value``, itself included."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _places(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _places(v, (*path, i))


def _at(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step]
    return root


@st.composite
def mutated_documents(draw: st.DrawFn) -> list[Any]:
    """The valid documents with one to four changes: a value replaced by any value, a key
    removed, a key (a field name Kueue has, or any key) added, or a list entry duplicated."""
    documents = copy.deepcopy(DOCUMENTS)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_places(documents))))
        action = draw(st.sampled_from(["replace", "remove", "add", "duplicate"]))
        if not path:
            documents.append(draw(values))
            continue
        parent, last = _at(documents, path[:-1]), path[-1]
        if action == "replace":
            parent[last] = draw(values)
        elif action == "remove":
            del parent[last]
        elif action == "add" and isinstance(parent[last], dict):
            key = draw(st.one_of(st.sampled_from(KNOWN_KEYS), keys))
            parent[last][key] = draw(values)
        elif action == "duplicate" and isinstance(parent[last], list) and parent[last]:
            parent[last].append(copy.deepcopy(parent[last][0]))
        else:
            parent[last] = draw(values)
    return documents


def _loads_or_refuses(documents: list[Any]) -> queues.QueueConfig | None:
    try:
        return queues.parse(documents)
    except queues.ConfigError as exc:
        assert "\n" not in str(exc)
        return None


def test_the_unmutated_documents_load():
    config = queues.parse(copy.deepcopy(DOCUMENTS))
    assert config.local_queues[("team-a", "user-queue")].cluster_queue == "team-a"
    assert config.wait_for_pods_ready.backoff_limit == 5
    assert "nominalQuota" in KNOWN_KEYS and "backoffLimitCount" in KNOWN_KEYS


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_mutated_documents_load_or_raise_config_error(documents: list[Any]):
    _loads_or_refuses(documents)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=4))
def test_any_documents_load_or_raise_config_error(documents: list[Any]):
    _loads_or_refuses(documents)


def test_values_python_cannot_print_are_refused_in_one_line():
    documents = copy.deepcopy(DOCUMENTS)
    documents[3]["value"] = 10**5000
    documents[1]["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"] = [
        datetime.date(2001, 1, 1),
        {None: 10**5000},
    ]
    assert _loads_or_refuses(documents) is None
