"""Kueue's queue objects: ResourceFlavor, ClusterQueue, LocalQueue, WorkloadPriorityClass.

Users bring Kueue's own YAML (``kueue.x-k8s.io/v1beta1`` or ``v1beta2``, plus optionally
Kueue's controller ``Configuration`` for its ``waitForPodsReady`` section); ``parse`` turns the
documents into one frozen ``QueueConfig`` or raises ``ConfigError`` naming the object and the
field.  Fields Kueue has and muster does not act on (fair sharing, admission checks, flavor
fungibility) are accepted and ignored, so existing manifests load unchanged.  Pure: no I/O.
"""

from __future__ import annotations

import enum
import math
import re
import reprlib
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
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
"""Range of Kueue's integer fields (priorities, thresholds, backoff settings): Go ``int32``."""
MAX_DURATION = (2**63 - 1) / 1e9
"""The longest Go ``time.Duration``, in seconds (about 292 years)."""
MAX_RESOURCE_GROUPS = 16
MAX_GROUP_ITEMS = 64
"""Kueue's CRD limits: resource groups per ClusterQueue, and covered resources, flavors and
per-flavor resources per group; they also bound the work a file with YAML aliases can cause."""


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
        return all(req.holds(labels) for req in self.match_expressions)


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

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 3
_NON_FINITE = {"nan": "'.nan'", "inf": "'.inf'", "-inf": "'-.inf'"}


def _show(value: object) -> str:
    """A value as an error message quotes it: one short line whatever the value (a huge, deep
    or self-containing structure, an integer too long to print), and YAML's spelling for NaN
    and infinities, as the user wrote them: ``_show(float("nan"))`` -> ``'.nan'``."""
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE[repr(value)]
    try:
        return _REPR.repr(value)
    except Exception:  # e.g. ValueError: an int past Python's digit limit cannot be printed
        return f"<{type(value).__name__}>"


def _label(value: object) -> str:
    """An object's kind or name in a message: as is when it is short printable text."""
    if isinstance(value, str) and value.isprintable() and 0 < len(value) <= 253:
        return value
    return _show(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


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
            raise self.fail(_join(path, key), f"must be an object, got {_show(value)}")
        return value

    def seq(
        self, raw: Mapping[str, Any], key: str, path: str, *, most: int | None = None
    ) -> list[Any]:
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(_join(path, key), f"must be a list, got {_show(value)}")
        if most is not None and len(value) > most:
            raise self.fail(_join(path, key), f"has {len(value)} items, more than {most}")
        return value

    def text(self, raw: Mapping[str, Any], key: str, path: str, default: str = "") -> str:
        value = raw.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(_join(path, key), f"must be a string, got {_show(value)}")
        return value

    def str_map(self, raw: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
        value = self.obj(raw, key, path)
        if not all(isinstance(k, str) for k in value):
            raise self.fail(_join(path, key), "keys must be strings")
        if not all(isinstance(v, str) for v in value.values()):
            raise self.fail(_join(path, key), "values must be strings")
        return dict(value)

    def enum(self, raw: Mapping[str, Any], key: str, path: str, default: enum.StrEnum) -> Any:
        kind = type(default)
        text = self.text(raw, key, path, default.value)
        try:
            return kind(text)
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise self.fail(_join(path, key), f"{_show(text)} is not one of {allowed}") from None

    def integer(
        self, raw: Mapping[str, Any], key: str, path: str, *, low: int, high: int
    ) -> int | None:
        """An integer field (Kueue's ``int32``s); None when absent."""
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(_join(path, key), f"must be an integer, got {_show(value)}")
        if not low <= value <= high:
            raise self.fail(
                _join(path, key), f"must be an integer from {low} to {high}, got {_show(value)}"
            )
        return value

    def number(self, raw: Mapping[str, Any], key: str, path: str, *, high: int) -> float | None:
        """A non-negative finite number (integer or not); None when absent."""
        value = raw.get(key)
        if value is None:
            return None
        # NaN fails every comparison, and an int too large for a float is compared exactly
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
            raise self.fail(
                _join(path, key), f"must be a number from 0 to {high}, got {_show(value)}"
            )
        return float(value)

    def amount(self, resource: str, raw: Mapping[str, Any], key: str, path: str) -> int | None:
        """A non-negative quantity of ``resource`` in ``resources`` units; None when absent."""
        value = raw.get(key)
        if value is None:
            return None
        where = _join(path, key)
        if (
            isinstance(value, bool)
            or not isinstance(value, str | int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise self.fail(where, f"not a valid quantity: {_show(value)}")
        try:
            amount = resources.amount(resource, value)
        except resources.QuantityError as exc:
            raise self.fail(where, " ".join(str(exc).split())[:200]) from None
        except Exception:  # the quantity parser's arithmetic on extreme input (1e999999)
            raise self.fail(where, f"not a valid quantity: {_show(value)}") from None
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise self.fail(where, f"not a valid quantity: {_show(value)}")
        if amount < 0:
            raise self.fail(where, "must not be negative")
        return amount

    def requirements(self, raw: list[Any], path: str) -> tuple[model.Requirement, ...]:
        out = []
        for i, item in enumerate(raw):
            where = f"{path}[{i}]"
            if not isinstance(item, dict):
                raise self.fail(where, f"must be an object, got {_show(item)}")
            op_text = self.text(item, "operator", where)
            if op_text not in ("In", "NotIn", "Exists", "DoesNotExist"):
                raise self.fail(f"{where}.operator", f"{_show(op_text)} is not a label operator")
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
                raise self.fail(f"{where}.effect", f"{_show(effect)} is not a taint effect")
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
                raise self.fail(f"{where}.operator", f"{_show(operator)} is not Equal or Exists")
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
    r = _Reader(f"ResourceFlavor {_label(name)}")
    spec = r.obj(raw, "spec", "")
    return ResourceFlavor(
        name=name,
        node_labels=r.str_map(spec, "nodeLabels", "spec"),
        node_taints=r.taints(spec, "nodeTaints", "spec"),
        tolerations=r.tolerations(spec, "tolerations", "spec"),
    )


def _resource_group(r: _Reader, raw: object, path: str, *, cohort: str) -> ResourceGroup:
    if not isinstance(raw, dict):
        raise r.fail(path, f"must be an object, got {_show(raw)}")
    covered = r.seq(raw, "coveredResources", path, most=MAX_GROUP_ITEMS)
    if not covered or not all(isinstance(c, str) and c for c in covered):
        raise r.fail(f"{path}.coveredResources", "must be a non-empty list of resource names")
    if len(set(covered)) != len(covered):
        raise r.fail(f"{path}.coveredResources", "lists a resource twice")
    flavors: dict[str, FlavorQuotas] = {}
    for i, item in enumerate(r.seq(raw, "flavors", path, most=MAX_GROUP_ITEMS)):
        where = f"{path}.flavors[{i}]"
        if not isinstance(item, dict):
            raise r.fail(where, f"must be an object, got {_show(item)}")
        name = r.text(item, "name", where)
        if not name:
            raise r.fail(f"{where}.name", "is missing")
        if name in flavors:
            raise r.fail(f"{path}.flavors", f"flavor {_show(name)} appears twice")
        quotas: dict[str, Quota] = {}
        for j, res in enumerate(r.seq(item, "resources", where, most=MAX_GROUP_ITEMS)):
            at = f"{where}.resources[{j}]"
            if not isinstance(res, dict):
                raise r.fail(at, f"must be an object, got {_show(res)}")
            resource = r.text(res, "name", at)
            if resource not in covered:
                raise r.fail(f"{at}.name", f"{_show(resource)} is not in coveredResources")
            if resource in quotas:
                raise r.fail(f"{at}.name", f"{_show(resource)} appears twice")
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
        if len(quotas) != len(covered):
            missing = sorted(set(covered) - set(quotas))
            raise r.fail(f"{where}.resources", f"has no quota for {', '.join(missing)}")
        flavors[name] = FlavorQuotas(name, quotas)
    if not flavors:
        raise r.fail(f"{path}.flavors", "must list at least one flavor")
    return ResourceGroup(tuple(covered), tuple(flavors.values()))


def _cluster_queue(raw: Mapping[str, Any], name: str) -> ClusterQueue:
    r = _Reader(f"ClusterQueue {_label(name)}")
    spec = r.obj(raw, "spec", "")
    cohort = r.text(spec, "cohortName", "spec") or r.text(spec, "cohort", "spec")
    covered: set[str] = set()
    flavors: set[str] = set()
    groups = []
    raw_groups = r.seq(spec, "resourceGroups", "spec", most=MAX_RESOURCE_GROUPS)
    for i, raw_group in enumerate(raw_groups):
        group = _resource_group(r, raw_group, f"spec.resourceGroups[{i}]", cohort=cohort)
        for resource in group.covered:
            if resource in covered:
                raise r.fail(
                    f"spec.resourceGroups[{i}].coveredResources",
                    f"{_show(resource)} is already covered by another resource group",
                )
            covered.add(resource)
        for fq in group.flavors:
            if fq.flavor in flavors:
                raise r.fail(
                    f"spec.resourceGroups[{i}].flavors", f"flavor {_show(fq.flavor)} appears twice"
                )
            flavors.add(fq.flavor)
        groups.append(group)
    # fair sharing is not acted on, but a weight Kueue would refuse is refused here too
    r.amount("weight", r.obj(spec, "fairSharing", "spec"), "weight", "spec.fairSharing")
    preemption = r.obj(spec, "preemption", "spec")
    reclaim = r.enum(
        preemption, "reclaimWithinCohort", "spec.preemption", ReclaimWithinCohort.NEVER
    )
    return ClusterQueue(
        name=name,
        resource_groups=tuple(groups),
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
    threshold = r.integer(raw, "maxPriorityThreshold", path, low=INT32_MIN, high=INT32_MAX)
    if policy is not BorrowWithinCohortPolicy.NEVER and reclaim is ReclaimWithinCohort.NEVER:
        raise r.fail(path, "needs spec.preemption.reclaimWithinCohort other than Never")
    return BorrowWithinCohort(policy, threshold)


def _local_queue(raw: Mapping[str, Any], namespace: str, name: str) -> LocalQueue:
    r = _Reader(f"LocalQueue {_label(namespace)}/{_label(name)}")
    spec = r.obj(raw, "spec", "")
    cluster_queue = r.text(spec, "clusterQueue", "spec")
    if not cluster_queue:
        raise r.fail("spec.clusterQueue", "is missing")
    return LocalQueue(
        namespace, name, cluster_queue, r.enum(spec, "stopPolicy", "spec", StopPolicy.NONE)
    )


def _priority_class(raw: Mapping[str, Any], name: str) -> WorkloadPriorityClass:
    r = _Reader(f"WorkloadPriorityClass {_label(name)}")
    value = r.integer(raw, "value", "", low=INT32_MIN, high=INT32_MAX)
    if value is None:
        raise r.fail("value", "must be an integer, got None")
    return WorkloadPriorityClass(name, value)


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration(value: object, where: str) -> float:
    """Seconds in a Go duration (``"5m"``, ``"1h30m"``, ``"90s"``) or a plain number, from 0
    up to Go's longest duration (about 292 years)."""
    seconds: float
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value and _DURATION.sub("", value) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(value))
    else:
        raise ConfigError(f"{where}: {_show(value)} is not a duration such as 5m or 300s")
    # NaN fails the comparison; an int too large for a float is compared exactly
    if not 0 <= seconds <= MAX_DURATION:
        raise ConfigError(f"{where}: {_show(value)} is not a duration from 0s to 292 years")
    return float(seconds)


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
    defaults = lifecycle.WaitForPodsReady()
    # Kueue's fields are int32 seconds; fractions are accepted (tests use sub-second backoff)
    base = r.number(strategy, "backoffBaseSeconds", at, high=INT32_MAX)
    most = r.number(strategy, "backoffMaxSeconds", at, high=INT32_MAX)
    return lifecycle.WaitForPodsReady(
        enabled=enabled,
        timeout=duration(raw.get("timeout", "5m"), f"Configuration: {where}.timeout"),
        recovery_timeout=(
            duration(raw["recoveryTimeout"], f"Configuration: {where}.recoveryTimeout")
            if raw.get("recoveryTimeout") is not None
            else None
        ),
        backoff_base=defaults.backoff_base if base is None else base,
        backoff_max=defaults.backoff_max if most is None else most,
        backoff_limit=r.integer(strategy, "backoffLimitCount", at, low=0, high=INT32_MAX),
    )


def _documents(documents: Iterable[object]) -> Iterable[tuple[int, Mapping[str, Any]]]:
    """Each object with its document's number: ``None`` documents are skipped and the
    items of ``kind: List`` wrappers taken one by one."""
    for index, doc in enumerate(documents, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ConfigError(f"document {index}: must be an object, got {type(doc).__name__}")
        kind = doc.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
            for item in doc["items"]:
                if not isinstance(item, dict):
                    raise ConfigError(f"document {index}: items must be objects")
                yield index, item
        else:
            yield index, doc


def parse(documents: Iterable[object]) -> QueueConfig:
    """Build a configuration from Kueue objects (YAML documents already loaded; ``None``
    documents and ``kind: List`` wrappers are accepted).  Raises ``ConfigError`` (and
    nothing else, whatever the documents hold)."""
    flavors: dict[str, ResourceFlavor] = {}
    cluster_queues: dict[str, ClusterQueue] = {}
    local_queues: dict[tuple[str, str], LocalQueue] = {}
    priority_classes: dict[str, WorkloadPriorityClass] = {}
    wait_for_pods_ready = lifecycle.WaitForPodsReady()

    for index, doc in _documents(documents):
        kind, api, meta = doc.get("kind"), doc.get("apiVersion", ""), doc.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        what = (
            f"{_label(kind)} {_label(name)}"
            if isinstance(name, str) and name
            else f"document {index} ({_label(kind)})"
        )
        if kind is None:
            raise ConfigError(f"{what}: kind is missing")
        if not isinstance(kind, str):
            raise ConfigError(f"{what}: kind: must be a string, got {_show(kind)}")
        if not isinstance(api, str):
            raise ConfigError(f"{what}: apiVersion: must be a string, got {_show(api)}")
        group, _, version = api.partition("/")
        if group == CONFIG_API_GROUP and kind == "Configuration":
            wait_for_pods_ready = _wait_for_pods_ready(doc)
            continue
        if group != API_GROUP or version not in API_VERSIONS:
            raise ConfigError(
                f"{what}: apiVersion {_show(api)} is not {API_GROUP}/{' or '.join(API_VERSIONS)}"
            )
        r = _Reader(what)
        meta = r.obj(doc, "metadata", "")
        name = r.text(meta, "name", "metadata")
        if not name:
            raise ConfigError(f"{what}: metadata.name is missing")
        if kind == "ResourceFlavor":
            table: dict[Any, Any] = flavors
            key: Any = name
            obj: Any = _flavor(doc, name)
        elif kind == "ClusterQueue":
            table, key, obj = cluster_queues, name, _cluster_queue(doc, name)
        elif kind == "LocalQueue":
            namespace = r.text(meta, "namespace", "metadata") or "default"
            table, key = local_queues, (namespace, name)
            obj = _local_queue(doc, namespace, name)
        elif kind == "WorkloadPriorityClass":
            table, key, obj = priority_classes, name, _priority_class(doc, name)
        else:
            raise ConfigError(
                f"{what}: kind {_show(kind)} is not ResourceFlavor, ClusterQueue, LocalQueue "
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
                        f"ClusterQueue {_label(cq.name)}: spec.resourceGroups[{i}].flavors[{j}]"
                        f".name: ResourceFlavor {_show(fq.flavor)} is not defined"
                    )
    return QueueConfig(flavors, cluster_queues, local_queues, priority_classes, wait_for_pods_ready)
