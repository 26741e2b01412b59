"""Fuzzing the four verbs in process: whatever the body, the answer is HTTP 200 or 400 with a
reply of the verb's JSON type, never a traceback, and the server stays healthy.

Bodies are near-valid extender messages (pods as kube-scheduler sends them, the captured
1.20.2 pod among them, with fields mutated into wrong types, huge, negative or fractional
numbers, bad quantities, deep nesting, odd unicode, missing keys and nulls), raw bytes, and
bodies with a Content-Encoding that does or does not match.  The app serves a simulated
cluster with queues configured and a short gang deadline (a gang member's bind waits for its
group), through aiohttp's test client.

About 10,200 bodies in all (``EXAMPLES``), derandomized and without an example database, so
every run sends the same ones (about 30 s).  To fuzz further locally, ``MUSTER_FUZZ_SCALE=10``
sends ten times as many and ``MUSTER_FUZZ_RANDOM=1`` different ones on every run.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import os
import random
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from aiohttp import ClientTimeout
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender import simulation
from extender.core import cluster, kueue, objects, scoring
from extender.service import ExtenderService
from extender.settings import Settings
from extender.web import middlewares
from extender.web.app import make_app
from tests import builders

SCALE = float(os.environ.get("MUSTER_FUZZ_SCALE", "1"))
EXAMPLES = {
    "filter": 2500,
    "prioritize": 2000,
    "bind": 1200,
    "preempt": 1500,
    "raw": 2000,
    "encoded": 1000,
}
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=not os.environ.get("MUSTER_FUZZ_RANDOM"),
    database=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)


def examples(kind: str) -> settings:
    return settings(FUZZ, max_examples=max(1, int(EXAMPLES[kind] * SCALE)))


# -- the server ---------------------------------------------------------------------------------

NODES = [f"node-{i:05d}" for i in range(6)]
RESERVED = "reserved-node"
"""A node no fuzzed body names: nothing is ever bound there, so a small pod always fits."""
FILTER_RESULT_KEYS = set(builders.load_payload("protocol-extender-filter-result.json"))
CAPTURED_POD = builders.load_payload("scheduler-1.20.2-filter.json")["Pod"]
# Not builders.QUEUE_SETUP: one flavor without node labels, so that admitted pods fit the generated
# nodes (which have no instance-type label), and a pods quota, so that pod counts are charged too.
QUEUES = """\
apiVersion: kueue.x-k8s.io/v1beta1
kind: ResourceFlavor
metadata: {name: default-flavor}
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: ClusterQueue
metadata: {name: cluster-queue}
spec:
  namespaceSelector: {}
  preemption: {withinClusterQueue: LowerPriority}
  resourceGroups:
  - coveredResources: [cpu, memory, pods]
    flavors:
    - name: default-flavor
      resources: [{name: cpu, nominalQuota: 8}, {name: memory, nominalQuota: 64Gi},
                  {name: pods, nominalQuota: 50}]
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: LocalQueue
metadata: {namespace: default, name: user-queue}
spec: {clusterQueue: cluster-queue}
---
apiVersion: kueue.x-k8s.io/v1beta1
kind: WorkloadPriorityClass
metadata: {name: urgent}
value: 1000
"""


@dataclass
class Server:
    loop: asyncio.AbstractEventLoop
    client: TestClient[Any, Any]

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        async def exchange() -> Reply:
            response = await self.client.post(
                path, data=body, headers=headers or {}, timeout=ClientTimeout(total=30)
            )
            return Reply(response.status, response.content_type, await response.read())

        return self.loop.run_until_complete(exchange())

    def get(self, path: str) -> int:
        async def exchange() -> int:
            response = await self.client.get(path)
            await response.read()
            return response.status

        return self.loop.run_until_complete(exchange())


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One app for the module, on its own event loop (hypothesis drives sync tests)."""
    state = cluster.ClusterState()
    evictor = simulation.SimulatedEvictor()
    service = ExtenderService(
        state=state,
        binder=simulation.SimulatedBinder(state),
        evictor=evictor,
        settings=Settings(gang_timeout_seconds=0.05),
    )
    evictor.feed = service
    nodes = simulation.generated_nodes(len(NODES))
    nodes[5] = objects.to_node(
        builders.make_node(NODES[5], taints=[builders.taint("dedicated", "db")])
    )
    nodes.append(objects.to_node(builders.make_node(RESERVED, cpu="64", memory="256Gi")))
    simulation.SimulatedCluster(nodes).populate(service)
    service.admission.configure(kueue.parse(yaml.safe_load_all(QUEUES)))

    async def start() -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(make_app(service)))
        await client.start_server()
        return client

    loop = asyncio.new_event_loop()
    try:
        client = loop.run_until_complete(start())
        try:
            yield Server(loop, client)
        finally:
            loop.run_until_complete(client.close())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# -- what every answer must be ------------------------------------------------------------------


def check(verb: str, reply: Reply, offered: object = None, *, encoded: bool = False) -> None:
    """HTTP 200 with the verb's reply, or 400 with a one-line ``{"Error"}``; no traceback.

    ``encoded``: the body had a Content-Encoding, which aiohttp may refuse itself with a
    plain-text 400 before the app sees the request (``br`` without Brotli installed, or a
    deflate stream that fails as it arrives)."""
    assert reply.status in (200, 400), reply
    assert b"Traceback" not in reply.body and b'File "' not in reply.body, reply
    if encoded and reply.status == 400 and reply.content_type == "text/plain":
        assert len(reply.body) < 1000, reply
        return
    assert reply.content_type == "application/json", reply
    answer = json.loads(reply.body)
    if reply.status == 400:
        assert isinstance(answer, dict) and set(answer) == {"Error"}, reply
        message = answer["Error"]
        assert isinstance(message, str) and message, reply
        assert "\n" not in message and len(message) <= middlewares.MAX_MESSAGE, reply
        assert "internal error" not in message, reply
        return
    names = offered if isinstance(offered, list) else None
    if verb == "filter":
        check_filter_result(answer, names)
    elif verb == "prioritize":
        check_host_priorities(answer, names)
    elif verb == "bind":
        assert isinstance(answer, dict) and set(answer) == {"Error"}, reply
        assert isinstance(answer["Error"], str)
    elif verb == "preempt":
        check_preemption_result(answer)


def check_filter_result(answer: Any, names: list[Any] | None) -> None:
    assert isinstance(answer, dict) and set(answer) == FILTER_RESULT_KEYS, answer
    assert answer["Error"] == ""
    passed = answer["NodeNames"] if answer["Nodes"] is None else answer["Nodes"]["items"]
    assert isinstance(passed, list)
    failed = answer["FailedNodes"] or {}
    unresolvable = answer["FailedAndUnresolvableNodes"] or {}
    assert all(isinstance(v, str) and v for v in (*failed.values(), *unresolvable.values()))
    if names is not None and answer["Nodes"] is None:
        # Every node offered is passed or rejected with a reason, exactly once.
        assert set(passed) | set(failed) | set(unresolvable) == set(names), answer
        assert not (set(passed) & set(failed)) and not (set(passed) & set(unresolvable))


def check_host_priorities(answer: Any, names: list[Any] | None) -> None:
    assert isinstance(answer, list), answer
    for entry in answer:
        assert isinstance(entry, dict) and set(entry) == {"Host", "Score"}, entry
        assert type(entry["Score"]) is int and 0 <= entry["Score"] <= scoring.MAX_SCORE, entry
        assert names is None or entry["Host"] in names, entry


def check_preemption_result(answer: Any) -> None:
    assert isinstance(answer, dict) and set(answer) == {"NodeNameToMetaVictims"}, answer
    for victims in answer["NodeNameToMetaVictims"].values():
        assert set(victims) == {"Pods", "NumPDBViolations"}, victims
        assert all(set(pod) == {"UID"} for pod in victims["Pods"]), victims
        assert type(victims["NumPDBViolations"]) is int, victims


def check_healthy(server: Server) -> None:
    """``/healthz`` answers, and a plain pod still passes the node nothing was bound to."""
    assert server.get("/healthz") == 200
    pod = builders.make_pod("after-the-fuzz", uid="after-the-fuzz", cpu="100m", memory="64Mi")
    reply = server.post("/filter", encode(builders.extender_args(pod, [RESERVED])))
    assert reply.status == 200, reply
    assert json.loads(reply.body)["NodeNames"] == [RESERVED], reply


# -- bodies -------------------------------------------------------------------------------------

_DEEP = re.compile(rb'"~~deep-(\d+)~~"')


def deep(levels: int) -> str:
    """A placeholder that ``encode`` turns into ``levels`` nested arrays."""
    return f"~~deep-{levels}~~"


def encode(document: object, *, ascii_only: bool = True) -> bytes:
    """JSON as Python writes it (NaN, Infinity and big integers included; lone surrogates
    escaped, or written raw and so not UTF-8), with the deep-nesting placeholders expanded."""
    text = json.dumps(document, ensure_ascii=ascii_only)
    data = text.encode("utf-8", "surrogatepass")
    return _DEEP.sub(lambda m: b"[" * int(m[1]) + b"]" * int(m[1]), data)


# Hypothesis draws the seed and the shape of each message; a seeded generator fills in the
# fields.  Drawing every field through hypothesis costs microseconds a draw and a message needs
# hundreds (measured: 4-8 ms a message, against about 0.1 ms here), which would put 10,000
# messages well over a minute.
HUGE_DIGITS = ["9" * 300, "9" * 4400, "1" * 20_000]
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, -0.0, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30,
    1e308, -1e308, float("nan"), float("inf"), float("-inf"),
    "", "\x00", "\ud800", "\udfff\ud800", "\U0001f600", "\u200b", "a\nb", "\\", '"', "null",
    [], {}, [1, "a", None], [[[]]], {"a": 1}, {"": None}, *HUGE_DIGITS,
    deep(100), deep(254), deep(255), deep(300), deep(1000), deep(1023), deep(1030),
]  # fmt: skip
ODD_NUMBERS: list[Any] = [0, -1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, 0.5, -1e-300]
QUANTITY_TEXTS = [
    "1", "500m", "2Gi", "1.5", ".5", "1.", "1e3", "1E", "1E+3", "100n", "250u", "0", "8Ei", "+2",
    "007", " 2 ", "-100", "-9e999999", "1e999999", "-1m", "-0", "1e2147483647", "1e2147483648",
    "1e-2147483648", "1e-99999", "abc", "", "1Kb", "1K", "NaN", "Infinity", "1e", "1e+", "1.2.3",
    "1 Gi", "\uff11", "Gi", ".", "+", "--1", "1Ki5", "1ee5", *HUGE_DIGITS,
    "-" + "9" * 4400 + "e999999", "0." + "0" * 20_000 + "1",
]  # fmt: skip
SIGNS = ["", "", "", "-", "+"]
FRACTIONS = ["", "", ".", ".5", ".000000001", ".123456789012"]
SUFFIXES = ["", "", "m", "k", "Ki", "Mi", "Gi", "Ei", "n", "E", "e3", "e-3", "E+18", "e999999"]
RESOURCE_NAMES = ["cpu", "cpu", "memory", "memory", "pods", "ephemeral-storage", "nvidia.com/gpu"]
LABEL_KEYS = [
    "app",
    "zone",
    simulation.ZONE_LABEL,
    simulation.RACK_LABEL,
    "muster.dev/workload",
    "muster.dev/pod-group",
    "muster.dev/replica-key",
    "scheduling.x-k8s.io/pod-group",
    "kueue.x-k8s.io/queue-name",
    "kueue.x-k8s.io/priority-class",
    "kueue.x-k8s.io/pod-group-name",
    "kueue.x-k8s.io/max-exec-time-seconds",
]
ANNOTATION_KEYS = [
    "muster.dev/min-count",
    "muster.dev/gang-timeout-seconds",
    "muster.dev/active",
    "muster.dev/requeue-count",
    "kueue.x-k8s.io/pod-group-total-count",
    "kueue.x-k8s.io/elastic-job",
    "kueue.x-k8s.io/job-min-parallelism",
    "scheduling.k8s.io/group-name",
    "example.com/note",
]
LABEL_VALUES = [
    "", "a", "train", "user-queue", "urgent", "2", "0", "-1", "+3", "true", "false", "nan",
    "1e999", "inf", "-inf", "9" * 30, "0.05", "300", "zone-a", "rack-0000", "\u00e9t\u00e9",
    "workers", "main", "0x10", " 2", *HUGE_DIGITS,
]  # fmt: skip
POD_NAMES = ["p", "worker-0", "worker-1", "train-0", "train-1", "x" * 300, "\u00e9"]
NODE_NAMES = [*NODES, *NODES, "unknown-node", "Node-1", "", "node-00000 ", "\ud800"]
TIMESTAMPS = [
    "2025-01-01T00:00:00Z", "0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59+00:00",
    "yesterday", "", "2025-13-45T99:00:00Z", "2025-01-01", "2025-01-01T00:00:00.123456789Z",
]  # fmt: skip
OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Near", ""]
SHAPES = ["plain", "captured", "gang", "queued", "affinity", "init"]
FOLDS = ["go", "go", "lower", "upper"]


class Maker:
    """Near-valid extender messages from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, values: list[Any]) -> Any:
        value = self.rng.choice(values)
        return copy.deepcopy(value) if isinstance(value, dict | list) else value

    def chance(self, p: float = 0.5) -> bool:
        return self.rng.random() < p

    def text(self) -> str:
        """A short string of any code points, surrogates included."""
        top = self.pick([0x7F, 0xFF, 0xFFFF, 0x10FFFF])
        return "".join(chr(self.rng.randint(0, top)) for _ in range(self.rng.randint(0, 6)))

    def number(self) -> Any:
        if self.chance(0.3):
            return self.pick(ODD_NUMBERS)
        return self.rng.randint(-(2**70), 2**70) >> self.rng.randint(0, 70)

    def quantity(self) -> Any:
        roll = self.rng.random()
        if roll < 0.4:
            return self.pick(QUANTITY_TEXTS)
        if roll < 0.9:
            whole = self.rng.randint(0, 10**20) >> self.rng.randint(0, 66)
            return f"{self.pick(SIGNS)}{whole}{self.pick(FRACTIONS)}{self.pick(SUFFIXES)}"
        return self.number()

    def weird(self) -> Any:
        kind = self.rng.randrange(5)
        if kind == 0:
            return self.number()
        if kind == 1:
            return self.quantity()
        if kind == 2:
            return self.text()
        return self.pick(ODD_VALUES)

    def resources(self) -> dict[str, Any]:
        return {self.pick(RESOURCE_NAMES): self.quantity() for _ in range(self.rng.randint(0, 3))}

    def labels(self, keys: list[str], most: int) -> dict[str, Any]:
        return {self.pick(keys): self.pick(LABEL_VALUES) for _ in range(self.rng.randint(0, most))}

    def requirement(self) -> dict[str, Any]:
        values = [self.pick(LABEL_VALUES + QUANTITY_TEXTS) for _ in range(self.rng.randint(0, 2))]
        return builders.requirement(self.pick(LABEL_KEYS), self.pick(OPERATORS), *values)

    def pod(self, shape: str) -> dict[str, Any]:
        """A valid pod of one of the shapes kube-scheduler sends, with drawn values."""
        if shape == "captured":
            return copy.deepcopy(CAPTURED_POD)
        labels, annotations = self.labels(LABEL_KEYS, 3), self.labels(ANNOTATION_KEYS, 2)
        kwargs: dict[str, Any] = {
            "uid": f"uid-{self.rng.randint(0, 40)}",
            # The service reuses the conversion of a (uid, resourceVersion) it has seen.
            "resource_version": str(self.rng.randint(1, 10**9)),
            "created": self.pick(TIMESTAMPS),
            "requests": self.resources(),
            "limits": self.resources(),
        }
        if shape == "gang":
            labels["muster.dev/workload"] = self.pick(["train", "infer"])
            annotations["muster.dev/min-count"] = self.pick(LABEL_VALUES)
            annotations["muster.dev/gang-timeout-seconds"] = self.pick(LABEL_VALUES)
        elif shape == "queued":
            labels["kueue.x-k8s.io/queue-name"] = self.pick(["user-queue", "nope"])
            labels["kueue.x-k8s.io/priority-class"] = self.pick(LABEL_VALUES)
            kwargs["priority"] = self.number()
        elif shape == "affinity":
            requirements = [self.requirement() for _ in range(self.rng.randint(1, 2))]
            kwargs["affinity"] = builders.node_affinity(builders.term(*requirements))
            kwargs["node_selector"] = self.labels(LABEL_KEYS, 1)
            kwargs["tolerations"] = [builders.toleration("dedicated", value="db")]
        elif shape == "init":
            sidecar = builders.make_container("sidecar", requests=self.resources())
            sidecar["restartPolicy"] = self.pick(["Always", "Never", 3])
            init = builders.make_container("init", requests=self.resources(), host_port=80)
            kwargs["init_containers"] = [sidecar, init]
            kwargs["overhead"] = self.resources()
            kwargs["pod_requests"] = self.resources()
        pod = builders.make_pod(
            self.pick(POD_NAMES), labels=labels, annotations=annotations, **kwargs
        )
        if self.chance():
            pod["status"] = {
                "phase": "Pending",
                "conditions": [{"type": "Ready", "status": "True"}],
            }
            pod["metadata"]["ownerReferences"] = [
                {"kind": "Job", "name": "train", "controller": True}
            ]
        return pod

    def mutate(self, document: Any, times: int) -> Any:
        """``document`` with ``times`` fields replaced by something odd, nulled or removed."""
        for _ in range(times):
            slots = _slots(document, [])
            if not slots:
                break
            container, key = self.rng.choice(slots)
            action = self.rng.random()
            if action < 0.2 and isinstance(container, dict):
                del container[key]
            elif action < 0.35:
                container[key] = None
            else:
                container[key] = self.weird()
        return document

    def mutated_pod(self, shape: str, times: int) -> dict[str, Any]:
        return self.mutate(self.pod(shape), times)  # type: ignore[no-any-return]


def _slots(value: object, found: list[tuple[Any, Any]], depth: int = 0) -> list[tuple[Any, Any]]:
    """Every (container, key or index) under ``value``: the places a mutation can hit."""
    if depth > 12 or not isinstance(value, dict | list):
        return found
    for key, child in value.items() if isinstance(value, dict) else enumerate(value):
        found.append((value, key))
        _slots(child, found, depth + 1)
    return found


@dataclass(frozen=True)
class Message:
    """A request body (and the node names it offers), shown short in hypothesis' reports."""

    body: bytes
    offered: object = None

    def __repr__(self) -> str:
        shown = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return f"Message({len(self.body)} bytes: {shown!r})"


def envelope(pairs: dict[str, Any], fold: str) -> dict[str, Any]:
    """The message with keys as the scheduler writes them (Go field names), or folded as Go's
    case-insensitive decoding allows."""
    if fold == "lower":
        return {key.lower(): value for key, value in pairs.items()}
    if fold == "upper":
        return {key.upper(): value for key, value in pairs.items()}
    return pairs


SEEDS = st.integers(0, 2**64 - 1)
MUTATIONS = st.integers(0, 3)


@st.composite
def extender_args(draw: st.DrawFn) -> Message:
    """ExtenderArgs: a pod with node names (mostly), full nodes, or neither."""
    make = Maker(draw(SEEDS))
    pairs: dict[str, Any] = {
        "Pod": make.mutated_pod(draw(st.sampled_from(SHAPES)), draw(MUTATIONS))
    }
    mode = draw(st.sampled_from(["names", "names", "names", "nodes", "neither"]))
    if mode == "names":
        pairs["NodeNames"] = [make.pick(NODE_NAMES) for _ in range(make.rng.randint(0, 8))]
        pairs["Nodes"] = None
    elif mode == "nodes":
        items = [
            builders.make_node(
                make.pick(["full-a", "full-b", "Bad_Name", ""]),
                cpu=make.quantity(),
                labels=make.labels(LABEL_KEYS, 2),
            )
            for _ in range(make.rng.randint(0, 3))
        ]
        pairs["Nodes"] = {"metadata": {}, "items": items}
        pairs["NodeNames"] = None
    document = make.mutate(envelope(pairs, draw(st.sampled_from(FOLDS))), draw(st.integers(0, 1)))
    offered = None
    if isinstance(document, dict):
        offered = next((v for k, v in document.items() if k.lower() == "nodenames"), None)
    return Message(encode(document, ascii_only=draw(st.booleans())), offered)


@st.composite
def binding_args(draw: st.DrawFn) -> Message:
    """ExtenderBindingArgs naming pods the filter calls have shown, or not."""
    make = Maker(draw(SEEDS))
    pairs = {
        "PodName": make.pick(POD_NAMES) if make.chance(0.8) else make.weird(),
        "PodNamespace": make.pick(["default", "team-a", "", "nope"]),
        "PodUID": f"uid-{make.rng.randint(0, 40)}",
        "Node": make.pick(NODE_NAMES),
    }
    document = make.mutate(envelope(pairs, draw(st.sampled_from(FOLDS))), draw(st.integers(0, 2)))
    return Message(encode(document, ascii_only=draw(st.booleans())))


@st.composite
def preemption_args(draw: st.DrawFn) -> Message:
    """ExtenderPreemptionArgs with meta victims (UIDs) or full victim pods."""
    make = Maker(draw(SEEDS))
    times = draw(MUTATIONS)
    pairs: dict[str, Any] = {"Pod": make.mutated_pod(draw(st.sampled_from(SHAPES)), times)}
    nodes = [make.pick(NODE_NAMES) for _ in range(make.rng.randint(0, 3))]
    if draw(st.booleans()):
        pairs["NodeNameToMetaVictims"] = {
            node: {
                "Pods": [{"UID": f"uid-{make.rng.randint(0, 40)}"} for _ in range(3)],
                "NumPDBViolations": make.number() if make.chance(0.3) else 0,
            }
            for node in nodes
        }
    else:
        pairs["NodeNameToVictims"] = {
            node: {
                "Pods": [make.mutated_pod(make.pick(SHAPES), times) for _ in range(2)],
                "NumPDBViolations": 1,
            }
            for node in nodes
        }
    document = make.mutate(envelope(pairs, draw(st.sampled_from(FOLDS))), draw(st.integers(0, 2)))
    return Message(encode(document, ascii_only=draw(st.booleans())))


BODIES = {"filter": extender_args, "prioritize": extender_args}
BODIES |= {"bind": binding_args, "preempt": preemption_args}


# -- the examples the first fuzzer found ------------------------------------------------------


def _found(pod_change: dict[str, Any]) -> Message:
    pod = builders.make_pod("p")
    for path, value in pod_change.items():
        target = pod
        *parents, last = path.split(".")
        for step in parents:
            target = target.setdefault(step, {})
        target[last] = value
    return Message(encode(builders.extender_args(pod, NODES[:2])), NODES[:2])


FOUND = [
    _found({"status.conditions": "Ready"}),
    _found({"status.conditions": [1, "x"]}),
    _found({"metadata.ownerReferences": "job"}),
    _found({"metadata.ownerReferences": [None, 3]}),
    _found({"spec.containers": [{"resources": {"requests": {"cpu": "1e999999"}}}]}),
    _found({"spec.extra": deep(300)}),
    _found({"spec.containers": [{"resources": {"requests": {"cpu": "-100"}}}]}),
    _found({"spec.containers": [{"resources": {"requests": {"memory": "-9e999999"}}}]}),
    _found(
        {
            "spec.affinity": builders.node_affinity(
                builders.term(builders.requirement(simulation.ZONE_LABEL, "Gt", "9" * 4400))
            )
        }
    ),
]


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["filter", "prioritize", "bind", "preempt"])
def test_any_message_gets_200_or_400_with_a_reply_of_the_verbs_type(
    server: Server, verb: str
) -> None:
    @examples(verb)
    @given(message=BODIES[verb]())
    def fuzz(message: Message) -> None:
        check(verb, server.post(f"/{verb}", message.body), message.offered)

    if verb in ("filter", "prioritize"):
        for message in FOUND:  # the first fuzzer's findings, every run
            check(verb, server.post(f"/{verb}", message.body), message.offered)
    fuzz()
    check_healthy(server)


_GARBAGE = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"null", b"[]", b"{", b'{"Pod":', b"\xff\xfe{}", b'{"Pod": NaN}']),
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(1000, 1100)),
    st.builds(lambda n: b'{"a":' * n + b"1" + b"}" * n, st.integers(250, 1030)),
    extender_args().map(lambda m: m.body[: len(m.body) // 2]),
    st.text(max_size=50).map(lambda t: t.encode("utf-16")),
)


@pytest.mark.slow
@examples("raw")
@given(
    verb=st.sampled_from(["filter", "prioritize", "bind", "preempt"]), body=_GARBAGE.map(Message)
)
def test_raw_bytes_get_400_not_500(server: Server, verb: str, body: Message) -> None:
    check(verb, server.post(f"/{verb}", body.body))


def _compressions(body: bytes) -> st.SearchStrategy[Message]:
    """The body under a Content-Encoding (carried in ``offered``) it may or may not match."""
    return st.sampled_from(
        [
            Message(gzip.compress(body), "gzip"),
            Message(body, "gzip"),
            Message(gzip.compress(body)[:-9], "gzip"),
            Message(zlib.compress(body), "deflate"),
            Message(body, "deflate"),
            Message(gzip.compress(gzip.compress(body)), "gzip"),
            Message(body, "identity"),
            Message(body, "br"),
            Message(body, "x-unknown"),
        ]
    )


@pytest.mark.slow
@examples("encoded")
@given(
    verb=st.sampled_from(["filter", "prioritize", "bind", "preempt"]),
    encoded=extender_args().flatmap(lambda m: _compressions(m.body)),
)
def test_bodies_whose_content_encoding_may_not_match_get_200_or_400(
    server: Server, verb: str, encoded: Message
) -> None:
    encoding = str(encoded.offered)
    reply = server.post(f"/{verb}", encoded.body, headers={"Content-Encoding": encoding})
    check(verb, reply, encoded=True)


def test_the_server_is_healthy_after_all_of_it(server: Server) -> None:
    check_healthy(server)


@pytest.mark.parametrize("count", ["inf", "1e999", "nan"])
def test_a_requeue_count_annotation_that_is_no_finite_number_is_not_a_500(
    server: Server, count: str
) -> None:
    pod = builders.make_pod(
        f"requeued-{count}",
        uid=f"requeued-{count}",
        labels={"kueue.x-k8s.io/queue-name": "user-queue"},
        annotations={"muster.dev/requeue-count": count},
    )
    check("filter", server.post("/filter", encode(builders.extender_args(pod, NODES))), NODES)
