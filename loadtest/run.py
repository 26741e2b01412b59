"""Load-test muster the way kube-scheduler drives it (issue #6).  See loadtest/README.md.

    python loadtest/run.py --scenario identical --nodes 5000 --pods 5000 --compare
    python loadtest/run.py --scenario gangs --gangs 1000 --gang-size 3 --json out.json
    python loadtest/run.py --target http://127.0.0.1:8888 --nodes 500 --scenario distinct
    python loadtest/run.py --real --nodes 500 --pods 2000

Without ``--target`` every run starts its own ``muster serve --simulate-nodes N`` on a free
loopback port (pinned to CPU 0, the driver to CPU 1, when there are two CPUs) and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from extender.devtools import scheduler_imitation
from loadtest import driver, report, server, workloads

DEFAULT_GANG_SIZE = {"gangs": 3, "large-gang": 1000}
DEFAULT_GANGS = {"gangs": 1000, "large-gang": 1}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loadtest/run.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--scenario",
        default="identical",
        choices=[*workloads.SCENARIOS, "all"],
        help="S1 distinct, S2 identical/alternating, S3 gangs/large-gang, S4 full-nodes, "
        "S5 churn, S6 queue-mix; all = every one in turn (default identical)",
    )
    p.add_argument("--nodes", type=int, help="nodes (default 5000; --real 500)")
    p.add_argument(
        "--pods", type=int, help="measured pods (default 5000; full-nodes 1000; --real 2000)"
    )
    p.add_argument("--init-pods", type=int, default=0, help="pods scheduled before measuring")
    p.add_argument("--shapes", type=int, default=0, help="distinct: shapes cycling (0 = pods)")
    p.add_argument(
        "--batch-size", type=int, default=0, help="identical: consecutive identical pods (0 = all)"
    )
    p.add_argument("--gangs", type=int, default=None, help="gangs: how many (default 1000)")
    p.add_argument(
        "--gang-size", type=int, default=None, help="members = minCount (gangs 3, large-gang 1000)"
    )
    p.add_argument(
        "--unschedulable-every",
        type=int,
        default=10,
        help="churn: every Nth pod is an unschedulable cpu-8 pod (default 10)",
    )
    p.add_argument(
        "--node-size",
        choices=["minimal", "realistic"],
        default="realistic",
        help="full-nodes: Node objects on the wire (default realistic, ~9 KB)",
    )
    p.add_argument("--target", metavar="URL", help="drive this running extender (loopback only)")
    p.add_argument("--compare", action="store_true", help="run twice: cache on vs off (or B)")
    p.add_argument("--compare-target", metavar="URL2", help="with --compare: a second build")
    p.add_argument("--no-cache", action="store_true", help="start the extender without the cache")
    p.add_argument(
        "--no-intree",
        action="store_true",
        help="offer sampled nodes without imitating in-tree NodeResourcesFit first",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin server and driver to CPUs")
    p.add_argument("--time-limit", type=float, default=600.0, help="seconds per run (600)")
    p.add_argument("--json", metavar="PATH", type=Path, help="write the figures as JSON")
    p.add_argument("--plot", metavar="PATH", type=Path, help="write a PNG over time")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--real", action="store_true", help="real kube-scheduler, with vs without")
    p.add_argument("--keep-logs", action="store_true", help="print where the server logs are")
    return p


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _pin(args: argparse.Namespace) -> tuple[int | None, bool]:
    """(CPU for the server, whether the driver got pinned to CPU 1)."""
    if args.no_pin or args.target or (os.cpu_count() or 1) < 2:
        return None, False
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, False
    if len(cpus) < 2:
        return None, False
    os.sched_setaffinity(0, {cpus[1]})
    return cpus[0], True


def run_scenario(
    scenario: str,
    args: argparse.Namespace,
    templates: workloads.Templates,
    nodes: list[Any],
    server_cpu: int | None,
) -> tuple[dict[str, Any], list[driver.Result], str]:
    """Every run of one scenario; returns (json, results, text)."""
    gangs = gang_size = 0
    if scenario in DEFAULT_GANGS:
        gangs = args.gangs if args.gangs is not None else DEFAULT_GANGS[scenario]
        if scenario == "large-gang":
            gangs = 1  # one gang; --gang-size sets its members (default 1000)
        gang_size = args.gang_size if args.gang_size is not None else DEFAULT_GANG_SIZE[scenario]
    pods = args.pods
    if pods is None:
        pods = 1000 if scenario == "full-nodes" else 5000  # S4 uses 1000 (anchors §6)

    variants: list[tuple[str, dict[str, bytes] | None]] = [("names", None)]
    if scenario == "full-nodes":
        realistic = args.node_size == "realistic"
        objects = {
            n.name: workloads.node_object(n, realistic=realistic, template=templates.node)
            for n in nodes
        }
        variants.append(("nodes", objects))
    if args.compare and args.compare_target:
        targets = [("A", server.check_target(args.target), True), ("B", args.compare_target, True)]
        server.check_target(args.compare_target)
    elif args.compare:
        targets = [("cache-on", None, True), ("cache-off", None, False)]
    elif args.target:
        targets = [("target", args.target, True)]
    else:
        label = "cache-off" if args.no_cache else "cache-on"
        targets = [(label, None, not args.no_cache)]

    results: list[driver.Result] = []
    description = ""
    extender_logs: list[str] = []
    for target_label, url, cache in targets:
        for variant, node_objects in variants:
            label = target_label if len(variants) == 1 else f"{variant}/{target_label}"
            if len(targets) == 1 and len(variants) > 1:
                label = variant
            prefix = f"{secrets.token_hex(3)}-" if url else ""
            factory = workloads.PodFactory(templates.pod)
            workload = workloads.build(
                scenario,
                factory,
                pods=pods,
                shapes=args.shapes,
                batch_size=args.batch_size,
                gangs=gangs,
                gang_size=gang_size,
                unschedulable_every=args.unschedulable_every,
                prefix=prefix,
            )
            init = workloads.init_pods(factory, args.init_pods)
            for spec in init:
                spec.raw["metadata"]["name"] = prefix + spec.raw["metadata"]["name"]
            description = workload.description
            ext: server.Extender | None = None
            try:
                if url:
                    run_url = server.check_target(url)
                    pid = None
                else:
                    queues_file = None
                    if scenario == "queue-mix":
                        queues_file = Path(tempfile.mkstemp(suffix=".yaml")[1])
                        queues_file.write_text(workloads.queue_mix_config(len(workload.pods)))
                    ext = server.Extender(
                        simulate_nodes=args.nodes,
                        cache=cache,
                        cpu=server_cpu,
                        queues_file=queues_file,
                    )
                    ext.start()
                    run_url, pid = ext.url, ext.pid
                    extender_logs.append(str(ext.log_path))
                run = driver.Run(
                    label=label,
                    url=run_url,
                    nodes=nodes,
                    pods=workload.pods,
                    init=init,
                    node_objects=node_objects,
                    in_tree=not args.no_intree,
                    time_limit=args.time_limit,
                    progress=not args.quiet,
                    gangs=workload.gangs,
                    gang_size=workload.gang_size,
                    pid=pid,
                )
                result = _run_async(driver.execute(run))
            finally:
                if ext is not None:
                    ext.stop()
            result.figures["cache"] = "target's" if url else ("on" if cache else "off")
            result.figures["payload"] = "nodes" if node_objects else "names"
            results.append(result)

    pairs: dict[str, dict[str, float | None]] = {}
    if len(targets) == 2:
        a, b = targets[0][0], targets[1][0]
        for i in range(len(variants)):
            first, second = results[i], results[len(variants) + i]
            key = f"{b}_vs_{a}" + (f"_{variants[i][0]}" if len(variants) > 1 else "")
            pairs[key] = report.ratios(first, second, a.replace("-", "_"), b.replace("-", "_"))
    if len(variants) == 2:
        for t in range(len(targets)):
            first, second = results[2 * t], results[2 * t + 1]
            key = "nodes_vs_names" + (f"_{targets[t][0]}" if len(targets) > 1 else "")
            pairs[key] = report.ratios(first, second, "names", "nodes")

    head = (
        f"== {scenario}: {description}; {args.nodes} nodes, "
        f"{scheduler_imitation.nodes_to_find(args.nodes)} names per filter call"
        + (", in-tree fit imitated" if not args.no_intree else ", no in-tree imitation")
        + f"\n   pod template: {templates.pod_source}"
    )
    if scenario == "full-nodes":
        head += f"; Node objects: {args.node_size}" + (
            f" (from {templates.node_source})" if templates.node_source else ""
        )
        size = len(next(iter(variants[1][1].values()))) if variants[1][1] else 0
        head += f", {size:,} bytes each"
    text = [head, report.table(results)]
    for key, values in pairs.items():
        text.append(f"ratios {key}:\n{report.render_ratios(values)}")
    for res in results:
        unfinished = res.figures.get("pods_not_finished", 0)
        cancelled = res.figures.get("binds_cancelled_at_time_limit", 0)
        if unfinished or cancelled:
            text.append(
                f"{res.label}: stopped at the time limit ({args.time_limit:g}s): "
                f"{unfinished} pods never scheduled, {cancelled} binds cancelled"
            )
        if res.errors:
            text.append(
                f"errors in {res.label} (first {len(res.errors)}): " + "; ".join(res.errors)
            )
    if args.keep_logs and extender_logs:
        text.append("extender logs: " + ", ".join(extender_logs))

    out: dict[str, Any] = {"scenario": scenario, "description": description}
    out.update(results[0].figures)
    if len(results) > 1:
        out["runs"] = {res.label: res.figures for res in results}
    if pairs:
        out["ratios"] = pairs
    return out, results, "\n".join(text)


def _run_async(coro: Any) -> Any:
    """On uvloop when installed, as the server runs: the driver's own overhead stays small."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.real:
        from loadtest import real

        return real.main(args)
    if args.compare_target and not args.compare:
        args.compare = True
    if args.compare_target and not args.target:
        raise SystemExit("--compare-target needs --target (the first build)")
    if args.compare and args.target and not args.compare_target:
        raise SystemExit("--compare with --target needs --compare-target URL2")
    if args.target:
        server.check_target(args.target)
    if args.nodes is None:
        args.nodes = 5000
    scenarios = list(workloads.SCENARIOS) if args.scenario == "all" else [args.scenario]
    started = time.time()
    info = machine()
    server_cpu, pinned = _pin(args)
    templates = workloads.load_templates()
    nodes = workloads.cluster_nodes(args.nodes)
    print(
        f"machine: {info['nproc']} CPUs ({info['cpu_model']}), Python {info['python']}, "
        f"load {info['loadavg_at_start']}; "
        + (
            f"server pinned to CPU {server_cpu}, driver to the other"
            if pinned
            else "no CPU pinning"
        ),
        flush=True,
    )
    outputs: dict[str, Any] = {}
    by_scenario: dict[str, list[driver.Result]] = {}
    errors = 0
    for scenario in scenarios:
        out, results, text = run_scenario(scenario, args, templates, nodes, server_cpu)
        print(text, flush=True)
        outputs[scenario] = out
        by_scenario[scenario] = results
        errors += sum(
            r.figures.get("errors", 0)
            + r.figures.get("pods_not_finished", 0)
            + r.figures.get("binds_cancelled_at_time_limit", 0)
            for r in results
        )
    meta = {
        "machine": info,
        "command": " ".join(["loadtest/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "nodes": args.nodes,
        "wall_seconds": round(time.time() - started, 1),
    }
    if args.json:
        doc = (
            {**meta, "scenarios": outputs}
            if args.scenario == "all"
            else {**meta, **outputs[scenarios[0]]}
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        for scenario in scenarios:
            path = args.plot
            if len(scenarios) > 1:
                path = args.plot.with_name(f"{args.plot.stem}-{scenario}{args.plot.suffix}")
            title = f"{scenario}: {outputs[scenario]['description']}; {args.nodes} nodes"
            report.plot(by_scenario[scenario], path, title)
            print(f"wrote {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
