"""One measured run: drive a workload through an extender as kube-scheduler would, and collect
the figures (throughput per 1-s window, per-verb latency, errors, server CPU, cache, RSS)."""

from __future__ import annotations

import asyncio
import collections
import gc
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from extender.core import model
from extender.devtools import scheduler_imitation
from loadtest import posting, server, workloads

RETRY_MARKERS = ("waiting for gang", "being placed", "backing off", "re-planning")
MAX_ATTEMPTS = 50
"""Per pod: a gang member rejected while its gang gathers is requeued at most this often."""


def retryable(outcome: scheduler_imitation.Outcome) -> bool:
    """kube-scheduler requeues a pod rejected while its gang gathers (muster nudges it with an
    update); the driver puts it back at the end of its queue."""
    return not outcome.node and any(m in r for r in outcome.reasons for m in RETRY_MARKERS)


@dataclass
class Run:
    """What a run needs to know; ``node_objects`` switches to nodeCacheCapable: false."""

    label: str
    url: str
    nodes: Sequence[model.Node]
    pods: list[workloads.PodSpec]
    init: list[workloads.PodSpec] = field(default_factory=list)
    node_objects: Mapping[str, bytes] | None = None
    in_tree: bool = True
    time_limit: float = 600.0
    progress: bool = True
    gangs: int = 0
    gang_size: int = 0
    pid: int | None = None
    """The server's pid when we started it (peak RSS from /proc); else /metrics is sampled."""
    rss_sample_seconds: float = 1.0


@dataclass
class Result:
    label: str
    figures: dict[str, Any]
    bind_times: list[float]
    timeline: list[tuple[float, str, float]]
    errors: list[str]


async def _schedule_all(
    driver: scheduler_imitation.Imitation,
    pods: list[workloads.PodSpec],
    deadline: float,
    on_final: Any = None,
) -> dict[str, int]:
    """kube-scheduler's loop over its queue: one pod at a time, retried gang members go to the
    back.  Bounded by the pods' attempt limit and the deadline."""
    queue = collections.deque(pods)
    counts = {"attempts": 0, "retries": 0, "unschedulable": 0, "failed": 0, "timed_out": 0}
    budget = len(pods) * MAX_ATTEMPTS
    while queue and counts["attempts"] < budget:
        if time.monotonic() > deadline:
            counts["timed_out"] = len(queue)
            break
        pod = queue.popleft()
        pod.attempts += 1
        counts["attempts"] += 1
        outcome = await driver.schedule(pod.raw, requests=pod.requests, in_tree=pod.in_tree)
        if outcome.node:
            continue
        if outcome.error:
            counts["failed"] += 1
        elif retryable(outcome) and pod.attempts < MAX_ATTEMPTS:
            counts["retries"] += 1
            queue.append(pod)
            continue
        else:
            counts["unschedulable"] += 1
        if on_final is not None:
            on_final()
    counts["timed_out"] = max(counts["timed_out"], len(queue))
    return counts


async def _sample_rss(url: str, every: float, peak: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        sample = await loop.run_in_executor(None, server.scrape, url, 5.0)
        value = sample.get("process_resident_memory_bytes")
        if value:
            peak[0] = max(peak[0], value)
        await asyncio.sleep(every)


def _windows(times: Sequence[float], duration: float) -> list[int]:
    """Pods bound in each full 1-s window from the start (scheduler_perf's 1 s sampling)."""
    full = int(math.floor(duration))
    counts = [0] * max(full, 0)
    for t in times:
        index = int(t)
        if 0 <= index < full:
            counts[index] += 1
    return counts


def _ms(values: Sequence[float], q: float) -> float:
    return round(scheduler_imitation.percentile(values, q) * 1e3, 3)


async def execute(run: Run) -> Result:
    loop = asyncio.get_running_loop()
    order = workloads.scheduler_order(run.nodes)
    allocatable = {n.name: n.allocatable for n in order} if run.in_tree else None
    client = posting.Client(run.url)
    try:
        driver = scheduler_imitation.Imitation(
            poster=client,
            node_names=[n.name for n in order],
            node_objects=run.node_objects,
            allocatable=allocatable,
        )
        start_all = time.monotonic()
        deadline = start_all + run.time_limit
        if run.init:
            await _schedule_all(driver, run.init, deadline)
            await driver.drain(timeout=max(0.0, deadline - time.monotonic()))
            driver.latencies = {v: [] for v in scheduler_imitation.VERBS}
            driver.timeline.clear()
            driver.errors = 0
        before = await loop.run_in_executor(None, server.scrape, run.url, 10.0)
        peak = [before.get("process_resident_memory_bytes", 0.0)]
        sampler = (
            asyncio.create_task(_sample_rss(run.url, run.rss_sample_seconds, peak))
            if run.pid is None
            else None
        )

        bind_times: list[float] = []
        gang_bound: collections.Counter[int] = collections.Counter()
        gang_done: list[float] = []
        by_name = {p.raw["metadata"]["name"]: p for p in run.pods}
        progress = _progress(len(run.pods), run.label, run.progress)
        t0 = time.perf_counter()

        def on_bound(outcome: scheduler_imitation.Outcome) -> None:
            if not outcome.bound:
                progress.update(1)
                return
            now = time.perf_counter() - t0
            bind_times.append(now)
            progress.update(1)
            spec = by_name.get(outcome.pod.partition("/")[2])
            if spec is not None and spec.gang >= 0:
                gang_bound[spec.gang] += 1
                if gang_bound[spec.gang] == run.gang_size:
                    gang_done.append(now)

        driver.on_bound = on_bound
        # Every pod of the workload is alive for the whole run: keep the cyclic collector from
        # scanning them again and again while the run allocates replies (the driver's GC cost
        # is Python's, not the scheduler's it imitates).
        gc.collect()
        gc.freeze()
        cpu0 = time.process_time()
        counts = await _schedule_all(driver, run.pods, deadline, lambda: progress.update(1))
        loop_end = time.perf_counter() - t0
        drained = await driver.drain(timeout=max(1.0, deadline - time.monotonic()))
        driver_cpu = time.process_time() - cpu0
        progress.close()
        if sampler is not None:
            sampler.cancel()
        after = await loop.run_in_executor(None, server.scrape, run.url, 10.0)
    finally:
        gc.unfreeze()
        client.close()

    figures = _figures(run, driver, counts, bind_times, loop_end, before, after)
    figures["driver_cpu_ms_per_pod"] = round(driver_cpu * 1e3 / max(1, len(bind_times)), 3)
    figures["binds_cancelled_at_time_limit"] = 0 if drained else driver.binds_in_flight
    rss = server.Extender.peak_rss_mb_of(run.pid) if run.pid else None
    if rss is None and max(peak[0], after.get("process_resident_memory_bytes", 0.0)):
        rss = max(peak[0], after.get("process_resident_memory_bytes", 0.0)) / 2**20
    figures["rss_mb"] = round(rss, 1) if rss is not None else None
    figures["rss_source"] = "VmHWM" if run.pid else "process_resident_memory_bytes (sampled)"
    cycles = server.delta(after, before, "muster_queue_cycle_seconds_count")
    if cycles:
        figures["queue_cycles"] = cycles
        cycle = server.histogram_mean_ms(after, before, "muster_queue_cycle_seconds")
        figures["queue_cycle_ms_avg"] = round(cycle, 3) if cycle is not None else None
    if run.gangs:
        figures["gangs"] = run.gangs
        figures["gang_size"] = run.gang_size
        figures["gangs_done"] = len(gang_done)
        figures["gang_plans"] = server.delta(after, before, "muster_gang_plan_seconds_count")
        plan = server.histogram_mean_ms(after, before, "muster_gang_plan_seconds")
        figures["gang_plan_ms_avg"] = round(plan, 3) if plan is not None else None
        q2b = server.histogram_mean_ms(after, before, "muster_gang_quorum_to_bound_seconds")
        figures["gang_quorum_to_bound_ms_avg"] = round(q2b, 1) if q2b is not None else None
        figures["gangs_per_second"] = (
            round(len(gang_done) / gang_done[-1], 1) if gang_done and gang_done[-1] else None
        )
    timeline = [(t - t0, verb, seconds) for t, verb, seconds in driver.timeline]
    return Result(run.label, figures, bind_times, timeline, list(driver.error_samples))


def _progress(total: int, label: str, enabled: bool) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # the loadtest extra is not installed: no bar
        enabled = False
    if not enabled:

        class _Quiet:
            def update(self, n: int = 1) -> None:
                pass

            def close(self) -> None:
                pass

        return _Quiet()
    return tqdm(total=total, desc=label, unit="pod", file=sys.stderr, mininterval=0.5, leave=False)


def _figures(
    run: Run,
    driver: scheduler_imitation.Imitation,
    counts: dict[str, int],
    bind_times: list[float],
    loop_end: float,
    before: dict[str, float],
    after: dict[str, float],
) -> dict[str, Any]:
    bound = len(bind_times)
    duration = max(bind_times[-1] if bind_times else 0.0, loop_end, 1e-9)
    windows = _windows(bind_times, duration)
    per_window = [float(w) for w in windows] or [bound / duration]
    lat = driver.latencies
    filters, prios = lat["filter"], lat["prioritize"]
    cpu = server.delta(after, before, "process_cpu_seconds_total")
    figures: dict[str, Any] = {
        "pods": len(run.pods),
        "pods_bound": bound,
        "pods_unschedulable": counts["unschedulable"],
        "pods_not_finished": counts["timed_out"],
        "attempts": counts["attempts"],
        "retries": counts["retries"],
        "duration_s": round(duration, 3),
        "pods_per_second": round(bound / duration, 1),
        "pods_per_second_p50": round(scheduler_imitation.percentile(per_window, 0.50), 1),
        "pods_per_second_p90": round(scheduler_imitation.percentile(per_window, 0.90), 1),
        "pods_per_second_p99": round(scheduler_imitation.percentile(per_window, 0.99), 1),
        "windows": len(windows),
        "errors": driver.errors,
    }
    for verb in scheduler_imitation.VERBS:
        values = lat[verb]
        figures[f"{verb}_calls"] = len(values)
        figures[f"{verb}_ms_p50"] = _ms(values, 0.50)
        figures[f"{verb}_ms_p99"] = _ms(values, 0.99)
        figures[f"{verb}_ms_mean"] = round(sum(values) / len(values) * 1e3, 3) if values else 0.0
    figures["filter_prioritize_ms_per_pod"] = (
        round((sum(filters) + sum(prios)) / len(filters) * 1e3, 3) if filters else 0.0
    )
    for verb in scheduler_imitation.VERBS:  # the server's own time per call (its latency histogram)
        mean = server.histogram_mean_ms(
            after, before, f'muster_request_duration_seconds{{verb="{verb}"}}'
        )
        figures[f"server_{verb}_ms_mean"] = round(mean, 3) if mean is not None else None
    figures["names_per_filter"] = scheduler_imitation.nodes_to_find(len(run.nodes))
    figures["cpu_seconds"] = round(cpu, 3)
    figures["cpu_ms_per_pod"] = round(cpu * 1e3 / bound, 3) if bound else None
    figures.update(
        {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in server.cache_figures(after, before).items()
        }
    )
    return figures
