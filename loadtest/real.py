"""``--real``: the real kube-scheduler v1.20.2 on a real control plane, without and with muster.

One invocation: start etcd + kube-apiserver + kube-controller-manager (tests/e2e/controlplane.py,
loopback, free ports), create ``--nodes`` Node objects (no kubelets), then twice:

1. create ``--pods`` plain pods while kube-scheduler is stopped (creation is not measured);
2. start kube-scheduler and time every binding from a watch on the pods until all are bound;
3. stop the scheduler and delete the pods (grace 0).

The first pass runs kube-scheduler alone (same clientConnection qps/burst as the shipped
config); the second runs ``muster serve --kubeconfig`` and kube-scheduler with the release's
shipped ``scheduler-config/`` file (``MUSTER_E2E_K8S``: 1.20.2 or 1.36) pointed at it, so
filter, prioritize and bind (the binding itself) go through muster.  Same nodes, same pods.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib.util
import json
import ssl
import sys
import threading
import time
import types
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from extender import simulation
from loadtest import server, workloads

ROOT = Path(__file__).resolve().parent.parent
CONTROLPLANE = ROOT / "tests" / "e2e" / "controlplane.py"
NAMESPACE = "loadtest"
POLL_SECONDS = 0.5
WORKERS = 16


def _controlplane() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("muster_controlplane", CONTROLPLANE)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {CONTROLPLANE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def plain_config(shipped: dict[str, Any]) -> str:
    """kube-scheduler without extenders, otherwise as shipped (qps/burst, leader election)."""
    doc = {k: v for k, v in shipped.items() if k != "extenders"}
    return yaml.safe_dump(doc, sort_keys=False)


def extender_config(shipped: dict[str, Any], url: str) -> str:
    doc = json.loads(json.dumps(shipped))
    for extender in doc.get("extenders") or []:
        extender["urlPrefix"] = url
    return yaml.safe_dump(doc, sort_keys=False)


def pod_manifest(template: dict[str, Any], name: str) -> dict[str, Any]:
    """A bare pod of pod-default's size from the template's shape, ready to POST."""
    pod = json.loads(json.dumps(template))
    meta = pod["metadata"]
    keep = {"labels": meta.get("labels") or {}}
    keep["labels"] = {k: v for k, v in keep["labels"].items() if k != workloads.WORKLOAD_LABEL}
    pod["metadata"] = {"name": name, "namespace": NAMESPACE, **keep}
    spec = pod["spec"]
    for key in ("nodeName", "priority", "preemptionPolicy", "enableServiceLinks"):
        spec.pop(key, None)
    spec["schedulerName"] = "default-scheduler"
    spec["containers"] = spec["containers"][:1]
    container = spec["containers"][0]
    container["resources"] = {"requests": dict(workloads.POD_DEFAULT)}
    spec = {k: v for k, v in spec.items() if v is not None}
    pod["spec"] = spec
    pod.pop("status", None)
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    return pod


def _parallel(fn: Any, items: list[Any], deadline: float) -> None:
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        for future in concurrent.futures.as_completed([pool.submit(fn, i) for i in items]):
            future.result()
            if time.monotonic() > deadline:
                raise TimeoutError("time limit reached while creating objects")


def _unbound(cp: Any) -> int:
    path = f"/api/v1/namespaces/{NAMESPACE}/pods?fieldSelector=spec.nodeName%3D&resourceVersion=0"
    return len(cp.api("GET", path, timeout=60)["items"])


def _count(cp: Any) -> int:
    return len(cp.api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods", timeout=60)["items"])


class BindWatch:
    """Times each pod's binding as it happens: a watch on the namespace's pods records when
    each pod first shows a ``spec.nodeName``.  One watch costs the API server far less than
    listing thousands of unbound pods every half second, and the times are exact, not rounded
    to a poll."""

    def __init__(self, cp: Any, deadline: float) -> None:
        version = cp.api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?limit=1")["metadata"]
        seconds = max(1, int(deadline - time.monotonic()))
        self.request = urllib.request.Request(
            f"{cp.server}/api/v1/namespaces/{NAMESPACE}/pods?watch=true"
            f"&resourceVersion={version['resourceVersion']}&timeoutSeconds={seconds}",
            headers={"Authorization": f"Bearer {cp.admin_token}"},
        )
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.bound: dict[str, float] = {}
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="bind-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with urllib.request.urlopen(self.request, context=self.context) as stream:  # noqa: S310
                for line in stream:
                    obj = json.loads(line).get("object") or {}
                    if (obj.get("spec") or {}).get("nodeName"):
                        self.bound.setdefault(obj["metadata"]["uid"], time.monotonic())
        except Exception as exc:  # the caller falls back to polling
            self.error = f"{type(exc).__name__}: {exc}"

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()


def measure(
    cp: Any, config: str, pods: list[dict[str, Any]], deadline: float, label: str
) -> dict[str, Any]:
    """Create the pods (scheduler stopped), start the scheduler, time until all are bound."""
    created = time.monotonic()
    _parallel(
        lambda pod: cp.api("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod), pods, deadline
    )
    create_seconds = time.monotonic() - created
    total = len(pods)
    print(f"  {label}: created {total} pods in {create_seconds:.1f}s (scheduler stopped)")
    watch = BindWatch(cp, deadline)
    started = time.monotonic()
    cp.start_scheduler(config, force_local=True, timeout=120)
    ready = time.monotonic()
    bound = 0
    done: float | None = None
    while time.monotonic() < deadline:
        if watch.alive or len(watch.bound) >= total:
            bound = len(watch.bound)
            if bound >= total:
                done = max(watch.bound.values())
                break
            time.sleep(0.1)
        else:  # the watch ended early: count the hard way
            bound = total - _unbound(cp)
            if bound >= total:
                done = time.monotonic()
                break
            time.sleep(POLL_SECONDS)
    cp.stop_scheduler()
    times = sorted(t - started for t in watch.bound.values())
    result: dict[str, Any] = {
        "pods": total,
        "pods_bound": bound,
        "create_seconds": round(create_seconds, 2),
        "scheduler_start_seconds": round(ready - started, 2),
        "seconds_to_all_bound": round(done - started, 2) if done is not None else None,
        "pods_per_second_incl_start": (
            round(bound / (done - started), 1) if done is not None else None
        ),
        "bound_per_half_second": _series(times),
        "watch_error": watch.error,
    }
    if len(times) == total and times[-1] > times[0]:
        # Steady state: from the first binding to the last.
        result["pods_per_second"] = round((total - 1) / (times[-1] - times[0]), 1)
        result["first_bind_seconds"] = round(times[0], 3)
    else:
        result["pods_per_second"] = None
    return result


def _series(times: list[float]) -> list[tuple[float, int]]:
    """Pods bound by the end of each half second after the scheduler was started."""
    out: list[tuple[float, int]] = []
    index = 0
    edge = POLL_SECONDS
    while index < len(times):
        while index < len(times) and times[index] <= edge:
            index += 1
        out.append((round(edge, 1), index))
        edge += POLL_SECONDS
    return out


def delete_pods(cp: Any, deadline: float) -> None:
    cp.api(
        "DELETE",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
    )
    while _count(cp) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)


def main(args: argparse.Namespace) -> int:
    nodes = args.nodes if args.nodes is not None else 500
    pods = args.pods if args.pods is not None else 2000
    deadline = time.monotonic() + args.time_limit
    controlplane = _controlplane()
    if not controlplane.binaries_present():
        print(
            f"--real needs the Kubernetes {controlplane.K8S_VERSION} binaries: run "
            f"`bash tests/e2e/controlplane.sh build {controlplane.RELEASE}` (or `make "
            f"controlplane`) first",
            file=sys.stderr,
        )
        return 2
    shipped = yaml.safe_load(controlplane.SHIPPED_SCHEDULER_CONFIG.read_text())
    ports = {name: server.free_port() for name in controlplane.DEFAULT_PORTS}
    cp = controlplane.ControlPlane(ports=ports, verbosity=1)
    ext: server.Extender | None = None
    template = workloads.load_templates()
    manifests = [pod_manifest(template.pod, f"real-{i}") for i in range(pods)]
    print(
        f"--real: kube-scheduler v{controlplane.K8S_VERSION}, {nodes} nodes, {pods} pods "
        f"(pod-default 100m/500Mi, template: {template.pod_source}); workdir {cp.workdir}"
    )
    print(
        "  pods are created while kube-scheduler is stopped, so creation is not the "
        "bottleneck; then the scheduler starts and a watch times every binding"
    )
    results: dict[str, Any] = {}
    try:
        cp.start()
        cp.api("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        started = time.monotonic()
        generated = simulation.generated_nodes(nodes)

        def create(node: Any) -> None:
            labels = {k: v for k, v in node.labels.items() if k != simulation.HOSTNAME_LABEL}
            cp.create_node(node.name, cpu="4", memory="32Gi", pods="110", labels=labels)

        _parallel(create, generated, deadline)
        print(f"  created {nodes} nodes in {time.monotonic() - started:.1f}s")

        results["without_extender"] = measure(
            cp, plain_config(shipped), manifests, deadline, "without extender"
        )
        delete_pods(cp, deadline)
        ext = server.Extender(kubeconfig=str(cp.kubeconfig), cache=not args.no_cache)
        ext.start()
        before = server.scrape(ext.url)
        results["with_extender"] = measure(
            cp, extender_config(shipped, ext.url), manifests, deadline, "with muster"
        )
        after = server.scrape(ext.url)
        with_ext = results["with_extender"]
        bound = with_ext["pods_bound"] or 1
        with_ext["extender_cpu_ms_per_pod"] = round(
            server.delta(after, before, "process_cpu_seconds_total") * 1e3 / bound, 3
        )
        with_ext["extender_requests"] = {
            k.removeprefix("muster_requests_total"): v - before.get(k, 0.0)
            for k, v in after.items()
            if k.startswith("muster_requests_total")
        }
        for verb in ("filter", "prioritize", "bind"):
            mean = server.histogram_mean_ms(
                after, before, f'muster_request_duration_seconds{{verb="{verb}"}}'
            )
            with_ext[f"server_{verb}_ms_mean"] = round(mean, 3) if mean is not None else None
        with_ext["extender_binds_bound"] = server.delta(
            after, before, 'muster_binds_total{result="bound"}'
        )
        with_ext["rss_mb"] = server.Extender.peak_rss_mb_of(ext.pid) if ext.pid else None
        delete_pods(cp, deadline)
    except TimeoutError as exc:
        print(f"--real: {exc}", file=sys.stderr)
    finally:
        if ext is not None:
            ext.stop()
        with contextlib.suppress(Exception):
            cp.stop()

    def pair(key: str) -> tuple[Any, Any]:
        return (
            results.get("without_extender", {}).get(key),
            results.get("with_extender", {}).get(key),
        )

    without, with_ = pair("pods_per_second")
    basis = "first bind -> last bind"
    if not (without and with_):
        without, with_ = pair("pods_per_second_incl_start")
        basis = "scheduler start -> all bound (bind times incomplete)"
    ratio = round(with_ / without, 3) if with_ and without else None
    lines = ["", f"{'':<40}{'without':>12}{'with muster':>14}"]
    for label, key in (
        ("pods bound", "pods_bound"),
        ("pods/s (first bind -> last bind)", "pods_per_second"),
        ("pods/s (incl. scheduler start)", "pods_per_second_incl_start"),
        ("seconds to all bound", "seconds_to_all_bound"),
        ("scheduler start s (healthz)", "scheduler_start_seconds"),
        ("first bind s after start", "first_bind_seconds"),
    ):
        a = results.get("without_extender", {}).get(key)
        b = results.get("with_extender", {}).get(key)
        lines.append(f"{label:<40}{_fmt(a):>12}{_fmt(b):>14}")
    ext_fig = results.get("with_extender", {})
    lines.append(f"extender CPU ms/pod: {_fmt(ext_fig.get('extender_cpu_ms_per_pod'))}")
    lines.append(f"extender peak RSS MB: {_fmt(ext_fig.get('rss_mb'))}")
    lines.append(
        "extender's own time per call, ms (mean): "
        + ", ".join(
            f"{v} {_fmt(ext_fig.get(f'server_{v}_ms_mean'))}"
            for v in ("filter", "prioritize", "bind")
        )
    )
    lines.append(f"ratio with/without: {_fmt(ratio)} (pods/s {basis})")
    print("\n".join(lines))
    doc = {
        "mode": "real",
        "kubernetes": controlplane.K8S_VERSION,
        "nodes": nodes,
        "pods": pods,
        "real_pods_per_second_without_extender": without,
        "real_pods_per_second_with_extender": with_,
        "real_ratio_with_over_without": ratio,
        "real_ratio_basis": basis,
        **results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    complete = all(
        results.get(k, {}).get("pods_bound") == pods for k in ("without_extender", "with_extender")
    )
    return 0 if complete else 1


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
