"""muster on the e2e control plane: the extender as a subprocess, a recording proxy between
kube-scheduler and muster, kube-scheduler configurations, and small API helpers.

- :class:`MusterProcess` runs ``python -m extender serve --kubeconfig <admin kubeconfig>`` on a
  free loopback port, with its log in the control plane's ``logs/`` directory.
- :class:`RecordingProxy` is the scheduler's ``urlPrefix``: it forwards every call to muster
  unchanged and records the request and reply bytes with their times (the golden payloads, and
  the times at which bind calls arrive and are answered). With muster down it answers 502, as
  a dead extender looks to the scheduler (a connection error is also a failed call).
- :class:`SchedulerSwitch` keeps one kube-scheduler running with one of the configurations of
  :data:`VARIANTS` and restarts it only when a test asks for another one.
- :data:`SESSION` holds the session's muster, proxy and scheduler switch that conftest.py's
  fixtures start, and :class:`Extender` bundles them for a test; :func:`put_queues` writes
  Kueue objects (:func:`queue_setup`) into muster's queues file and waits until they are in force.

Only the standard library, PyYAML, prometheus_client (a muster dependency) and muster's pod
builder (``extender.core.manifests``) are used.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import select
import socket
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from controlplane import (
    LOOPBACK,
    SHIPPED_SCHEDULER_CONFIG,
    ControlPlane,
    ControlPlaneError,
    _Proc,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families

from extender.core import manifests

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = SHIPPED_SCHEDULER_CONFIG
WORKLOAD_CRD = REPO / "deploy" / "workload-crd.yaml"
TEST_LABEL = "muster.dev/e2e-test"
IMAGE = "registry.invalid/pause:3.2"  # never pulled: there is no kubelet

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------
# muster


class MusterProcess:
    """``muster serve`` against the control plane, restartable on the same port."""

    def __init__(
        self, cp: ControlPlane, *, extra_args: Sequence[str] = (), name: str = "muster"
    ) -> None:
        self.cp = cp
        self.name = name
        """Names its log files (``logs/<name>.<run>.log``): a second muster keeps its own."""
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.extra_args = list(extra_args)
        self.runs = 0
        self._proc: _Proc | None = None

    @property
    def log_path(self) -> Path:
        return self.cp.logdir / f"{self.name}.{self.runs}.log"

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until ``/readyz`` says the cluster view has synced; returns the
        ``time.monotonic()`` at which it answered 200."""
        if self.alive():
            raise ControlPlaneError("muster is already running")
        self.runs += 1
        argv = [
            sys.executable,
            "-m",
            "extender",
            "serve",
            f"--kubeconfig={self.cp.kubeconfig}",
            f"--host={LOOPBACK}",
            f"--port={self.port}",
            *self.extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
        for k in ("http_proxy", "https_proxy", "all_proxy"):
            env.pop(k, None)
            env.pop(k.upper(), None)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["PYTHONUNBUFFERED"] = "1"
        # The control plane's kubeconfigs skip TLS verification (self-signed, loopback); keep
        # urllib3's warning about that out of muster's log, which failure reports show.
        env["PYTHONWARNINGS"] = "ignore:Unverified HTTPS request"
        self._proc = _Proc(self.name, argv, self.log_path, env, REPO)

        def ready() -> bool:
            proc = self._proc
            if proc is None or not proc.alive():
                raise ControlPlaneError(f"muster exited:\n{self.log_tail(30)}")
            return self.get("/readyz")[0] == 200

        try:
            wait_until(ready, timeout, 0.1, "muster /readyz")
        except TimeoutError as exc:
            raise ControlPlaneError(f"{exc}\n{self.log_tail(30)}") from None
        return time.monotonic()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def kill(self) -> None:
        """SIGKILL, like a crash or an OOM kill: no graceful shutdown."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.popen.kill()
            self._proc.stop(grace=5)
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop(grace=5)
            self._proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:  # noqa: S310
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            body = e.read().decode()
            e.close()
            return e.code, body
        except OSError as e:
            return 0, str(e)

    def post(
        self,
        path: str,
        body: bytes,
        *,
        timeout: float = 10.0,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics``: {(name, sorted labels): value}."""
        status, text = self.get("/metrics")
        if status != 200:
            raise ControlPlaneError(f"muster /metrics -> {status}: {text[:200]}")
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)


# --------------------------------------------------------------------------------------------
# the recording proxy


CLIENT_GONE = 499
"""The status a call is recorded with when the scheduler closed its connection before muster
answered (nginx's "client closed request"); nothing is sent back."""


@dataclass
class Call:
    """One extender call as the scheduler made it, and muster's answer."""

    verb: str
    request: bytes
    started: float  # time.monotonic()
    status: int = 0
    response: bytes = b""
    finished: float = 0.0
    forwarded: float = 0.0
    """When the call went on to muster (after any ``RecordingProxy.delays``)."""

    @property
    def abandoned(self) -> bool:
        """The scheduler hung up before muster answered (status :data:`CLIENT_GONE`)."""
        return self.status == CLIENT_GONE

    @property
    def args(self) -> Any:
        return json.loads(self.request)

    @property
    def reply(self) -> Any:
        return json.loads(self.response)

    @property
    def pod_name(self) -> str:
        """The pod the call is about (``Pod.metadata.name``, or ``PodName`` of a bind)."""
        args = self.args
        if "PodName" in args:
            return str(args["PodName"])
        return str(((args.get("Pod") or {}).get("metadata") or {}).get("name", ""))


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scheduler that is killed resets its idle keep-alive connections: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _answer_before_hangup(
    upstream: socket.socket, client: socket.socket, *, timeout: float
) -> bool:
    """Wait until ``upstream`` has bytes to read (the answer begins): True; or until
    ``client`` hangs up first (end of stream or reset): False. A client does not send while it
    awaits an answer (HTTP/1.1 without pipelining); if it does, only ``upstream`` is watched."""
    deadline = time.monotonic() + timeout
    watched = [upstream, client]
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return True  # let getresponse() time out and report it
        readable, _, _ = select.select(watched, [], [], left)
        if upstream in readable:
            return True
        if client in readable:
            try:
                peeked = client.recv(1, socket.MSG_PEEK)
            except OSError:
                peeked = b""
            if not peeked:
                return False
            watched = [upstream]


@dataclass
class RecordingProxy:
    """A threaded HTTP server forwarding ``POST /<verb>`` to muster and recording each call."""

    upstream_port: int
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delays: dict[str, float] = field(default_factory=dict)
    """Seconds to hold a verb's calls before forwarding them (a slow network or a busy
    scheduler goroutine); the ``extender`` fixture clears it for every test."""

    def __post_init__(self) -> None:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Go's client expects

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                call = Call(verb=self.path.strip("/"), request=body, started=time.monotonic())
                with proxy.lock:
                    proxy.calls.append(call)
                delay = proxy.delays.get(call.verb)
                if delay:
                    time.sleep(delay)
                call.forwarded = time.monotonic()
                status, reply = proxy.forward(self.path, body, client=self.connection)
                call.status, call.response, call.finished = status, reply, time.monotonic()
                if status == CLIENT_GONE:
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = _ProxyServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="recording-proxy", daemon=True
        )

    def start(self) -> RecordingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(
        self, path: str, body: bytes, *, client: socket.socket | None = None
    ) -> tuple[int, bytes]:
        """muster's answer to one call. While muster has not answered, a ``client`` (the
        scheduler's connection) that hangs up makes the proxy close its own connection to
        muster too, so muster sees its caller go away as it would without the proxy (a killed
        scheduler's bind calls): the call is then :data:`CLIENT_GONE`."""
        # Longer than the shipped httpTimeout (330 s): the scheduler gives up first.
        conn = http.client.HTTPConnection(LOOPBACK, self.upstream_port, timeout=400)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            if client is not None and conn.sock is not None:
                if not _answer_before_hangup(conn.sock, client, timeout=400):
                    return CLIENT_GONE, b""
            resp = conn.getresponse()
            return resp.status, resp.read()
        except OSError as exc:
            return 502, json.dumps({"Error": f"proxy: muster unreachable: {exc}"}).encode()
        finally:
            conn.close()

    def mark(self) -> int:
        """A position in the call log; ``since(mark)`` returns the calls made after it."""
        with self.lock:
            return len(self.calls)

    def since(self, mark: int = 0, verb: str | None = None) -> list[Call]:
        with self.lock:
            calls = self.calls[mark:]
        return [c for c in calls if verb is None or c.verb == verb]

    def for_pod(self, name: str, verb: str, mark: int = 0, *, answered: bool = False) -> list[Call]:
        """The pod's calls of one verb since ``mark``; ``answered``: only those muster answered."""
        return [
            c for c in self.since(mark, verb) if c.pod_name == name and (c.finished or not answered)
        ]

    def summary(self, last: int = 30) -> str:
        with self.lock:
            calls = list(self.calls[-last:])
        lines = []
        for c in calls:
            took = f"{c.finished - c.started:.3f}s" if c.finished else "pending"
            lines.append(
                f"{c.verb:10} {c.pod_name:30} -> {c.status or '...'} ({took}) {c.response[:160]!r}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# kube-scheduler configurations

# Profile filters that muster also implements; disabling them makes muster's checks the only ones.
MUSTER_CHECKED_FILTERS = (
    "NodeUnschedulable",
    "NodeResourcesFit",
    "NodeAffinity",
    "TaintToleration",
)

VARIANTS = ("shipped", "muster-filters", "plain")
"""``shipped``: the release's shipped scheduler-config/ file with urlPrefix at the proxy.
``muster-filters``: the same, plus a profile that disables the in-tree filters muster also
implements (:data:`MUSTER_CHECKED_FILTERS`), so muster alone decides cordons, resources,
nodeSelector, node affinity and taints. ``plain``: no extender, in-tree filters only."""


def scheduler_config(variant: str, url: str) -> str:
    doc = yaml.safe_load(SHIPPED_CONFIG.read_text())
    if variant == "plain":
        del doc["extenders"]
    else:
        doc["extenders"][0]["urlPrefix"] = url
    if variant == "muster-filters":
        disabled = [{"name": n} for n in MUSTER_CHECKED_FILTERS]
        doc["profiles"] = [
            {"schedulerName": "default-scheduler", "plugins": {"filter": {"disabled": disabled}}}
        ]
    elif variant not in VARIANTS:
        raise ValueError(f"unknown scheduler variant {variant!r}")
    return yaml.safe_dump(doc, sort_keys=False)


class SchedulerSwitch:
    """One kube-scheduler, restarted only when a test needs another configuration."""

    def __init__(self, cp: ControlPlane, url: str) -> None:
        self.cp = cp
        self.url = url
        self.variant: str | None = None
        self._pid: int | None = None

    def use(self, variant: str) -> None:
        running = self.cp.running("kube-scheduler") and self.cp.pid("kube-scheduler") == self._pid
        if running and variant == self.variant:
            return
        self.cp.start_scheduler(scheduler_config(variant, self.url), force_local=True)
        self.variant, self._pid = variant, self.cp.pid("kube-scheduler")

    def stop(self) -> None:
        if self._pid is not None and self.cp.pid("kube-scheduler") == self._pid:
            self.cp.stop_scheduler()
        self.variant = self._pid = None


# --------------------------------------------------------------------------------------------
# objects and API helpers


def pod(
    name: str,
    selector: Mapping[str, str],
    *,
    cpu: str = "100m",
    memory: str = "64Mi",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod manifest pinned by ``selector`` to the test's nodes; ``spec`` adds fields."""
    manifest = manifests.pod(
        name,
        labels=labels,
        annotations=annotations,
        containers=[manifests.container("c", image=IMAGE, requests={"cpu": cpu, "memory": memory})],
        spec={"nodeSelector": dict(selector), **spec},
    )
    return {"apiVersion": "v1", "kind": "Pod", **manifest}


def create(cp: ControlPlane, namespace: str, manifest: Mapping[str, Any]) -> Any:
    """POST a pod (one API call, much faster than kubectl)."""
    return cp.api("POST", f"/api/v1/namespaces/{namespace}/pods", dict(manifest))


def placements(cp: ControlPlane, namespace: str, selector: str | None = None) -> dict[str, str]:
    """{pod name: node name, or "" while unbound} of the namespace's live pods."""
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName", "")
        for p in cp.list_pods(namespace, selector)
        if not p["metadata"].get("deletionTimestamp")
    }


def events(
    cp: ControlPlane, namespace: str, pod_name: str | None = None, reason: str | None = None
) -> list[dict[str, Any]]:
    q = ""
    if pod_name:
        q = "?fieldSelector=" + urllib.parse.quote(f"involvedObject.name={pod_name}")
    items = cp.api("GET", f"/api/v1/namespaces/{namespace}/events{q}")["items"]
    return [e for e in items if reason is None or e.get("reason") == reason]


def messages(
    cp: ControlPlane, namespace: str, pod_name: str | None = None, reason: str | None = None
) -> list[str]:
    return [e.get("message") or "" for e in events(cp, namespace, pod_name, reason)]


def delete_pods(
    cp: ControlPlane, namespace: str, names: Iterable[str], timeout: float = 30
) -> None:
    """Delete with grace period 0 (no kubelet confirms a graceful delete) and wait until gone."""
    names = list(names)
    for name in names:
        cp.api(
            "DELETE",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            {"gracePeriodSeconds": 0},
            ok=(200, 202, 404),
        )

    def gone() -> bool:
        left = {p["metadata"]["name"] for p in cp.list_pods(namespace)}
        return not left.intersection(names)

    wait_until(gone, timeout, 0.1, f"pods {names} to be deleted")


def requested_cpu_millis(manifest_or_pod: Mapping[str, Any]) -> int:
    total = 0
    for c in manifest_or_pod["spec"]["containers"]:
        raw = str(((c.get("resources") or {}).get("requests") or {}).get("cpu", "0"))
        total += int(raw[:-1]) if raw.endswith("m") else int(float(raw) * 1000)
    return total


@dataclass
class NodeSet:
    """Nodes made for one test, all labelled ``muster.dev/e2e-test=<id>``; removed afterwards."""

    cp: ControlPlane
    test_id: str
    names: list[str] = field(default_factory=list)

    @property
    def selector(self) -> dict[str, str]:
        return {TEST_LABEL: self.test_id}

    def add(
        self,
        suffix: str,
        *,
        cpu: str = "4",
        memory: str = "8Gi",
        pods: str = "110",
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, Any]] | None = None,
        unschedulable: bool = False,
    ) -> str:
        name = f"{self.test_id}-{suffix}"
        self.cp.create_node(
            name, cpu=cpu, memory=memory, pods=pods, labels={**self.selector, **(labels or {})}
        )
        self.names.append(name)
        spec: dict[str, Any] = {}
        if taints:
            spec["taints"] = [dict(t) for t in taints]
        if unschedulable:
            spec["unschedulable"] = True
        if spec:
            self.cp.api(
                "PATCH",
                f"/api/v1/nodes/{name}",
                {"spec": spec},
                content_type="application/merge-patch+json",
            )
        return name

    def remove(self) -> None:
        for name in self.names:
            self.cp.api("DELETE", f"/api/v1/nodes/{name}", ok=(200, 202, 404))
        self.names.clear()


def wait_muster_sees_nodes(cp: ControlPlane, muster: MusterProcess, timeout: float = 20) -> None:
    """Until muster's view holds as many nodes as the API server (a new node's name sent by the
    scheduler before muster's watch delivered it is answered with 400: see the e2e README)."""

    def same() -> bool:
        count = len(cp.api("GET", "/api/v1/nodes")["items"])
        return muster.metric("muster_cluster_nodes") == count

    wait_until(same, timeout, 0.1, "muster's view to hold every node")


class PodSampler:
    """Lists a namespace's pods every ``interval`` seconds in a thread; every sample is one
    consistent LIST (one resourceVersion): (time the LIST returned, {pod name: node or ""})."""

    def __init__(self, cp: ControlPlane, namespace: str, interval: float = 0.1) -> None:
        self.cp = cp
        self.namespace = namespace
        self.interval = interval
        self.samples: list[tuple[float, dict[str, str]]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                now = placements(self.cp, self.namespace)
                # Stamped when the answer is in: whatever it shows bound was bound before then.
                self.samples.append((time.monotonic(), now))
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(exc))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> PodSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Sampler(Generic[T]):
    """Calls ``read`` every ``interval`` seconds in a thread for as long as it is entered and
    keeps ``(time.monotonic() when the reading was in, value)``; a reading that raised goes to
    ``errors`` as ``(time, repr)`` (the API server may be down on purpose)."""

    def __init__(self, read: Callable[[], T], interval: float = 0.2, name: str = "sampler") -> None:
        self.read = read
        self.interval = interval
        self.samples: list[tuple[float, T]] = []
        self.errors: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                value = self.read()
                self.samples.append((time.monotonic(), value))
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append((time.monotonic(), repr(exc)))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def since(self, t: float) -> list[tuple[float, T]]:
        return [(when, value) for when, value in list(self.samples) if when >= t]

    def first(self, predicate: Callable[[T], bool], *, after: float = 0.0) -> float | None:
        """When the first reading after ``after`` that satisfies ``predicate`` was in."""
        return next((t for t, v in self.since(after) if predicate(v)), None)

    def __enter__(self) -> Sampler[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def namespace(cp: ControlPlane, name: str) -> Iterator[str]:
    """A namespace for part of a test, force-emptied and deleted afterwards."""
    cp.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cp.kubectl(
            "delete",
            "pods",
            "--all",
            "-n",
            name,
            "--grace-period=0",
            "--force",
            "--wait=false",
            check=False,
        )
        cp.kubectl("delete", "namespace", name, "--wait=false", check=False)


# -- the session's muster, and what a test works with ---------------------------------------

SESSION: dict[str, Any] = {}
"""The session's muster ``process``, its ``proxy``, its ``queues_file`` and the scheduler
``switch``, as the fixtures of conftest.py started them."""
REPORT_SECTIONS: dict[str, Callable[[], list[tuple[str, str]]]] = {}
"""More (title, text) sections for the report of a failed e2e test, by who added them: a
fixture that runs its own processes (the chaos tests' muster) adds its logs here."""


def shared_muster() -> MusterProcess | None:
    """The session's muster, if a test has started it."""
    process: MusterProcess | None = SESSION.get("process")
    return process


def shared_schedulers() -> SchedulerSwitch | None:
    """The session's scheduler switch, if a test has used it."""
    switch: SchedulerSwitch | None = SESSION.get("switch")
    return switch


@dataclass
class Extender:
    """What an extender test works with."""

    cp: ControlPlane
    muster: MusterProcess
    proxy: RecordingProxy
    schedulers: SchedulerSwitch
    queues_file: Path


# -- Kueue objects in the queues file ------------------------------------------------------------

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def queue_setup(namespace: str, *, cpu: int) -> str:
    """A ClusterQueue ``cq-<namespace>`` of ``cpu`` cpus and LocalQueue ``<namespace>/user-queue``.

    Not tests/builders.py's QUEUE_SETUP: every test has its own ClusterQueue (in its own
    namespace), and one flavor without node labels (a test's Node objects carry only its own
    label)."""
    return textwrap.dedent(f"""\
        apiVersion: kueue.x-k8s.io/v1beta1
        kind: ResourceFlavor
        metadata: {{name: default-flavor}}
        ---
        apiVersion: kueue.x-k8s.io/v1beta1
        kind: ClusterQueue
        metadata: {{name: cq-{namespace}}}
        spec:
          namespaceSelector: {{}}
          resourceGroups:
          - coveredResources: [cpu, memory]
            flavors:
            - name: default-flavor
              resources:
              - {{name: cpu, nominalQuota: {cpu}}}
              - {{name: memory, nominalQuota: 100Gi}}
        ---
        apiVersion: kueue.x-k8s.io/v1beta1
        kind: LocalQueue
        metadata: {{namespace: {namespace}, name: user-queue}}
        spec: {{clusterQueue: cq-{namespace}}}
        """)


def write_queues(ext: Extender, text: str) -> None:
    """Replace the queues file at once: muster polls it and must never read it half written."""
    staged = ext.queues_file.with_suffix(".staged")
    staged.write_text(text)
    os.replace(staged, ext.queues_file)


def put_queues(ext: Extender, text: str, cluster_queue: str) -> None:
    """Write the queues file and wait until muster has loaded ``cluster_queue`` from it."""
    write_queues(ext, text)

    def loaded() -> bool:
        status, body = ext.muster.get("/debug/queues")
        return status == 200 and any(
            cq["name"] == cluster_queue for cq in json.loads(body)["clusterQueues"]
        )

    wait_until(loaded, 15, 0.2, f"muster to load ClusterQueue {cluster_queue}")
