"""Kueue's queue objects: ResourceFlavor, ClusterQueue, LocalQueue, WorkloadPriorityClass.

Users bring Kueue's own YAML (``kueue.x-k8s.io/v1beta1`` or ``v1beta2``, plus optionally
Kueue's controller ``Configuration`` for its ``waitForPodsReady`` section); ``parse`` turns the
documents into one frozen ``QueueConfig`` or raises ``ConfigError`` naming the object and the
field.  Fields Kueue has and muster does not act on (fair sharing, admission checks, flavor
fungibility) are accepted and ignored, so existing manifests load unchanged.  Pure: no I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extender.core import lifecycle, model, resources

API_GROUP = "kueue.x-k8s.io"
API_VERSIONS = ("v1beta1", "v1beta2")
CONFIG_API_GROUP = "config.kueue.x-k8s.io"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set on every namespace by the API server (1.21+); muster assumes it for every namespace."""


class ConfigError(ValueError):
    """A queue configuration that cannot be used; the message names the object and field."""


class QueueingStrategy(enum.StrEnum):
    STRICT_FIFO = "StrictFIFO"
    """An older workload that cannot be admitted blocks newer ones."""
    BEST_EFFORT_FIFO = "BestEffortFIFO"
    """Same order, but newer workloads that fit go ahead of an inadmissible older one."""


class StopPolicy(enum.StrEnum):
    NONE = "None"
    HOLD = "Hold"
    """No new admissions."""
    HOLD_AND_DRAIN = "HoldAndDrain"
    """No new admissions, and admitted workloads are evicted."""


class WithinClusterQueue(enum.StrEnum):
    NEVER = "Never"
    LOWER_PRIORITY = "LowerPriority"
    LOWER_OR_NEWER_EQUAL_PRIORITY = "LowerOrNewerEqualPriority"


class ReclaimWithinCohort(enum.StrEnum):
    NEVER = "Never"
    LOWER_PRIORITY = "LowerPriority"
    ANY = "Any"


class BorrowWithinCohortPolicy(enum.StrEnum):
    NEVER = "Never"
    LOWER_PRIORITY = "LowerPriority"


@dataclass(frozen=True, slots=True)
class BorrowWithinCohort:
    """Whether a workload that must borrow may preempt cohort workloads to do so: those of
    lower priority than its own and at most ``max_priority_threshold`` (when set)."""

    policy: BorrowWithinCohortPolicy = BorrowWithinCohortPolicy.NEVER
    max_priority_threshold: int | None = None

    def allows(self, *, victim: int, preemptor: int) -> bool:
        if self.policy is BorrowWithinCohortPolicy.NEVER or victim >= preemptor:
            return False
        return self.max_priority_threshold is None or victim <= self.max_priority_threshold


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A Kubernetes label selector: every ``matchLabels`` pair and every expression must hold."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[model.Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator is model.Operator.IN:
                ok = present and labels[req.key] in req.values
            elif req.operator is model.Operator.NOT_IN:
                ok = not present or labels[req.key] not in req.values
            elif req.operator is model.Operator.EXISTS:
                ok = present
            else:
                ok = not present
            if not ok:
                return False
        return True


@dataclass(frozen=True, slots=True)
class ResourceFlavor:
    name: str
    node_labels: Mapping[str, str] = field(default_factory=dict)
    """Injected into the pod's nodeSelector once admitted in this flavor."""
    node_taints: tuple[model.Taint, ...] = ()
    """A workload must tolerate these (NoSchedule/NoExecute) to use the flavor's quota."""
    tolerations: tuple[model.Toleration, ...] = ()
    """Added to the pod's tolerations once admitted in this flavor."""


@dataclass(frozen=True, slots=True)
class Quota:
    """One resource's quota in one flavor of a ClusterQueue (amounts in ``resources`` units)."""

    nominal: int
    borrowing_limit: int | None = None
    """How much more than ``nominal`` may be borrowed from the cohort; None: no limit."""
    lending_limit: int | None = None
    """How much of the unused ``nominal`` the cohort may borrow; None: all of it."""

    @property
    def guaranteed(self) -> int:
        """The part of ``nominal`` never lent to the cohort."""
        return max(0, self.nominal - self.lending_limit) if self.lending_limit is not None else 0


@dataclass(frozen=True, slots=True)
class FlavorQuotas:
    flavor: str
    quotas: Mapping[str, Quota]


@dataclass(frozen=True, slots=True)
class ResourceGroup:
    """Resources that are always assigned the same flavor, and the flavors in preference order."""

    covered: tuple[str, ...]
    flavors: tuple[FlavorQuotas, ...]


@dataclass(frozen=True, slots=True)
class ClusterQueue:
    name: str
    resource_groups: tuple[ResourceGroup, ...] = ()
    cohort: str = ""
    namespace_selector: LabelSelector | None = None
    """None (the default) admits no namespace; an empty selector admits all."""
    strategy: QueueingStrategy = QueueingStrategy.BEST_EFFORT_FIFO
    within_cluster_queue: WithinClusterQueue = WithinClusterQueue.NEVER
    reclaim_within_cohort: ReclaimWithinCohort = ReclaimWithinCohort.NEVER
    borrow_within_cohort: BorrowWithinCohort = BorrowWithinCohort()
    stop_policy: StopPolicy = StopPolicy.NONE

    def group_of(self, resource: str) -> ResourceGroup | None:
        return next((g for g in self.resource_groups if resource in g.covered), None)

    def quota(self, flavor: str, resource: str) -> Quota | None:
        for group in self.resource_groups:
            for fq in group.flavors:
                if fq.flavor == flavor:
                    return fq.quotas.get(resource)
        return None

    def admits_namespace(self, labels: Mapping[str, str]) -> bool:
        return self.namespace_selector is not None and self.namespace_selector.matches(labels)


@dataclass(frozen=True, slots=True)
class LocalQueue:
    namespace: str
    name: str
    cluster_queue: str
    stop_policy: StopPolicy = StopPolicy.NONE

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class WorkloadPriorityClass:
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class QueueConfig:
    flavors: Mapping[str, ResourceFlavor] = field(default_factory=dict)
    cluster_queues: Mapping[str, ClusterQueue] = field(default_factory=dict)
    local_queues: Mapping[tuple[str, str], LocalQueue] = field(default_factory=dict)
    """By (namespace, name)."""
    priority_classes: Mapping[str, WorkloadPriorityClass] = field(default_factory=dict)
    wait_for_pods_ready: lifecycle.WaitForPodsReady = field(
        default_factory=lifecycle.WaitForPodsReady
    )

    def cohort_members(self, cohort: str) -> list[ClusterQueue]:
        if not cohort:
            return []
        return [cq for cq in self.cluster_queues.values() if cq.cohort == cohort]


# -- parsing --------------------------------------------------------------------------------


class _Reader:
    """Typed access to one raw object's fields; errors name the object and the field path."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, path: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.what}: {path}: {problem}")

    def obj(self, raw: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"{path}.{key}" if path else key, "must be an object")
        return value

    def seq(self, raw: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{path}.{key}", "must be a list")
        return value

    def text(self, raw: Mapping[str, Any], key: str, path: str, default: str = "") -> str:
        value = raw.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(f"{path}.{key}", f"must be a string, got {value!r}")
        return value

    def str_map(self, raw: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
        value = self.obj(raw, key, path)
        if not all(isinstance(v, str) for v in value.values()):
            raise self.fail(f"{path}.{key}", "values must be strings")
        return dict(value)

    def enum(self, raw: Mapping[str, Any], key: str, path: str, default: enum.StrEnum) -> Any:
        kind = type(default)
        text = self.text(raw, key, path, default.value)
        try:
            return kind(text)
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise self.fail(f"{path}.{key}", f"{text!r} is not one of {allowed}") from None

    def amount(self, resource: str, raw: Mapping[str, Any], key: str, path: str) -> int | None:
        if raw.get(key) is None:
            return None
        try:
            value = resources.amount(resource, raw[key])
        except resources.QuantityError as exc:
            raise self.fail(f"{path}.{key}", str(exc)) from None
        if value < 0:
            raise self.fail(f"{path}.{key}", "must not be negative")
        return value

    def requirements(self, raw: list[Any], path: str) -> tuple[model.Requirement, ...]:
        out = []
        for i, item in enumerate(raw):
            where = f"{path}[{i}]"
            if not isinstance(item, dict):
                raise self.fail(where, "must be an object")
            op_text = self.text(item, "operator", where)
            if op_text not in ("In", "NotIn", "Exists", "DoesNotExist"):
                raise self.fail(f"{where}.operator", f"{op_text!r} is not a label operator")
            values = self.seq(item, "values", where)
            if not all(isinstance(v, str) for v in values):
                raise self.fail(f"{where}.values", "must be strings")
            out.append(
                model.Requirement(
                    self.text(item, "key", where), model.Operator(op_text), tuple(values)
                )
            )
        return tuple(out)

    def selector(self, raw: Mapping[str, Any], key: str, path: str) -> LabelSelector | None:
        if raw.get(key) is None:
            return None
        value = self.obj(raw, key, path)
        where = f"{path}.{key}"
        return LabelSelector(
            match_labels=self.str_map(value, "matchLabels", where),
            match_expressions=self.requirements(
                self.seq(value, "matchExpressions", where), f"{where}.matchExpressions"
            ),
        )

    def taints(self, raw: Mapping[str, Any], key: str, path: str) -> tuple[model.Taint, ...]:
        out = []
        for i, item in enumerate(self.seq(raw, key, path)):
            where = f"{path}.{key}[{i}]"
            if not isinstance(item, dict):
                raise self.fail(where, "must be an object")
            effect = self.text(item, "effect", where)
            if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                raise self.fail(f"{where}.effect", f"{effect!r} is not a taint effect")
            out.append(
                model.Taint(self.text(item, "key", where), self.text(item, "value", where), effect)
            )
        return tuple(out)

    def tolerations(
        self, raw: Mapping[str, Any], key: str, path: str
    ) -> tuple[model.Toleration, ...]:
        out = []
        for i, item in enumerate(self.seq(raw, key, path)):
            where = f"{path}.{key}[{i}]"
            if not isinstance(item, dict):
                raise self.fail(where, "must be an object")
            operator = self.text(item, "operator", where, "Equal")
            if operator not in ("Equal", "Exists"):
                raise self.fail(f"{where}.operator", f"{operator!r} is not Equal or Exists")
            out.append(
                model.Toleration(
                    key=self.text(item, "key", where),
                    operator=operator,
                    value=self.text(item, "value", where),
                    effect=self.text(item, "effect", where),
                )
            )
        return tuple(out)


def _flavor(raw: Mapping[str, Any], name: str) -> ResourceFlavor:
    r = _Reader(f"ResourceFlavor {name}")
    spec = r.obj(raw, "spec", "")
    return ResourceFlavor(
        name=name,
        node_labels=r.str_map(spec, "nodeLabels", "spec"),
        node_taints=r.taints(spec, "nodeTaints", "spec"),
        tolerations=r.tolerations(spec, "tolerations", "spec"),
    )


def _resource_group(r: _Reader, raw: object, path: str, *, cohort: str) -> ResourceGroup:
    if not isinstance(raw, dict):
        raise r.fail(path, "must be an object")
    covered = r.seq(raw, "coveredResources", path)
    if not covered or not all(isinstance(c, str) and c for c in covered):
        raise r.fail(f"{path}.coveredResources", "must be a non-empty list of resource names")
    flavors = []
    for i, item in enumerate(r.seq(raw, "flavors", path)):
        where = f"{path}.flavors[{i}]"
        if not isinstance(item, dict):
            raise r.fail(where, "must be an object")
        name = r.text(item, "name", where)
        if not name:
            raise r.fail(f"{where}.name", "is missing")
        quotas: dict[str, Quota] = {}
        for j, res in enumerate(r.seq(item, "resources", where)):
            at = f"{where}.resources[{j}]"
            if not isinstance(res, dict):
                raise r.fail(at, "must be an object")
            resource = r.text(res, "name", at)
            if resource not in covered:
                raise r.fail(f"{at}.name", f"{resource!r} is not in coveredResources")
            nominal = r.amount(resource, res, "nominalQuota", at)
            if nominal is None:
                raise r.fail(f"{at}.nominalQuota", "is missing")
            borrowing = r.amount(resource, res, "borrowingLimit", at)
            lending = r.amount(resource, res, "lendingLimit", at)
            if (borrowing is not None or lending is not None) and not cohort:
                raise r.fail(at, "borrowingLimit and lendingLimit need a cohort")
            if lending is not None and lending > nominal:
                raise r.fail(f"{at}.lendingLimit", "must not exceed nominalQuota")
            quotas[resource] = Quota(nominal, borrowing, lending)
        if sorted(quotas) != sorted(covered):
            missing = sorted(set(covered) - set(quotas))
            raise r.fail(f"{where}.resources", f"has no quota for {', '.join(missing)}")
        flavors.append(FlavorQuotas(name, quotas))
    if not flavors:
        raise r.fail(f"{path}.flavors", "must list at least one flavor")
    return ResourceGroup(tuple(covered), tuple(flavors))


def _cluster_queue(raw: Mapping[str, Any], name: str) -> ClusterQueue:
    r = _Reader(f"ClusterQueue {name}")
    spec = r.obj(raw, "spec", "")
    cohort = r.text(spec, "cohortName", "spec") or r.text(spec, "cohort", "spec")
    groups = tuple(
        _resource_group(r, g, f"spec.resourceGroups[{i}]", cohort=cohort)
        for i, g in enumerate(r.seq(spec, "resourceGroups", "spec"))
    )
    covered: set[str] = set()
    flavors: set[str] = set()
    for i, group in enumerate(groups):
        for resource in group.covered:
            if resource in covered:
                raise r.fail(
                    f"spec.resourceGroups[{i}].coveredResources",
                    f"{resource!r} is already covered by another resource group",
                )
            covered.add(resource)
        for fq in group.flavors:
            if fq.flavor in flavors:
                raise r.fail(
                    f"spec.resourceGroups[{i}].flavors", f"flavor {fq.flavor!r} appears twice"
                )
            flavors.add(fq.flavor)
    preemption = r.obj(spec, "preemption", "spec")
    reclaim = r.enum(
        preemption, "reclaimWithinCohort", "spec.preemption", ReclaimWithinCohort.NEVER
    )
    return ClusterQueue(
        name=name,
        resource_groups=groups,
        cohort=cohort,
        namespace_selector=r.selector(spec, "namespaceSelector", "spec"),
        strategy=r.enum(spec, "queueingStrategy", "spec", QueueingStrategy.BEST_EFFORT_FIFO),
        within_cluster_queue=r.enum(
            preemption, "withinClusterQueue", "spec.preemption", WithinClusterQueue.NEVER
        ),
        reclaim_within_cohort=reclaim,
        borrow_within_cohort=_borrow_within_cohort(r, preemption, reclaim),
        stop_policy=r.enum(spec, "stopPolicy", "spec", StopPolicy.NONE),
    )


def _borrow_within_cohort(
    r: _Reader, preemption: Mapping[str, Any], reclaim: ReclaimWithinCohort
) -> BorrowWithinCohort:
    path = "spec.preemption.borrowWithinCohort"
    raw = r.obj(preemption, "borrowWithinCohort", "spec.preemption")
    policy = r.enum(raw, "policy", path, BorrowWithinCohortPolicy.NEVER)
    threshold = raw.get("maxPriorityThreshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)):
        raise r.fail(f"{path}.maxPriorityThreshold", f"must be an integer, got {threshold!r}")
    if policy is not BorrowWithinCohortPolicy.NEVER and reclaim is ReclaimWithinCohort.NEVER:
        raise r.fail(path, "needs spec.preemption.reclaimWithinCohort other than Never")
    return BorrowWithinCohort(policy, threshold)


def _local_queue(raw: Mapping[str, Any], namespace: str, name: str) -> LocalQueue:
    r = _Reader(f"LocalQueue {namespace}/{name}")
    spec = r.obj(raw, "spec", "")
    cluster_queue = r.text(spec, "clusterQueue", "spec")
    if not cluster_queue:
        raise r.fail("spec.clusterQueue", "is missing")
    return LocalQueue(
        namespace, name, cluster_queue, r.enum(spec, "stopPolicy", "spec", StopPolicy.NONE)
    )


def _priority_class(raw: Mapping[str, Any], name: str) -> WorkloadPriorityClass:
    value = raw.get("value")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"WorkloadPriorityClass {name}: value: must be an integer, got {value!r}")
    return WorkloadPriorityClass(name, value)


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration(value: object, where: str) -> float:
    """Seconds in a Go duration (``"5m"``, ``"1h30m"``, ``"90s"``) or a plain number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value and _DURATION.sub("", value) == "":
        return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(value))
    raise ConfigError(f"{where}: {value!r} is not a duration such as 5m or 300s")


def _wait_for_pods_ready(doc: Mapping[str, Any]) -> lifecycle.WaitForPodsReady:
    r = _Reader("Configuration")
    raw = r.obj(doc, "waitForPodsReady", "")
    if not raw:
        return lifecycle.WaitForPodsReady()
    where = "waitForPodsReady"
    enabled = raw.get("enable", True)
    if not isinstance(enabled, bool):
        raise r.fail(f"{where}.enable", "must be true or false")
    strategy = r.obj(raw, "requeuingStrategy", where)
    at = f"{where}.requeuingStrategy"

    def number(key: str, default: float | None) -> float | None:
        value = strategy.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise r.fail(f"{at}.{key}", f"must be a non-negative number, got {value!r}")
        return float(value)

    limit = number("backoffLimitCount", None)
    defaults = lifecycle.WaitForPodsReady()
    return lifecycle.WaitForPodsReady(
        enabled=enabled,
        timeout=duration(raw.get("timeout", "5m"), f"Configuration: {where}.timeout"),
        recovery_timeout=(
            duration(raw["recoveryTimeout"], f"Configuration: {where}.recoveryTimeout")
            if raw.get("recoveryTimeout") is not None
            else None
        ),
        backoff_base=number("backoffBaseSeconds", defaults.backoff_base) or 0.0,
        backoff_max=number("backoffMaxSeconds", defaults.backoff_max) or 0.0,
        backoff_limit=int(limit) if limit is not None else None,
    )


def parse(documents: Iterable[object]) -> QueueConfig:
    """Build a configuration from Kueue objects (YAML documents already loaded; ``None``
    documents and ``kind: List`` wrappers are accepted).  Raises ``ConfigError``."""
    flavors: dict[str, ResourceFlavor] = {}
    cluster_queues: dict[str, ClusterQueue] = {}
    local_queues: dict[tuple[str, str], LocalQueue] = {}
    priority_classes: dict[str, WorkloadPriorityClass] = {}
    wait_for_pods_ready = lifecycle.WaitForPodsReady()

    def items() -> Iterable[tuple[int, Mapping[str, Any]]]:
        for index, doc in enumerate(documents, start=1):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ConfigError(f"document {index}: must be an object, got {type(doc).__name__}")
            if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
                for item in doc["items"]:
                    if not isinstance(item, dict):
                        raise ConfigError(f"document {index}: items must be objects")
                    yield index, item
            else:
                yield index, doc

    for index, doc in items():
        kind = doc.get("kind")
        api = str(doc.get("apiVersion", ""))
        group, _, version = api.partition("/")
        raw_meta = doc.get("metadata")
        meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        name = meta.get("name") if isinstance(meta.get("name"), str) else ""
        what = f"{kind} {name}" if name else f"document {index} ({kind})"
        if group == CONFIG_API_GROUP and kind == "Configuration":
            wait_for_pods_ready = _wait_for_pods_ready(doc)
            continue
        if group != API_GROUP or version not in API_VERSIONS:
            raise ConfigError(
                f"{what}: apiVersion {api!r} is not {API_GROUP}/{' or '.join(API_VERSIONS)}"
            )
        if not name:
            raise ConfigError(f"{what}: metadata.name is missing")
        if kind == "ResourceFlavor":
            table: dict[Any, Any] = flavors
            key: Any = name
            obj: Any = _flavor(doc, name)
        elif kind == "ClusterQueue":
            table, key, obj = cluster_queues, name, _cluster_queue(doc, name)
        elif kind == "LocalQueue":
            namespace = meta.get("namespace") or "default"
            table, key = local_queues, (namespace, name)
            obj = _local_queue(doc, namespace, name)
        elif kind == "WorkloadPriorityClass":
            table, key, obj = priority_classes, name, _priority_class(doc, name)
        else:
            raise ConfigError(
                f"{what}: kind {kind!r} is not ResourceFlavor, ClusterQueue, LocalQueue "
                "or WorkloadPriorityClass"
            )
        if key in table:
            raise ConfigError(f"{what}: defined twice")
        table[key] = obj

    for cq in cluster_queues.values():
        for i, resource_group in enumerate(cq.resource_groups):
            for j, fq in enumerate(resource_group.flavors):
                if fq.flavor not in flavors:
                    raise ConfigError(
                        f"ClusterQueue {cq.name}: spec.resourceGroups[{i}].flavors[{j}].name: "
                        f"ResourceFlavor {fq.flavor!r} is not defined"
                    )
    return QueueConfig(flavors, cluster_queues, local_queues, priority_classes, wait_for_pods_ready)
