"""Every test double of the suite, in one place: fakes of the service's ports (binder, notifier,
evictor, clock), services wired to them with kube-scheduler's part played by hand, and fakes
of the Kubernetes API for the ``kube/`` adapters (recorded list and watch streams, an HTTP
server).

Reuse and extend these rather than defining another fake in a test module.
"""

from __future__ import annotations

import asyncio
import builtins
import heapq
import itertools
import json
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from extender import simulation
from extender.core import cluster, model
from extender.service import ExtenderService
from extender.settings import Settings
from tests import builders

# -- the service's ports --------------------------------------------------------------------


class FakeBinder:
    """Records every bind; raises ``fail`` (if set) instead of binding."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail: Exception | None = None

    async def bind(self, pod: model.Pod, node_name: str) -> None:
        self.calls.append((pod.key, pod.uid, node_name))
        if self.fail is not None:
            raise self.fail


class FlakyBinder(simulation.SimulatedBinder):
    """Binds in memory, except the pods named in ``fail``."""

    def __init__(self, state: cluster.ClusterState, fail: set[str]) -> None:
        super().__init__(state)
        self.fail = fail
        self.calls: list[str] = []

    async def bind(self, pod: model.Pod, node_name: str) -> None:
        self.calls.append(pod.name)
        if pod.name in self.fail:
            raise RuntimeError("conflict")
        await super().bind(pod, node_name)


class RecordingNotifier:
    """Records events (pod, reason, message), nudged pod names and annotations."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.nudged: list[str] = []
        self.annotated: list[tuple[str, dict[str, str]]] = []

    def event(self, pod: model.Pod, *, reason: str, message: str, warning: bool = False) -> None:
        self.events.append((pod.name, reason, message))

    def nudge(self, pods: Sequence[model.Pod]) -> None:
        self.nudged.extend(p.name for p in pods)

    def annotate(self, pod: model.Pod, annotations: Mapping[str, str]) -> None:
        self.annotated.append((pod.name, dict(annotations)))


class RecordingEvictor:
    """Records evicted pod names; with a ``service``, removes the pod from it as the API would."""

    def __init__(self, service: ExtenderService | None = None) -> None:
        self.evicted: list[str] = []
        self.service = service

    async def evict(self, pod: model.Pod, *, reason: str) -> None:
        self.evicted.append(pod.name)
        if self.service is not None:  # the pod goes away, as the API would do
            self.service.remove_pod(pod)


class FakeClock:
    """A clock that stands still until a test moves ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- services wired to the fakes; kube-scheduler's part played by hand ------------------------

RACK = "muster.dev/rack"
"""The topology label of :func:`gang_service`'s nodes: two nodes a rack."""


def gang_service(
    nodes: int = 4, *, timeout: float = 30.0, fail: set[str] | None = None, cpu: str = "4"
) -> tuple[ExtenderService, RecordingNotifier, FlakyBinder]:
    """A synced service on ``nodes`` nodes ``n<i>`` of ``cpu`` cpus in racks of two, gang
    deadline ``timeout``, binding in memory except the pods named in ``fail``; on a manual
    clock (``service.timers``): no deadline passes unless a test advances it."""
    state = cluster.ClusterState()
    notifier = RecordingNotifier()
    binder = FlakyBinder(state, fail or set())
    timers = ManualTimers()
    service = ExtenderService(
        state=state,
        binder=binder,
        notifier=notifier,
        settings=Settings(gang_timeout_seconds=timeout, gang_backoff_base_seconds=60),
        clock=timers.now,
        timers=timers,
    )
    for i in range(nodes):
        state.upsert_node(builders.node(f"n{i}", cpu=cpu, labels={RACK: f"r{i // 2}"}))
    state.mark_synced()
    return service, notifier, binder


def queue_service(
    *, cpu: int = 9, nodes: int = 4
) -> tuple[ExtenderService, RecordingNotifier, RecordingEvictor]:
    """A synced service on ``nodes`` 8-cpu nodes ``n<i>``, on-demand and spot in turn, with
    ``builders.QUEUE_SETUP`` of ``cpu`` on-demand cpus; evictions remove the pod.  On a manual
    clock (``service.timers``, also the lifecycles' wall clock): no timeout passes unless a
    test advances it, and the admission cycle a change asks for runs at the next
    ``advance()`` (or at once, in the next filter call)."""
    state = cluster.ClusterState()
    notifier = RecordingNotifier()
    evictor = RecordingEvictor()
    timers = ManualTimers()
    service = ExtenderService(
        state=state,
        binder=FlakyBinder(state, set()),
        notifier=notifier,
        evictor=evictor,
        settings=Settings(),
        clock=timers.now,
        wall=timers.now,
        timers=timers,
    )
    evictor.service = service
    for i in range(nodes):
        kind = "spot" if i % 2 else "on-demand"
        state.upsert_node(builders.node(f"n{i}", cpu="8", labels={"instance-type": kind}))
    state.mark_synced()
    service.admission.configure(builders.queue_config(cpu))
    return service, notifier, evictor


def names(service: ExtenderService) -> list[str]:
    """The names of the service's nodes, as kube-scheduler offers them."""
    return list(service.state.nodes)


NODES = ["n0", "n1", "n2", "n3"]
"""The nodes :func:`schedule` offers: those of :func:`queue_service`."""


async def schedule(service: ExtenderService, pod: model.Pod) -> str:
    """Filter, then bind to the first passed node; returns the node or the rejection."""
    service.apply_pod(pod)
    outcome = service.filter(pod, NODES)
    if not outcome.passed:
        return next(iter(outcome.unresolvable.values()), "") or next(
            iter(outcome.failed.values()), ""
        )
    node = outcome.passed[0]
    await service.bind(namespace=pod.namespace, name=pod.name, uid=pod.uid, node_name=node)
    return node


# -- the Kubernetes API, for the kube/ adapters -----------------------------------------------

STREAMS = Path(__file__).parent / "kube" / "streams"
"""Recorded API answers: ``*-list.json`` are list responses, ``*.jsonl`` are watch streams, one
event per line; a line ``{"raise": ..., "message": ...}`` makes :func:`replay` raise that
exception at that point, as a dropped connection does."""


def load_list(name: str) -> tuple[list[dict[str, Any]], str]:
    """The items and resourceVersion of a recorded list response."""
    document = json.loads((STREAMS / name).read_text())
    return document["items"], document["metadata"]["resourceVersion"]


def replay(name: str) -> Iterator[dict[str, Any]]:
    """The events of a recorded watch stream, raising where the recording says so."""
    for line in (STREAMS / name).read_text().splitlines():
        event = json.loads(line)
        if "raise" in event:
            raise getattr(builtins, event["raise"])(event["message"])
        yield event


class FakeLister:
    """Answers the n-th list call with the n-th recorded list (the last one once they run out)."""

    def __init__(self, *names: str) -> None:
        self.names = list(names)
        self.calls = 0

    def __call__(self) -> tuple[list[dict[str, Any]], str]:
        name = self.names[min(self.calls, len(self.names) - 1)]
        self.calls += 1
        return load_list(name)


class FakeWatcher:
    """Replays one stream per call; a script entry may also be an exception to raise at once.
    When the script runs out it sets ``stop`` (if given) and streams nothing."""

    def __init__(self, *script: str | BaseException, stop: Any = None) -> None:
        self.script = list(script)
        self.versions: list[str] = []
        self.stop = stop

    def __call__(self, version: str) -> Iterator[dict[str, Any]]:
        self.versions.append(version)
        if not self.script:
            if self.stop is not None:
                self.stop.set()
            return iter(())
        entry = self.script.pop(0)
        if isinstance(entry, BaseException):
            raise entry
        return replay(entry)


class FakeResponse:
    """A urllib3 response streaming ``body`` in chunks of ``size`` bytes."""

    def __init__(self, body: bytes, size: int) -> None:
        self.body, self.size = body, size
        self.released = False

    def stream(self, amt: int, decode_content: bool) -> Iterator[bytes]:
        for start in range(0, len(self.body), self.size):
            yield self.body[start : start + self.size]

    def release_conn(self) -> None:
        self.released = True


TLS = Path(__file__).parent / "kube" / "tls"
"""A self-signed certificate for 127.0.0.1 (valid until 2126) and an unrelated CA."""
CREATED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


@dataclass
class Seen:
    """One request a :class:`FakeAPI` answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    peer: tuple[str, int]


@dataclass
class FakeAPI:
    """Answers every request with ``status`` and ``reply``; records requests and the client
    ports they came from (one port = one TCP connection)."""

    status: int = 201
    reply: dict[str, Any] = field(default_factory=lambda: dict(CREATED))
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    @property
    def connections(self) -> int:
        return len({s.peer for s in self.seen})


def serve(fake: FakeAPI, *, tls: bool = False) -> ThreadingHTTPServer:
    """Serve ``fake`` on a free loopback port (over TLS with :data:`TLS`'s certificate) in a
    daemon thread; sets ``fake.url``. The caller shuts the server down."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle holds the body back
            # until the client's delayed ACK (40 ms) of the headers.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fake.seen.append(
                Seen(
                    self.command,
                    self.path,
                    dict(self.headers),
                    json.loads(raw) if raw else None,
                    self.client_address,
                )
            )
            out = json.dumps(fake.reply).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_POST = do_PATCH = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(TLS / "server.pem", TLS / "server-key.pem")
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    fake.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    return server


# -- the Timers port on a manual clock ------------------------------------------------------

START = 1_000_000.0
"""Where the clock starts: far from zero, like both clocks it stands in for."""


class ManualHandle:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self._cancelled = False
        self.ran = False

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


class ManualTimers:
    def __init__(self, start: float = START) -> None:
        self._now = start
        self._due: list[tuple[float, int, ManualHandle]] = []
        self._order = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def now(self) -> float:
        return self._now

    @property
    def scheduled(self) -> list[ManualHandle]:
        """The callbacks not run and not cancelled, soonest first."""
        return [h for _, _, h in sorted(self._due) if not h.cancelled()]

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        return set(self._tasks)

    def later(self, delay: float, callback: Callable[..., object], *args: Any) -> ManualHandle:
        handle = ManualHandle(self._now + max(0.0, delay), lambda: callback(*args))
        if self.closed:
            handle.cancel()
        else:
            heapq.heappush(self._due, (handle.when, next(self._order), handle))
        return handle

    def soon(self, callback: Callable[..., object], *args: Any) -> ManualHandle:
        return self.later(0.0, callback, *args)

    def spawn(
        self, work: Coroutine[Any, Any, None], *, name: str = ""
    ) -> asyncio.Task[None] | ManualHandle:
        if self.closed:  # as LoopTimers: closed unrun, a cancelled handle instead
            work.close()
            refused = ManualHandle(self._now, lambda: None)
            refused.cancel()
            return refused
        task = asyncio.get_running_loop().create_task(work, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def advance(self, seconds: float = 0.0) -> None:
        """Move the clock ``seconds`` forward, running what falls due on the way (the clock
        reads each callback's due time while it runs)."""
        assert seconds >= 0, "time does not go back"
        until = self._now + seconds
        while self._due and self._due[0][0] <= until:
            when, _, handle = heapq.heappop(self._due)
            if handle.cancelled():
                continue
            self._now = max(self._now, when)
            handle.ran = True
            handle.callback()
        self._now = until

    def start(self) -> None:
        """Nothing to hand over: callbacks run when the clock is advanced."""

    def close(self) -> None:
        self.closed = True
        for _, _, handle in self._due:
            handle.cancel()
        self._due.clear()
        for task in self._tasks:
            task.cancel()


async def settle(rounds: int = 20) -> None:
    """Let the loop run what is ready (tasks, their callbacks) without moving the clock."""
    for _ in range(rounds):
        await asyncio.sleep(0)
