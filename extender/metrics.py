"""Every Prometheus metric the extender exports, in one place, ``muster_`` prefixed; no logic."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)

requests = Counter(
    "muster_requests_total",
    "Extender calls answered, by verb and outcome (ok, bad_request, error, not_ready).",
    ["verb", "outcome"],
)
request_seconds = Histogram(
    "muster_request_duration_seconds",
    "Time to answer an extender call, by verb.",
    ["verb"],
    buckets=_LATENCY_BUCKETS,
)
filter_nodes = Counter(
    "muster_filter_nodes_total",
    "Nodes judged by filter, by result (passed, failed, unresolvable).",
    ["result"],
)
binds = Counter(
    "muster_binds_total",
    "Bind attempts, by result (bound, refused, failed).",
    ["result"],
)
watch_restarts = Counter(
    "muster_watch_restarts_total",
    "Watches restarted, by resource and reason (expired = 410 Gone relist, error = dropped).",
    ["resource", "reason"],
)
watch_events = Counter(
    "muster_watch_events_total",
    "Watch events applied to the cluster view, by resource and type.",
    ["resource", "type"],
)
watch_skipped = Counter(
    "muster_watch_skipped_total",
    "Objects from a list or watch that could not be read and were skipped, by resource.",
    ["resource"],
)
background_restarts = Counter(
    "muster_background_restarts_total",
    "Background tasks (cluster source, queues file poll, sweeps) restarted after an "
    "unexpected error, by task.",
    ["task"],
)
tentative_pods_expired = Counter(
    "muster_tentative_pods_expired_total",
    "Pods known only from the scheduler's calls that the watch never confirmed, dropped.",
)
gang_quorum_seconds = Histogram(
    "muster_gang_quorum_seconds",
    "Time from a gang's first member seen to minCount members present.",
    buckets=_LATENCY_BUCKETS,
)
gang_plan_seconds = Histogram(
    "muster_gang_plan_seconds", "Time to compute one whole-gang plan.", buckets=_LATENCY_BUCKETS
)
gang_quorum_to_bound_seconds = Histogram(
    "muster_gang_quorum_to_bound_seconds",
    "Time from a gang's quorum to all its quorum members bound.",
    buckets=_LATENCY_BUCKETS,
)
gang_timeouts = Counter(
    "muster_gang_timeouts_total", "Gangs whose deadline passed before all members reached bind."
)


queue_cycle_seconds = Histogram(
    "muster_queue_cycle_seconds",
    "Time of one admission cycle over every ClusterQueue.",
    buckets=_LATENCY_BUCKETS,
)
queue_admissions = Counter(
    "muster_queue_admissions_total", "Workloads admitted, by ClusterQueue.", ["cluster_queue"]
)
queue_preemptions = Counter(
    "muster_queue_preemptions_total",
    "Workloads preempted to make room, by the victim's ClusterQueue.",
    ["cluster_queue"],
)


queue_config_loads = Counter(
    "muster_queue_config_loads_total",
    "Loads of the --queues file, by result (ok, rejected: the last good one stayed).",
    ["result"],
)


# -- what the service holds, read at scrape time --------------------------------------------


@dataclass(frozen=True)
class QueueReading:
    pending: dict[str, int]
    """ClusterQueue -> pending workloads."""
    admitted: dict[str, int]
    """ClusterQueue -> admitted workloads."""
    usage: list[tuple[str, str, str, int, int]]
    """(ClusterQueue, flavor, resource, used, nominal quota), amounts in muster's units
    (cpu in millicores, memory in bytes)."""


@dataclass(frozen=True)
class ServiceReading:
    nodes: int
    pods: int
    synced: bool
    gangs: dict[str, int]
    """Pod groups by phase."""
    cache: dict[str, int]
    """The feasibility cache's counters: hits, partial_hits, misses, rechecked, evictions."""
    cache_entries: int
    queues: QueueReading


class ServiceCollector(Collector):
    """The gauges of one serving service (cluster view, gangs, feasibility cache, queues),
    read when Prometheus scrapes: no cost per call.  The app registers it while it serves and
    unregisters it after (``register_service``), so a second service in the process (tests,
    the load test) never reads the first one's state."""

    def __init__(self, read: Callable[[], ServiceReading]) -> None:
        self.read = read

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        reading = self.read()
        yield GaugeMetricFamily(
            "muster_cluster_nodes", "Nodes in the extender's cluster view.", value=reading.nodes
        )
        yield GaugeMetricFamily(
            "muster_cluster_pods", "Pods in the extender's cluster view.", value=reading.pods
        )
        yield GaugeMetricFamily(
            "muster_cluster_synced",
            "1 once the cluster view has synced, else 0.",
            value=int(reading.synced),
        )
        gangs = GaugeMetricFamily(
            "muster_gangs", "Pod groups known to the extender, by phase.", labels=["phase"]
        )
        for phase, count in reading.gangs.items():
            gangs.add_metric([phase], count)
        yield gangs
        yield from _cache_families(reading.cache, reading.cache_entries)
        yield from _queue_families(reading.queues)


def register_service(read: Callable[[], ServiceReading]) -> Callable[[], None]:
    """Export the service ``read`` returns; returns the call that stops exporting it."""
    collector = ServiceCollector(read)
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)


def _cache_families(
    counters: dict[str, int], entries: int
) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    lookups = CounterMetricFamily(
        "muster_feasibility_cache_lookups",
        "Feasibility cache lookups by result: hit (every node reused), partial (some nodes "
        "re-checked), miss (no entry for the signature).",
        labels=["result"],
    )
    for result, key in (("hit", "hits"), ("partial", "partial_hits"), ("miss", "misses")):
        lookups.add_metric([result], counters[key])
    yield lookups
    yield CounterMetricFamily(
        "muster_feasibility_cache_rechecked_nodes",
        "Nodes judged afresh by cache lookups (generation moved, or new).",
        value=counters["rechecked"],
    )
    yield CounterMetricFamily(
        "muster_feasibility_cache_evictions",
        "Signatures evicted from the LRU.",
        value=counters["evictions"],
    )
    yield GaugeMetricFamily("muster_feasibility_cache_entries", "Signatures cached.", value=entries)


def _queue_families(reading: QueueReading) -> Iterator[GaugeMetricFamily]:
    pending = GaugeMetricFamily(
        "muster_queue_pending_workloads",
        "Workloads waiting, by ClusterQueue.",
        labels=["cluster_queue"],
    )
    admitted = GaugeMetricFamily(
        "muster_queue_admitted_workloads",
        "Workloads admitted, by ClusterQueue.",
        labels=["cluster_queue"],
    )
    for name, count in reading.pending.items():
        pending.add_metric([name], count)
    for name, count in reading.admitted.items():
        admitted.add_metric([name], count)
    usage = GaugeMetricFamily(
        "muster_queue_usage",
        "Quota used, by ClusterQueue, flavor and resource (cpu in cores, memory in bytes).",
        labels=["cluster_queue", "flavor", "resource"],
    )
    nominal = GaugeMetricFamily(
        "muster_queue_nominal_quota",
        "Nominal quota, by ClusterQueue, flavor and resource (cpu in cores).",
        labels=["cluster_queue", "flavor", "resource"],
    )
    for cq, flavor, resource, used, quota in reading.usage:
        scale = 1000 if resource == "cpu" else 1
        usage.add_metric([cq, flavor, resource], used / scale)
        nominal.add_metric([cq, flavor, resource], quota / scale)
    yield from (pending, admitted, usage, nominal)
