"""List+watch of nodes, pods, namespaces and Workloads, feeding the cluster view.

One ``Reflector`` per resource runs in a daemon thread: it lists, hands the whole list to the
loop, then watches from the list's resourceVersion.  A watch that ends (server timeout) resumes
from the last version seen; a 410 Gone (version too old, as after an API server restart) triggers
a relist, which replaces the view's objects without dropping pods the extender is binding; any
other failure backs off (capped, jittered) and retries, and relists after a few failures in a row
with no progress.  Nothing ends a reflector but ``stopped``: an object that cannot be converted is
skipped and counted, never a reason to retry the same event forever.

Each reflector reports its health (``problem``): ``/readyz`` is 503 while a watch has not listed
yet or has been failing for more than ``FAILING_GRACE_SECONDS``.  Objects are converted to domain
objects in the thread and applied on the loop, so the view is only ever mutated by the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import orjson
from kubernetes import client

from extender import metrics
from extender.core import gang, model, objects
from extender.kube.client import Connection

log = logging.getLogger(__name__)

T = TypeVar("T")

WATCH_TIMEOUT_SECONDS = 240
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0
"""Retries after an API server outage come at most this far apart, so the view is current again
within seconds of the server's return (three watches retrying every 5 s cost it nothing)."""
RELIST_AFTER_FAILURES = 3
"""Watch failures in a row, with no event between them, after which the reflector relists
instead of resuming: whatever is wrong with resuming from that version, a list starts afresh."""
FAILING_GRACE_SECONDS = 3.0
"""How long a watch may fail before ``/readyz`` says so (a dropped connection that resumes at
once is no outage)."""
THREAD_CHECK_SECONDS = 1.0
"""How often the source checks that its watch threads still run (they end only when stopped;
one that ended anyway makes the source fail, and its supervisor start it anew)."""
OPENED = "OPENED"
"""The event type a watcher yields when the API server accepted the watch (not from the API)."""

Lister = Callable[[], tuple[list[dict[str, Any]], str]]
"""Returns every object (raw dicts) and the list's resourceVersion."""

Watcher = Callable[[str], Iterable[dict[str, Any]]]
"""Streams raw watch events ``{"type", "object"}`` from a resourceVersion; may raise."""


class Expired(Exception):
    """The watch's resourceVersion is too old (HTTP 410 Gone): relist."""


@dataclass(frozen=True)
class Handlers(Generic[T]):
    """Where converted objects go (called on the event loop)."""

    replace: Callable[[list[T]], None]
    upsert: Callable[[T], None]
    delete: Callable[[T], None]


class Reflector(Generic[T]):
    def __init__(
        self,
        *,
        resource: str,
        lister: Lister,
        watcher: Watcher,
        convert: Callable[[object], T],
        handlers: Handlers[T],
        loop: asyncio.AbstractEventLoop,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float], float] = lambda delay: delay * random.uniform(0.8, 1.0),
    ) -> None:
        self.resource = resource
        self.lister = lister
        self.watcher = watcher
        self.convert = convert
        self.handlers = handlers
        self.loop = loop
        self.listed = asyncio.Event()
        self.stopped = threading.Event()
        self.sleep = sleep or self.stopped.wait
        self.clock = clock
        self.jitter = jitter
        self.version = ""
        self.thread: threading.Thread | None = None
        self.failing_since: float | None = None
        """When the current run of failures began (None while the watch works)."""
        self.last_error = ""

    def start(self) -> threading.Thread:
        self.thread = threading.Thread(target=self.run, name=f"watch-{self.resource}", daemon=True)
        self.thread.start()
        return self.thread

    @property
    def ended(self) -> bool:
        """The thread ended although nobody stopped it (``run`` never returns otherwise)."""
        thread = self.thread
        return thread is not None and not thread.is_alive() and not self.stopped.is_set()

    def problem(self) -> str:
        """Why this watch does not keep the view current now, or "" while it does."""
        if self.ended:
            return f"{self.resource}: watch thread ended"
        if not self.listed.is_set():
            return f"{self.resource}: not listed yet"
        since = self.failing_since
        failing = self.clock() - since if since is not None else 0.0
        if failing > FAILING_GRACE_SECONDS:
            return f"{self.resource}: watch failing for {failing:.0f}s: {self.last_error}"
        return ""

    def _converted(self, raw: object) -> T | None:
        try:
            return self.convert(raw)
        except Exception as exc:  # one bad object must not stop the watch, whatever it is
            metrics.watch_skipped.labels(self.resource).inc()
            log.warning("ignoring malformed %s (%s: %s)", self.resource, type(exc).__name__, exc)
            return None

    def _apply(self, fn: Callable[..., None], *args: Any) -> None:
        self.loop.call_soon_threadsafe(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """Apply a change on the loop; a failure (a bug, or an object the view cannot take)
        is logged and counted as a skipped object, and the watch goes on."""
        try:
            fn(*args)
        except Exception:
            metrics.watch_skipped.labels(self.resource).inc()
            log.exception("applying a %s change failed; skipped", self.resource)

    def _working(self) -> None:
        self.failing_since = None

    def relist(self) -> None:
        items, self.version = self.lister()
        converted = [obj for obj in map(self._converted, items) if obj is not None]
        self._apply(self.handlers.replace, converted)
        self._apply(self.listed.set)
        self._working()

    def watch_once(self) -> None:
        """Follow one watch stream until it ends; raise ``Expired`` on 410."""
        for event in self.watcher(self.version):
            kind = event.get("type")
            raw = event.get("object")
            if not isinstance(raw, dict):
                raw = {}
            if kind == OPENED:
                self._working()
                continue
            if kind == "ERROR":
                if raw.get("code") == 410:
                    raise Expired(raw.get("message", "resource version too old"))
                raise RuntimeError(f"watch error: {raw.get('message', raw)}")
            self._working()
            metadata = raw.get("metadata")
            version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
            if version and isinstance(version, str):
                self.version = version
            if kind == "BOOKMARK":
                continue
            obj = self._converted(raw)
            if obj is None:
                continue
            metrics.watch_events.labels(self.resource, str(kind)).inc()
            if kind == "DELETED":
                self._apply(self.handlers.delete, obj)
            else:
                self._apply(self.handlers.upsert, obj)

    def step(self) -> None:
        """One round: relist if needed, then watch until the stream ends."""
        if not self.version:
            self.relist()
        self.watch_once()

    def _failed(self, exc: Exception) -> None:
        if self.failing_since is None:
            self.failing_since = self.clock()
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    def run(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        failures = 0
        while not self.stopped.is_set():
            try:
                self.step()
                backoff, failures = FIRST_BACKOFF_SECONDS, 0
            except Expired as exc:
                log.info("%s watch expired (%s); relisting", self.resource, exc)
                metrics.watch_restarts.labels(self.resource, "expired").inc()
                self.version = ""
            except Exception as exc:
                if self.stopped.is_set():
                    return
                progressed = self.failing_since is None
                self._failed(exc)
                failures = 1 if progressed else failures + 1
                if failures >= RELIST_AFTER_FAILURES:
                    self.version = ""
                log.warning(
                    "%s watch failed (%s); retrying in %.1fs%s",
                    self.resource,
                    self.last_error,
                    backoff,
                    " with a relist" if not self.version else "",
                )
                metrics.watch_restarts.labels(self.resource, "error").inc()
                self.sleep(self.jitter(backoff))
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


# -- the API calls --------------------------------------------------------------------------


def _api_lister(list_fn: Callable[..., Any]) -> Lister:
    def lister() -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            response = list_fn(limit=500, _continue=token, _preload_content=False)
            page = orjson.loads(response.data)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, meta.get("resourceVersion", "")

    return lister


def _api_watcher(list_fn: Callable[..., Any]) -> Watcher:
    """Watch events decoded with orjson, line by line as they arrive.

    Not kubernetes-client's ``Watch.stream``: with ``deserialize=False`` it raises KeyError on
    an ERROR event (client 37.0.2), so the 410 Gone after an API server restart looked like a
    broken connection and the watch retried the expired version forever."""

    def watcher(version: str) -> Iterator[dict[str, Any]]:
        try:
            response = list_fn(
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_TIMEOUT_SECONDS,
                _request_timeout=WATCH_TIMEOUT_SECONDS + 30,
                _preload_content=False,
            )
        except client.ApiException as exc:
            if exc.status == 410:
                raise Expired(str(exc.reason)) from None
            raise
        try:
            yield {"type": OPENED}
            for line in _lines(response.stream(2**16, decode_content=True)):
                event = orjson.loads(line)
                if not isinstance(event, dict):
                    raise ValueError(f"watch event is not an object: {line[:100]!r}")
                yield event
        finally:
            response.release_conn()

    return watcher


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Whole lines out of chunks that may split or join them (blank lines skipped).  A line
    cut off by the end of the stream is dropped: the watch resumes before it."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line for line in lines if line.strip())


def _reflector(
    resource: str,
    list_fn: Callable[..., Any],
    convert: Callable[[object], T],
    handlers: Handlers[T],
    loop: asyncio.AbstractEventLoop,
) -> Reflector[T]:
    """A reflector over one API list call (its watch is the same call with ``watch=true``)."""
    return Reflector(
        resource=resource,
        lister=_api_lister(list_fn),
        watcher=_api_watcher(list_fn),
        convert=convert,
        handlers=handlers,
        loop=loop,
    )


class ClusterFeed(Protocol):
    """Where the reflectors deliver (the service): the whole list after a relist, then changes."""

    def replace_nodes(self, nodes: Sequence[model.Node]) -> None: ...
    def upsert_node(self, node: model.Node) -> None: ...
    def delete_node(self, name: str) -> None: ...
    def replace_pods(self, pods: Sequence[model.Pod]) -> None: ...
    def apply_pod(self, pod: model.Pod) -> None: ...
    def remove_pod(self, pod: model.Pod) -> None: ...
    def replace_namespaces(self, namespaces: Sequence[model.Namespace]) -> None: ...
    def apply_namespace(self, namespace: model.Namespace) -> None: ...
    def remove_namespace(self, namespace: model.Namespace) -> None: ...
    def replace_workloads(self, workloads: Sequence[gang.Workload]) -> None: ...
    def apply_workload(self, workload: gang.Workload) -> None: ...
    def remove_workload(self, workload: gang.Workload) -> None: ...
    def mark_synced(self) -> None: ...


WORKLOAD_APIS = (("scheduling.k8s.io", "v1alpha1"), ("muster.dev", "v1alpha1"))
"""Where Workload objects are read from: the upstream API when served, else muster's CRD."""


def served_workload_api(connection: Connection) -> tuple[str, str] | None:
    """The first of ``WORKLOAD_APIS`` that the API server serves, or None."""
    groups = client.ApisApi(connection.api).get_api_versions()
    served = {(g.name, v.version) for g in groups.groups or [] for v in g.versions or []}
    return next((api for api in WORKLOAD_APIS if api in served), None)


class KubeSource:
    """Keeps the service's cluster view in sync with the API server through reflectors."""

    def __init__(self, connection: Connection, feed: ClusterFeed) -> None:
        self.connection = connection
        self.feed = feed
        self.reflectors: list[Reflector[Any]] = []

    def problem(self) -> str:
        """Why the view is not being kept current now ("" while every watch works)."""
        if not self.reflectors:
            return "cluster watches not started"
        return "; ".join(p for r in self.reflectors if (p := r.problem()))

    def _workloads(self, loop: asyncio.AbstractEventLoop) -> Reflector[gang.Workload] | None:
        try:
            api = served_workload_api(self.connection)
        except Exception as exc:
            log.warning("cannot discover the Workload API (%s): gangs use annotations only", exc)
            return None
        if api is None:
            log.info(
                "no Workload API served (install deploy/workload-crd.yaml): "
                "gang minCount comes from the muster.dev/min-count annotation"
            )
            return None
        group, version = api
        custom = client.CustomObjectsApi(self.connection.api)
        list_fn = functools.partial(custom.list_cluster_custom_object, group, version, "workloads")
        feed = self.feed
        log.info("reading Workload objects from %s/%s", group, version)
        return _reflector(
            "workloads",
            list_fn,
            objects.to_workload,
            Handlers(feed.replace_workloads, feed.apply_workload, feed.remove_workload),
            loop,
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        core = self.connection.core
        feed = self.feed
        nodes = _reflector(
            "nodes",
            core.list_node,
            objects.to_node,
            Handlers(
                feed.replace_nodes, feed.upsert_node, lambda node: feed.delete_node(node.name)
            ),
            loop,
        )
        pods = _reflector(
            "pods",
            core.list_pod_for_all_namespaces,
            objects.to_pod,
            Handlers(feed.replace_pods, feed.apply_pod, feed.remove_pod),
            loop,
        )
        namespaces = _reflector(
            "namespaces",
            core.list_namespace,
            objects.to_namespace,
            Handlers(feed.replace_namespaces, feed.apply_namespace, feed.remove_namespace),
            loop,
        )
        workloads = await loop.run_in_executor(self.connection.executor, self._workloads, loop)
        reflectors = [r for r in (nodes, namespaces, workloads, pods) if r is not None]
        self.reflectors = reflectors
        try:
            # Nodes, namespaces and workloads first, so the pods listed next find their nodes,
            # their namespace's labels and their gangs.
            for reflector in reflectors:
                reflector.start()
                await reflector.listed.wait()
            feed.mark_synced()
            log.info("cluster view synced")
            while not any(reflector.ended for reflector in reflectors):
                await asyncio.sleep(THREAD_CHECK_SECONDS)
            ended = ", ".join(r.resource for r in reflectors if r.ended)
            raise RuntimeError(f"watch thread(s) ended: {ended}")  # the supervisor starts anew
        finally:
            for reflector in reflectors:
                reflector.stopped.set()
