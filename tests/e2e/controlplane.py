"""A real Kubernetes v1.20.2 control plane on loopback, for the end-to-end tests.

etcd (Debian's etcd-server) plus kube-apiserver, kube-controller-manager, kube-scheduler and
kubectl built from source by ``tests/e2e/controlplane.sh build`` into
``${MUSTER_CACHE:-~/.cache/muster}/k8s-1.20.2/bin``. There is no kubelet: nodes are plain API
objects (see :meth:`ControlPlane.create_node`), pods are bound but never run.

Typical use::

    cp = ControlPlane()
    cp.start()                      # etcd, kube-apiserver, kube-controller-manager
    cp.start_scheduler(config_yaml) # kube-scheduler with a KubeSchedulerConfiguration (v1beta1)
    cp.kubectl("get", "pods", "-A")
    cp.stop()                       # kills everything it started; logs stay in cp.workdir

Ports (all on 127.0.0.1) can be overridden with environment variables:
MUSTER_E2E_ETCD_PORT (23790), MUSTER_E2E_ETCD_PEER_PORT (23800), MUSTER_E2E_APISERVER_PORT
(16443), MUSTER_E2E_KCM_PORT (20257), MUSTER_E2E_SCHEDULER_PORT (20259),
MUSTER_E2E_SCHEDULER_INSECURE_PORT (20251, the scheduler's plain-HTTP healthz/metrics).
MUSTER_E2E_WORKDIR sets the parent of the temporary work dir (default: the system temp dir).

Only the standard library and PyYAML are used here.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "controlplane.sh"
LEGACY_RELEASE = "1.20.2"
RELEASE = os.environ.get("MUSTER_E2E_K8S") or LEGACY_RELEASE
"""Which control plane the e2e runs on: 1.20.2 (Debian's source, Go 1.19), or a minor built
from Go modules by ``controlplane.sh build <minor>`` (``tests/e2e/k8s/<minor>/go.mod``)."""
LEGACY = RELEASE == LEGACY_RELEASE
"""1.20: v1beta1 scheduler configuration, insecure ports still open unless closed."""


def _module_version(minor: str) -> str:
    text = (HERE / "k8s" / minor / "go.mod").read_text()
    found = re.search(r"^\s*k8s\.io/kubernetes v(\S+)$", text, re.M)
    if found is None:
        raise RuntimeError(f"tests/e2e/k8s/{minor}/go.mod requires no k8s.io/kubernetes")
    return found.group(1)


K8S_VERSION = LEGACY_RELEASE if LEGACY else _module_version(RELEASE)
SHIPPED_SCHEDULER_CONFIG = (
    HERE.parents[1]
    / "scheduler-config"
    / ("kube-scheduler-v1beta1.yaml" if LEGACY else "kube-scheduler-v1.yaml")
)
"""The shipped KubeSchedulerConfiguration a user of this release applies."""
LOOPBACK = "127.0.0.1"
KUBECONFIG_PLACEHOLDER = "KUBECONFIG_PATH"

DEFAULT_PORTS: dict[str, int] = {
    "etcd": 23790,
    "etcd_peer": 23800,
    "apiserver": 16443,
    "kcm": 20257,
    "scheduler": 20259,
    # kube-scheduler 1.20 ignores --port when --config is given and serves plain-HTTP healthz and
    # metrics on healthzBindAddress/metricsBindAddress, default 0.0.0.0:10251; port 0 fails
    # validation, so it cannot be turned off: start_scheduler() pins it to loopback here.
    "scheduler_insecure": 20251,
}
PORT_ENV: dict[str, str] = {
    "etcd": "MUSTER_E2E_ETCD_PORT",
    "etcd_peer": "MUSTER_E2E_ETCD_PEER_PORT",
    "apiserver": "MUSTER_E2E_APISERVER_PORT",
    "kcm": "MUSTER_E2E_KCM_PORT",
    "scheduler": "MUSTER_E2E_SCHEDULER_PORT",
    "scheduler_insecure": "MUSTER_E2E_SCHEDULER_INSECURE_PORT",
}

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    """A component failed to start or a request to it failed."""


# --------------------------------------------------------------------------------------------
# binaries


def bin_dir() -> Path:
    """Directory of the cached binaries (same rule as ``controlplane.sh bindir``)."""
    cache = os.environ.get("MUSTER_CACHE") or str(Path.home() / ".cache" / "muster")
    return Path(cache) / f"k8s-{K8S_VERSION}" / "bin"


REQUIRED_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)


def binaries_present(directory: Path | None = None) -> bool:
    d = directory or bin_dir()
    return all(os.access(d / b, os.X_OK) for b in REQUIRED_BINARIES)


def ensure_built(timeout: float = 1800.0) -> Path:
    """Run ``controlplane.sh build`` if a binary is missing; return :func:`bin_dir`.

    The first build takes several minutes (apt-get installs + compiling Kubernetes).
    """
    if not binaries_present():
        print(
            f"controlplane: building Kubernetes {K8S_VERSION} binaries "
            f"(first time only; several minutes) ...",
            file=sys.stderr,
            flush=True,
        )
        subprocess.run(["bash", str(BUILD_SCRIPT), "build", RELEASE], check=True, timeout=timeout)
    if not binaries_present():
        raise ControlPlaneError(f"binaries still missing in {bin_dir()} after build")
    return bin_dir()


# --------------------------------------------------------------------------------------------
# small helpers


def _port_from_env(name: str) -> int:
    raw = os.environ.get(PORT_ENV[name])
    return int(raw) if raw else DEFAULT_PORTS[name]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def wait_until(
    fn: Callable[[], T | None],
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll ``fn`` until it returns a truthy value (returned); raise TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log file {path})"
    return "\n".join(data.splitlines()[-lines:])


def _remove_stale_etcd_dirs(parent: Path) -> None:
    for d in parent.glob("muster-etcd-*-*"):
        try:
            pid = int(d.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM the child when the thread that started it dies.

    A safety net for a test process killed with SIGKILL (where stop() cannot run). Linux only;
    silently skipped elsewhere. Note: it fires when the *spawning thread* exits, so start
    components from a long-lived thread (the main thread in pytest).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:  # noqa: BLE001
        pass


class _Proc:
    """A started component: its Popen, log file and name."""

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self._log.write(("$ " + " ".join(self.argv) + "\n").encode())
        self._log.flush()
        try:
            self.popen = subprocess.Popen(  # noqa: S603
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=str(cwd),
                start_new_session=True,  # Ctrl-C in the terminal does not hit it directly
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        except BaseException:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds. Returns the exit code."""
        try:
            if self.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        self.popen.kill()
                    self.popen.wait(timeout=10)
            return self.popen.returncode
        finally:
            if not self._log.closed:
                self._log.close()


# --------------------------------------------------------------------------------------------
# the control plane


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager (+ kube-scheduler on demand) on loopback.

    Attributes useful to callers:
      ``workdir``           temporary directory with configs, certs and ``logs/<component>.log``
      ``kubeconfig``        admin kubeconfig (token in group system:masters, insecure TLS)
      ``scheduler_kubeconfig``  kubeconfig of user system:kube-scheduler (the scheduler's RBAC)
      ``server``            ``https://127.0.0.1:<port>``
      ``admin_token``       bearer token of the admin user
      ``ports``             the ports in use

    ``verbosity`` is kube-scheduler's ``--v`` (2 logs every binding); the controller-manager
    runs at verbosity-1 and the apiserver at verbosity-2.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        binaries: str | os.PathLike[str] | None = None,
        ports: Mapping[str, int] | None = None,
        verbosity: int = 2,
        apiserver_args: Iterable[str] = (),
        controller_manager_args: Iterable[str] = (),
        etcd_in_memory: bool = True,
    ) -> None:
        self.bin = Path(binaries) if binaries else bin_dir()
        if workdir is None:
            parent = os.environ.get("MUSTER_E2E_WORKDIR") or None
            if parent:
                Path(parent).mkdir(parents=True, exist_ok=True)
            self.workdir = Path(tempfile.mkdtemp(prefix="muster-cp-", dir=parent))
        else:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.logdir = self.workdir / "logs"
        self.logdir.mkdir(exist_ok=True)
        self.ports = {k: _port_from_env(k) for k in DEFAULT_PORTS}
        if ports:
            self.ports.update(ports)
        self.verbosity = verbosity
        self.extra_apiserver_args = list(apiserver_args)
        self.extra_kcm_args = list(controller_manager_args)
        self.etcd_in_memory = etcd_in_memory
        self.server = f"https://{LOOPBACK}:{self.ports['apiserver']}"
        self.admin_token = secrets.token_hex(16)
        self.kcm_token = secrets.token_hex(16)
        self.scheduler_token = secrets.token_hex(16)
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.kcm_kubeconfig = self.workdir / "kube-controller-manager.kubeconfig"
        self.scheduler_kubeconfig = self.workdir / "kube-scheduler.kubeconfig"
        self._procs: dict[str, _Proc] = {}
        self._etcd_data: Path | None = None
        self._scheduler_runs = 0
        self._scheduler_start: tuple[str, tuple[str, ...], bool] | None = None
        self._ssl = ssl.create_default_context()
        self._ssl.check_hostname = False
        self._ssl.verify_mode = ssl.CERT_NONE
        self.started = False

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> ControlPlane:
        """Start etcd, kube-apiserver and kube-controller-manager and wait until they are ready.

        On failure everything started so far is stopped and ControlPlaneError carries the log
        tail of the failing component.
        """
        if not binaries_present(self.bin):
            raise ControlPlaneError(
                f"Kubernetes binaries missing in {self.bin}: run "
                f"`bash {BUILD_SCRIPT} build` (or call controlplane.ensure_built())"
            )
        busy = [
            f"{k}={p} (env {PORT_ENV.get(k, '-')})"
            for k, p in self.ports.items()
            if not _port_free(p)
        ]
        if busy:
            raise ControlPlaneError(f"ports already in use on {LOOPBACK}: {', '.join(busy)}")
        t0 = time.monotonic()
        try:
            self._write_pki_and_configs()
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self._start_controller_manager(timeout)
        except BaseException:
            self.stop()
            raise
        self.started = True
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop every process this object started (scheduler first, etcd last). Idempotent.

        Logs stay in ``self.workdir/logs``; the etcd data dir is removed.
        """
        order = ["kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
        for name in order + [n for n in self._procs if n not in order]:
            proc = self._procs.pop(name, None)
            if proc is not None:
                proc.stop(grace)
        if self._etcd_data is not None:
            shutil.rmtree(self._etcd_data, ignore_errors=True)
            self._etcd_data = None
        self.started = False

    def start_scheduler(
        self,
        config_text: str,
        *,
        extra_args: Iterable[str] = (),
        timeout: float = 60.0,
        force_local: bool = False,
    ) -> Path:
        """Start kube-scheduler with the given KubeSchedulerConfiguration (YAML text).

        ``KUBECONFIG_PATH`` in the text is replaced by the path of a kubeconfig for user
        system:kube-scheduler; if the text has no ``clientConnection.kubeconfig`` at all, it is
        filled in. For v1beta1/v1beta2 configs, healthzBindAddress and metricsBindAddress are
        set to 127.0.0.1:<scheduler_insecure port> unless given. ``force_local=True`` overwrites
        the kubeconfig and those addresses even when given: use it to run a shipped file from
        scheduler-config/ unchanged. Leader election is the config's business
        (``leaderElect: false``).
        A running scheduler is stopped first. Returns the path of the written config file.
        Waits for /healthz on the scheduler's secure port.
        """
        if not self.started:
            raise ControlPlaneError("start() the control plane before the scheduler")
        self.stop_scheduler()
        self._scheduler_start = (config_text, tuple(extra_args), force_local)
        text = config_text.replace(KUBECONFIG_PLACEHOLDER, str(self.scheduler_kubeconfig))
        doc = yaml.safe_load(text)
        if not isinstance(doc, dict):
            raise ValueError("scheduler config is not a YAML mapping")
        cc = doc.get("clientConnection") or {}
        if force_local or not cc.get("kubeconfig"):
            cc["kubeconfig"] = str(self.scheduler_kubeconfig)
            doc["clientConnection"] = cc
        if not LEGACY and str(doc.get("apiVersion", "")).endswith("/v1beta1"):
            # A test's 1.20 configuration on a current scheduler, which serves only v1: the
            # fields the tests use are the same, the plain-HTTP addresses are gone.
            doc["apiVersion"] = "kubescheduler.config.k8s.io/v1"
            for key in ("healthzBindAddress", "metricsBindAddress"):
                doc.pop(key, None)
        if str(doc.get("apiVersion", "")).endswith(("/v1beta1", "/v1beta2")):
            # With --config, 1.20 ignores --port and would listen on 0.0.0.0:10251.
            insecure = f"{LOOPBACK}:{self.ports['scheduler_insecure']}"
            for key in ("healthzBindAddress", "metricsBindAddress"):
                if force_local or key not in doc:
                    doc[key] = insecure
        text = yaml.safe_dump(doc, sort_keys=False)
        self._scheduler_runs += 1
        cfg = self.workdir / f"kube-scheduler-config.{self._scheduler_runs}.yaml"
        cfg.write_text(text)
        log = self.logdir / "kube-scheduler.log"
        if log.exists():  # keep earlier runs' logs
            log.rename(self.logdir / f"kube-scheduler.{self._scheduler_runs - 1}.log")
        port = self.ports["scheduler"]
        for key in ("scheduler", "scheduler_insecure"):
            if not _port_free(self.ports[key]):
                raise ControlPlaneError(
                    f"{key} port {self.ports[key]} is in use (set {PORT_ENV[key]})"
                )
        argv = [
            str(self.bin / "kube-scheduler"),
            f"--config={cfg}",
            # Ignored by 1.20 when --config is given (see DEFAULT_PORTS); gone since 1.24.
            *(["--port=0"] if LEGACY else []),
            f"--bind-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'kube-scheduler-certs'}",
            f"--v={self.verbosity}",
            *extra_args,
        ]
        self._spawn("kube-scheduler", argv)
        try:
            self._wait_healthz("kube-scheduler", port, timeout)
        except BaseException:
            self.stop_scheduler()
            raise
        return cfg

    def stop_scheduler(self, grace: float = 5.0) -> None:
        proc = self._procs.pop("kube-scheduler", None)
        if proc is not None:
            proc.stop(grace)

    # -- faults ------------------------------------------------------------------------------

    def kill(self, component: str) -> None:
        """SIGKILL one component, as a crash or an OOM kill would end it (no graceful shutdown:
        its connections just close), and reap it. Its log stays; start it again with
        :meth:`restart_apiserver`, :meth:`restart_controller_manager` or :meth:`start_scheduler`.
        """
        proc = self._procs.pop(component, None)
        if proc is None:
            raise ControlPlaneError(f"{component} is not running")
        with contextlib.suppress(ProcessLookupError):
            proc.popen.kill()
        proc.stop(grace=10)

    def restart_apiserver(self, timeout: float = 60.0) -> float:
        """Start kube-apiserver again, on the same port with the same flags and certificates
        (etcd kept the data), after :meth:`kill`; returns the seconds until it is ready."""
        if self.running("kube-apiserver"):
            raise ControlPlaneError("kube-apiserver is still running")
        started = time.monotonic()
        self._start_apiserver(timeout)
        return time.monotonic() - started

    def restart_scheduler(self, timeout: float = 60.0) -> Path:
        """Start kube-scheduler again with the configuration and flags of its last start (after
        :meth:`kill`, or while running: then it is stopped first)."""
        if self._scheduler_start is None:
            raise ControlPlaneError("kube-scheduler was never started")
        config_text, extra_args, force_local = self._scheduler_start
        return self.start_scheduler(
            config_text, extra_args=extra_args, timeout=timeout, force_local=force_local
        )

    def restart_controller_manager(self, timeout: float = 60.0) -> None:
        if self.running("kube-controller-manager"):
            raise ControlPlaneError("kube-controller-manager is still running")
        self._start_controller_manager(timeout)

    def running(self, component: str) -> bool:
        proc = self._procs.get(component)
        return proc is not None and proc.alive()

    def pid(self, component: str) -> int | None:
        proc = self._procs.get(component)
        return proc.pid if proc else None

    def log_path(self, component: str) -> Path:
        return self.logdir / f"{component}.log"

    def log_tail(self, component: str, lines: int = 40) -> str:
        return _tail(self.log_path(component), lines)

    def all_log_tails(self, lines: int = 40) -> str:
        parts = []
        for c in COMPONENTS:
            if self.log_path(c).exists():
                parts.append(
                    f"----- {c} ({self.log_path(c)}) last {lines} lines -----\n"
                    f"{self.log_tail(c, lines)}"
                )
        return "\n".join(parts)

    # -- clients -----------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        input: str | None = None,  # noqa: A002
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl (v1.20.2) with the admin kubeconfig; text output.

        With check=True a non-zero exit raises ControlPlaneError including stderr.
        """
        argv = [
            str(self.bin / "kubectl"),
            f"--kubeconfig={self.kubeconfig}",
            f"--request-timeout={int(timeout)}s",
            *args,
        ]
        res = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout + 10, env=self._env()
        )
        if check and res.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stderr}{res.stdout}"
            )
        return res

    def kubectl_json(self, *args: str, timeout: float = 60.0) -> Any:
        """``kubectl <args> -o json`` parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def apply(
        self, manifest: str | Mapping[str, Any] | Sequence[Mapping[str, Any]], *args: str
    ) -> str:
        """``kubectl apply -f -`` of YAML text or object(s); returns kubectl's output.  Objects
        go as JSON: PyYAML leaves a string such as ``817e57`` unquoted, which kubectl's YAML
        reads as the number 8.17e59."""
        if isinstance(manifest, str):
            text = manifest
        elif isinstance(manifest, Mapping):
            text = json.dumps(manifest)
        else:
            text = "\n---\n".join(json.dumps(m) for m in manifest)
        return self.kubectl("apply", "-f", "-", *args, input=text).stdout

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        token: str | None = None,
        timeout: float = 30.0,
        ok: Iterable[int] = (200, 201, 202),
    ) -> Any:
        """Raw REST call to the apiserver (admin token). Returns parsed JSON (or text).

        Example: ``cp.api("PATCH", "/api/v1/nodes/n1/status", {...},
        content_type="application/strategic-merge-patch+json")``.
        """
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl) as resp:  # noqa: S310
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
            e.close()
        if status not in tuple(ok):
            raise ControlPlaneError(
                f"{method} {path} -> HTTP {status}: {raw.decode('utf-8', 'replace')[:2000]}"
            )
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    # -- test helpers ------------------------------------------------------------------------

    def create_node(
        self,
        name: str,
        *,
        cpu: str = "4",
        memory: str = "8Gi",
        pods: str = "110",
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, Any]] | None = None,
        extra_resources: Mapping[str, str] | None = None,
    ) -> Any:
        """Create a Node object (no kubelet) with capacity/allocatable and a Ready condition.

        Status is a subresource: it is sent on create and then PATCHed via /status, so it
        sticks whatever the apiserver version does with status on create.
        """
        resources = {"cpu": cpu, "memory": memory, "pods": pods, **(extra_resources or {})}
        node_labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **(labels or {}),
        }
        spec: dict[str, Any] = {}
        if taints:
            spec["taints"] = [dict(t) for t in taints]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "fake node (muster e2e)",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "phase": "Running",
        }
        self.api(
            "POST",
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": node_labels},
                "spec": spec,
                "status": status,
            },
        )
        return self.api(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )

    def get_pod(self, name: str, namespace: str = "default") -> Any:
        return self.api("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")

    def list_pods(self, namespace: str = "default", label_selector: str | None = None) -> list[Any]:
        q = f"?labelSelector={urllib.parse.quote(label_selector)}" if label_selector else ""
        return list(self.api("GET", f"/api/v1/namespaces/{namespace}/pods{q}")["items"])

    def wait_pod_bound(self, name: str, namespace: str = "default", timeout: float = 30.0) -> str:
        """Wait until the pod has spec.nodeName; return it."""

        def bound() -> str | None:
            node: str | None = self.get_pod(name, namespace).get("spec", {}).get("nodeName")
            return node

        return wait_until(bound, timeout, 0.2, f"pod {namespace}/{name} to be bound")

    # -- internals ---------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "KUBECONFIG"))}
        # never let a proxy setting route loopback traffic elsewhere
        for k in ("http_proxy", "https_proxy", "all_proxy"):
            env.pop(k, None)
            env.pop(k.upper(), None)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        return env

    def _spawn(self, name: str, argv: Sequence[str]) -> _Proc:
        proc = _Proc(name, argv, self.log_path(name), self._env(), self.workdir)
        self._procs[name] = proc
        return proc

    def _fail(self, name: str, why: str) -> ControlPlaneError:
        return ControlPlaneError(
            f"{name} {why}; log {self.log_path(name)}:\n{self.log_tail(name, 40)}"
        )

    def _wait(self, name: str, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = self._procs.get(name)
            if proc is None or not proc.alive():
                code = proc.popen.returncode if proc else None
                raise self._fail(name, f"exited (code {code}) before {what}")
            try:
                if check():
                    return
            except Exception:  # noqa: BLE001,S110 - not ready yet
                pass
            if time.monotonic() >= deadline:
                raise self._fail(name, f"not {what} after {timeout:.0f}s")
            time.sleep(0.2)

    def _wait_healthz(self, name: str, port: int, timeout: float) -> None:
        def healthy() -> bool:
            req = urllib.request.Request(f"https://{LOOPBACK}:{port}/healthz")
            with urllib.request.urlopen(req, timeout=2, context=self._ssl) as r:  # noqa: S310
                return bool(r.status == 200)

        self._wait(name, healthy, timeout, "healthy (/healthz)")

    def _openssl(self, *args: str) -> None:
        subprocess.run(
            ["openssl", *args], check=True, capture_output=True, timeout=60, cwd=str(self.workdir)
        )

    def _write_pki_and_configs(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        # apiserver serving cert: self-signed, also used as --root-ca-file for the KCM.
        self._openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "7",
            "-subj",
            "/CN=muster-e2e-apiserver",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc",
            "-keyout",
            str(pki / "apiserver.key"),
            "-out",
            str(pki / "apiserver.crt"),
        )
        # service-account key pair: apiserver verifies/signs, KCM's token controller signs.
        self._openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
        self._openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
        # static tokens: token,user,uid,"group1,group2"
        (pki / "tokens.csv").write_text(
            f'{self.admin_token},muster-e2e-admin,uid-admin,"system:masters"\n'
            # The KCM runs with one identity for all controllers (no
            # --use-service-account-credentials), so it needs broad rights: system:masters.
            f'{self.kcm_token},system:kube-controller-manager,uid-kcm,"system:masters"\n'
            # The scheduler gets exactly the bootstrap RBAC of a real cluster.
            f"{self.scheduler_token},system:kube-scheduler,uid-scheduler\n"
        )
        for path, user, token in (
            (self.kubeconfig, "muster-e2e-admin", self.admin_token),
            (self.kcm_kubeconfig, "system:kube-controller-manager", self.kcm_token),
            (self.scheduler_kubeconfig, "system:kube-scheduler", self.scheduler_token),
        ):
            path.write_text(yaml.safe_dump(self._kubeconfig_doc(user, token), sort_keys=False))
            path.chmod(0o600)

    def _kubeconfig_doc(self, user: str, token: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "muster-e2e",
                    "cluster": {"server": self.server, "insecure-skip-tls-verify": True},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "muster-e2e",
                    "context": {"cluster": "muster-e2e", "user": user, "namespace": "default"},
                }
            ],
            "current-context": "muster-e2e",
        }

    def _start_etcd(self, timeout: float) -> None:
        shm = Path("/dev/shm")
        if self.etcd_in_memory and shm.is_dir() and os.access(shm, os.W_OK):
            # tmpfs: no fsync cost. The owner's pid is in the name so that data dirs left by a
            # test process that was SIGKILLed (stop() never ran) are removed by the next start.
            _remove_stale_etcd_dirs(shm)
            self._etcd_data = Path(tempfile.mkdtemp(prefix=f"muster-etcd-{os.getpid()}-", dir=shm))
        else:
            self._etcd_data = self.workdir / "etcd-data"
            self._etcd_data.mkdir(exist_ok=True)
        self._etcd_data.chmod(0o700)
        client = f"http://{LOOPBACK}:{self.ports['etcd']}"
        peer = f"http://{LOOPBACK}:{self.ports['etcd_peer']}"
        argv = [
            str(self.bin / "etcd"),
            "--name=muster-e2e",
            f"--data-dir={self._etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=muster-e2e={peer}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        self._spawn("etcd", argv)

        def healthy() -> bool:
            with urllib.request.urlopen(f"{client}/health", timeout=2) as r:  # noqa: S310
                return bool(json.loads(r.read()).get("health") == "true")

        self._wait("etcd", healthy, timeout, "healthy (/health)")

    def _start_apiserver(self, timeout: float) -> None:
        pki = self.workdir / "pki"
        argv = [
            str(self.bin / "kube-apiserver"),
            f"--etcd-servers=http://{LOOPBACK}:{self.ports['etcd']}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--anonymous-auth=false",
            # ServiceAccount admission would reject pods until the token controller has made
            # the namespace's default SA and its token secret: a race in fresh namespaces.
            # Pods never run here, so no token is needed. TaintNodesByCondition would put
            # node.kubernetes.io/not-ready:NoSchedule on every new Node and only the node
            # lifecycle controller (disabled, see KCM) would take it off.
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
            # 1.20 requires these for the (GA) TokenRequest API.
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            # The "kubernetes" Endpoints would carry 127.0.0.1, which validation rejects
            # (loopback) -> an error every 10 s in the log. Nothing here needs it.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            # Headroom for load tests (defaults 400/200).
            "--max-requests-inflight=1000",
            "--max-mutating-requests-inflight=500",
            f"--v={max(0, self.verbosity - 2)}",
            *self.extra_apiserver_args,
        ]
        self._spawn("kube-apiserver", argv)

        def ready() -> bool:
            req = urllib.request.Request(f"{self.server}/readyz")
            req.add_header("Authorization", f"Bearer {self.admin_token}")
            with urllib.request.urlopen(req, timeout=3, context=self._ssl) as r:  # noqa: S310
                return bool(r.status == 200)

        self._wait("kube-apiserver", ready, timeout, "ready (/readyz)")
        # The default namespace is created by a post-start controller slightly after /readyz.
        self._wait(
            "kube-apiserver",
            lambda: bool(self.api("GET", "/api/v1/namespaces/default")),
            timeout,
            "serving namespace 'default'",
        )

    def _start_controller_manager(self, timeout: float) -> None:
        pki = self.workdir / "pki"
        port = self.ports["kcm"]
        argv = [
            str(self.bin / "kube-controller-manager"),
            f"--kubeconfig={self.kcm_kubeconfig}",
            # No --authentication/authorization-kubeconfig: delegated auth would look for the
            # extension-apiserver-authentication ConfigMap, which an apiserver without
            # --client-ca-file never writes (an error every few seconds). /healthz is always
            # allowed, which is all we use.
            # 1.20 still opens the insecure port 10252 by default: close it (gone since 1.24).
            *(["--port=0"] if LEGACY else []),
            f"--bind-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'apiserver.crt'}",
            # No kubelets: the node lifecycle controller would mark every node NotReady after
            # 40 s, taint it unreachable and evict its pods. Cloud/IPAM controllers are useless.
            "--controllers=*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle,-service,-route,"
            "-attachdetach,-persistentvolume-expander,-csrsigning,-csrapproving,-csrcleaner",
            "--use-service-account-credentials=false",
            # Jobs/ReplicaSets create pods fast enough for load tests (defaults 20/30).
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--concurrent-gc-syncs=20",
            "--profiling=false",
            f"--v={max(0, self.verbosity - 1)}",
            *self.extra_kcm_args,
        ]
        self._spawn("kube-controller-manager", argv)
        self._wait_healthz("kube-controller-manager", port, timeout)
