"""The extender's own CPU per pod without HTTP: what the feasibility cache controls.

    python loadtest/inprocess.py --scenario identical --nodes 5000 --pods 5000
    python loadtest/inprocess.py --scenario distinct --repeat 3 --json out.json

Drives an ``ExtenderService`` on the simulated cluster (the one ``muster serve
--simulate-nodes N`` builds) with the same imitation of kube-scheduler as ``run.py``
(sampling, in-tree fit, filter -> prioritize -> bind), but hands each request body to the
handlers' answer functions in the same process instead of POSTing it.  Only those calls are
timed (CPU time, ``time.process_time``), split into the service's calls (filter, prioritize,
bind, pod conversion) and the rest of the answer (JSON decode and encode).  Each repetition
runs cache on and cache off on fresh services, the order alternating between repetitions; the
figures are medians over repetitions.
aiohttp's and the kernel's share of a request is what ``run.py`` measures on top.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from extender import simulation
from extender.core import cluster, model, objects
from extender.devtools import scheduler_imitation
from extender.service import ExtenderService
from extender.settings import Settings
from extender.web import handlers, wire
from loadtest import run as run_cli
from loadtest import workloads

SCENARIOS = ("identical", "alternating", "distinct", "churn")
TIMED = ("filter", "prioritize", "bind", "pod_from_wire")
"""The service's methods whose CPU is counted as "service"."""


class InProcess:
    """A ``Poster`` answering from the service through the handlers' answer functions, with
    the CPU of every answer and of every service call added up."""

    def __init__(self, service: ExtenderService) -> None:
        self.service = service
        self.answer_cpu = dict.fromkeys(scheduler_imitation.VERBS, 0.0)
        self.service_cpu = dict.fromkeys(TIMED, 0.0)
        for name in TIMED:
            setattr(service, name, self._timed(name, getattr(service, name)))

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        clock, spent = time.process_time, self.service_cpu
        if asyncio.iscoroutinefunction(method):

            @functools.wraps(method)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = clock()
                try:
                    return await method(*args, **kwargs)
                finally:
                    spent[name] += clock() - started

            return timed_async

        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return method(*args, **kwargs)
            finally:
                spent[name] += clock() - started

        return timed

    async def post(self, verb: str, body: bytes) -> tuple[int, bytes]:
        started = time.process_time()
        try:
            if verb == "filter":
                reply = handlers.answer_filter(self.service, body)
            elif verb == "prioritize":
                reply = handlers.answer_prioritize(self.service, body)
            else:
                reply = await handlers.answer_bind(self.service, body)
        except (wire.WireError, objects.ObjectError, ValueError) as exc:
            return 400, wire.error(str(exc))
        finally:
            self.answer_cpu[verb] += time.process_time() - started
        return 200, reply


async def measure(
    scenario: str, nodes: list[model.Node], pods: list[workloads.PodSpec], *, cache: bool
) -> dict[str, Any]:
    """One run: every pod through filter, prioritize and bind; CPU per pod bound."""
    state = cluster.ClusterState()
    service = ExtenderService(
        state=state,
        binder=simulation.SimulatedBinder(state),
        settings=Settings(feasibility_cache=cache),
    )
    simulation.SimulatedCluster(nodes).populate(service)
    poster = InProcess(service)
    order = workloads.scheduler_order(nodes)
    driver = scheduler_imitation.Imitation(
        poster=poster,
        node_names=[n.name for n in order],
        allocatable={n.name: n.allocatable for n in order},
    )
    gc.collect()
    gc.freeze()  # as the load driver does: the workload is long-lived
    try:
        for spec in pods:
            await driver.schedule(spec.raw, requests=spec.requests, in_tree=spec.in_tree)
            # Let the bind run now, as the server answers it before the next pod's filter
            # (without a socket nothing here would yield to it until the end).
            await asyncio.sleep(0)
        await driver.drain()
    finally:
        gc.unfreeze()
    binder = service.binds.binder
    bound = binder.bound if isinstance(binder, simulation.SimulatedBinder) else 0
    per_pod = 1e3 / max(1, bound)  # seconds -> ms per pod
    svc = poster.service_cpu
    answers = poster.answer_cpu
    feasibility_cache = service.judge.cache
    stats = feasibility_cache.stats if feasibility_cache is not None else None
    lookups = (stats.hits + stats.partial_hits + stats.misses) if stats else 0
    return {
        "scenario": scenario,
        "cache": "on" if cache else "off",
        "pods_bound": bound,
        "errors": driver.errors,
        "service_filter_prioritize_ms_per_pod": round(
            (svc["filter"] + svc["prioritize"]) * per_pod, 4
        ),
        "service_ms_per_pod": round(sum(svc.values()) * per_pod, 4),
        "answer_filter_prioritize_ms_per_pod": round(
            (answers["filter"] + answers["prioritize"]) * per_pod, 4
        ),
        "answer_ms_per_pod": round(sum(answers.values()) * per_pod, 4),
        **{f"service_{name}_ms_per_pod": round(svc[name] * per_pod, 4) for name in TIMED},
        **{f"answer_{verb}_ms_per_pod": round(answers[verb] * per_pod, 4) for verb in answers},
        "cache_hit_ratio": round(stats.hits / lookups, 4) if stats and lookups else None,
    }


ROWS = (
    ("service filter+prioritize ms/pod", "service_filter_prioritize_ms_per_pod"),
    ("  service filter", "service_filter_ms_per_pod"),
    ("  service prioritize", "service_prioritize_ms_per_pod"),
    ("  pod conversion", "service_pod_from_wire_ms_per_pod"),
    ("  service bind", "service_bind_ms_per_pod"),
    ("answer filter+prioritize ms/pod", "answer_filter_prioritize_ms_per_pod"),
    ("answer all verbs ms/pod", "answer_ms_per_pod"),
    ("cache hit ratio", "cache_hit_ratio"),
    ("pods bound", "pods_bound"),
    ("errors", "errors"),
)
RATIOS = (
    "service_filter_prioritize_ms_per_pod",
    "answer_filter_prioritize_ms_per_pod",
    "answer_ms_per_pod",
)


def _median(runs: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return None
    if all(isinstance(v, int) for v in values):  # counts stay counts
        return statistics.median_low(values)
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="loadtest/inprocess.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", choices=SCENARIOS, default="identical")
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--pods", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=0, help="identical: consecutive identical")
    p.add_argument("--repeat", type=int, default=1, help="cache on/off pairs (median)")
    p.add_argument("--json", metavar="PATH", type=Path)
    args = p.parse_args(argv)
    info = run_cli.machine()
    print(
        f"machine: {info['nproc']} CPUs ({info['cpu_model']}), Python {info['python']}, "
        f"load {info['loadavg_at_start']}; in process, no HTTP",
        flush=True,
    )
    nodes = workloads.cluster_nodes(args.nodes)
    templates = workloads.load_templates()
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for repetition in range(args.repeat):
        # Alternate which side runs first: the first run of a process pays for warming up.
        for cache in (True, False) if repetition % 2 == 0 else (False, True):
            factory = workloads.PodFactory(templates.pod)
            workload = workloads.build(
                args.scenario, factory, pods=args.pods, batch_size=args.batch_size
            )
            result = asyncio.run(measure(args.scenario, nodes, workload.pods, cache=cache))
            runs[result["cache"]].append(result)
    medians = {side: {key: _median(rs, key) for _, key in ROWS} for side, rs in runs.items()}
    ratios = {
        f"{key}_off_over_on": round(medians["off"][key] / medians["on"][key], 2)
        for key in RATIOS
        if medians["on"][key] and medians["off"][key]
    }
    names = scheduler_imitation.nodes_to_find(args.nodes)
    print(
        f"== {args.scenario}: {workload.description}; {args.nodes} nodes, {names} names per "
        f"filter call; median of {args.repeat} run(s) each"
    )
    print(f"{'':<36}{'cache-on':>12}{'cache-off':>12}")
    for label, key in ROWS:
        cells = "".join(f"{_show(medians[side][key]):>12}" for side in ("on", "off"))
        print(f"{label:<36}{cells}")
    print("ratios (cache off / cache on):")
    for key, value in ratios.items():
        print(f"  {key:<56}{value:>6.2f}x")
    if args.json:
        doc = {
            "machine": info,
            "command": " ".join(["loadtest/inprocess.py", *(argv or sys.argv[1:])]),
            "scenario": args.scenario,
            "description": workload.description,
            "nodes": args.nodes,
            "median": medians,
            "ratios": ratios,
            "runs": runs,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    errors = sum(r["errors"] for rs in runs.values() for r in rs)
    return 1 if errors else 0


def _show(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
