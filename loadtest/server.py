"""The extender under test: started as a subprocess on the simulated cluster, or a running one
(``--target``), and what its ``/metrics`` and ``/proc`` say about it."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_target(url: str) -> str:
    """Only loopback targets (127.0.0.0/8, localhost, ::1) over http(s)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https"):
        raise SystemExit(f"--target {url}: must be an http:// or https:// URL")
    if not (host in LOOPBACK_HOSTS or host.startswith("127.")):
        raise SystemExit(f"--target {url}: only loopback addresses are load-tested")
    return url.rstrip("/")


def serve_command(args: list[str]) -> list[str]:
    """``python -m extender serve ...`` with this interpreter (the venv's muster)."""
    return [sys.executable, "-m", "extender", "serve", *args]


@dataclass
class Extender:
    """``muster serve`` in a subprocess on loopback; ``url`` once ready."""

    simulate_nodes: int | None = None
    kubeconfig: str | None = None
    cache: bool = True
    queues_file: Path | None = None
    """``--queues``: Kueue queue objects for the server."""
    cpu: int | None = None
    """Pin the server to this CPU (sched_setaffinity)."""
    ready_timeout: float = 180.0
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> Extender:
        self.port = free_port()
        args = ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        if self.simulate_nodes is not None:
            args += ["--simulate-nodes", str(self.simulate_nodes)]
        if self.kubeconfig is not None:
            args += ["--kubeconfig", self.kubeconfig]
        if not self.cache:
            args.append("--no-feasibility-cache")
        if self.queues_file is not None:
            args += ["--queues", str(self.queues_file)]
        env = {
            k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                serve_command(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        if self.cpu is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.process.pid, {self.cpu})
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"extender exited ({self.process.returncode}):\n{tail}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"extender not ready after {self.ready_timeout:.0f}s")
            time.sleep(0.1)

    @staticmethod
    def peak_rss_mb_of(pid: int) -> float | None:
        """VmHWM (peak resident set) of a process, MiB."""
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        return int(match.group(1)) / 1024 if match else None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> Extender:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- /metrics -------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value} (labels as exposed)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        match = _SAMPLE.match(line)
        if match:
            try:
                samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
            except ValueError:
                continue
    return samples


def scrape(url: str, timeout: float = 10.0) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=timeout) as r:  # noqa: S310
            return parse_metrics(r.read().decode("utf-8", "replace"))
    except (OSError, urllib.error.URLError):
        return {}


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


CACHE_LOOKUPS = "muster_feasibility_cache_lookups_total"


def cache_figures(after: dict[str, float], before: dict[str, float]) -> dict[str, float | None]:
    looks = {
        r: delta(after, before, f'{CACHE_LOOKUPS}{{result="{r}"}}')
        for r in ("hit", "partial", "miss")
    }
    total = sum(looks.values())
    return {
        "cache_lookups": total,
        "cache_hits": looks["hit"],
        "cache_partial_hits": looks["partial"],
        "cache_misses": looks["miss"],
        "cache_hit_ratio": looks["hit"] / total if total else None,
        "cache_reuse_ratio": (looks["hit"] + looks["partial"]) / total if total else None,
        "cache_rechecked_nodes": delta(
            after, before, "muster_feasibility_cache_rechecked_nodes_total"
        ),
    }


def histogram_mean_ms(after: dict[str, float], before: dict[str, float], name: str) -> float | None:
    """Mean of a histogram over the run, ms; ``name`` may carry labels: ``h{verb="x"}``."""
    base, brace, labels = name.partition("{")
    count = delta(after, before, f"{base}_count{brace}{labels}")
    return delta(after, before, f"{base}_sum{brace}{labels}") / count * 1e3 if count else None
