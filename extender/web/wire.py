"""The extender/v1 wire format: decode requests, encode replies (orjson).

kube-scheduler marshals its extender types without json tags, so keys are the Go field names
(``Pod``, ``NodeNames``, ``FailedNodes`` ...), ``null`` stands for empty values, and Go decodes
keys case-insensitively.  Requests are therefore read with folded keys; replies use the exact
Go names.  Anything malformed raises ``WireError`` with a message naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sized
from dataclasses import dataclass
from typing import Any

import orjson

from extender.core import model, objects, scoring
from extender.service import FilterOutcome, Victims


class WireError(ValueError):
    """A request body that is not a valid extender/v1 message."""


_INT64_MAX = 2**63 - 1
MAX_NODES = 100_000
"""Most nodes one message may name (NodeNames, Nodes.items, preemption candidates).  The
largest clusters have some 65,000 nodes (Kubernetes itself is tested to 5,000); the work a
message asks for grows with this count, so a message over it is refused.  Measured at the
cap: filter or prioritize ~0.2 s of CPU (the 2.5 million names that fit in a 32 MiB body took
3.5-5 s), preempt ~1.5 s (600,000 candidates took 7.5 s; kube-scheduler sends at most
max(100, 10% of nodes) unless configured otherwise)."""
MAX_SPEC_KEY = 64 * 2**10
"""Longest spec encoding used as a conversion-cache key.  Real specs take a few KiB; the cache
holds 256 keys, so this bounds its keys to 16 MiB however large the specs sent."""


def _encoded(value: object, what: str, field: str) -> bytes:
    """``value`` (decoded from the request) encoded again.  orjson decodes 1024 levels of
    nesting but encodes only 254; no Kubernetes object comes near either, so a request that
    does is refused."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise WireError(f"{what}: {field} is nested too deeply (more than 254 levels)") from None


def _count(nodes: Sized, what: str, field: str) -> None:
    if len(nodes) > MAX_NODES:
        raise WireError(
            f"{what}: {field} has {len(nodes)} entries, more than {MAX_NODES} "
            "(no cluster has that many nodes)"
        )


def _object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"{what}: body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise WireError(f"{what}: body must be a JSON object, got {type(data).__name__}")
    return {key.lower(): value for key, value in data.items()}


def _pod(args: Mapping[str, Any], what: str) -> dict[str, Any]:
    pod = args.get("pod")
    if pod is None:
        raise WireError(f"{what}: Pod is missing")
    if not isinstance(pod, dict):
        raise WireError(f"{what}: Pod must be an object, got {type(pod).__name__}")
    return pod


@dataclass(frozen=True, slots=True)
class ExtenderArgs:
    """Filter/prioritize input: the pod and either node names or full node objects."""

    pod: dict[str, Any]
    node_names: list[str]
    node_objects: dict[str, model.Node] | None
    raw_nodes: dict[str, dict[str, Any]] | None
    pod_spec_key: bytes
    """The pod's ``spec`` encoded again: pods of one template have equal keys.  Empty (no
    caching) for a spec longer than ``MAX_SPEC_KEY``."""


def read_extender_args(body: bytes, what: str) -> ExtenderArgs:
    args = _object(body, what)
    pod = _pod(args, what)
    key = _encoded(pod.get("spec"), what, "Pod.spec")
    if len(key) > MAX_SPEC_KEY:
        key = b""
    names = args.get("nodenames")
    nodes = args.get("nodes")
    if names is not None:
        # Each name is checked by the service, which must find it among its nodes anyway.
        if not isinstance(names, list):
            raise WireError(f"{what}: NodeNames must be a list of strings")
        _count(names, what, "NodeNames")
        return ExtenderArgs(pod, names, None, None, key)
    if nodes is None:
        return ExtenderArgs(pod, [], None, None, key)
    if not isinstance(nodes, dict):
        raise WireError(f"{what}: Nodes must be a NodeList object")
    items = nodes.get("items") or []
    if not isinstance(items, list):
        raise WireError(f"{what}: Nodes.items must be a list")
    _count(items, what, "Nodes.items")
    node_objects: dict[str, model.Node] = {}
    raw_nodes: dict[str, dict[str, Any]] = {}
    # The reply sends the passing nodes back as they came, three levels deep, as here.
    try:
        orjson.dumps({"Nodes": {"items": items}})
    except orjson.JSONEncodeError:
        for i, item in enumerate(items):
            _encoded({"Nodes": {"items": [item]}}, what, f"Nodes.items[{i}]")
    for i, item in enumerate(items):
        try:
            node = objects.to_node(item)
        except objects.ObjectError as exc:
            raise WireError(f"{what}: Nodes.items[{i}]: {exc}") from None
        node_objects[node.name] = node
        raw_nodes[node.name] = item
    return ExtenderArgs(pod, list(node_objects), node_objects, raw_nodes, key)


@dataclass(frozen=True, slots=True)
class BindingArgs:
    pod_name: str
    pod_namespace: str
    pod_uid: str
    node: str


def read_binding_args(body: bytes) -> BindingArgs:
    args = _object(body, "bind")
    values = {}
    for key, field in (
        ("podname", "PodName"),
        ("podnamespace", "PodNamespace"),
        ("poduid", "PodUID"),
        ("node", "Node"),
    ):
        value = args.get(key)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise WireError(f"bind: {field} must be a string")
        values[key] = value
    for key, field in (("podname", "PodName"), ("node", "Node")):
        if not values[key]:
            raise WireError(f"bind: {field} is missing")
    return BindingArgs(
        pod_name=values["podname"],
        pod_namespace=values["podnamespace"] or "default",
        pod_uid=values["poduid"],
        node=values["node"],
    )


@dataclass(frozen=True, slots=True)
class PreemptionArgs:
    pod: dict[str, Any]
    candidates: dict[str, Victims]


def _victims(raw: object, where: str, *, full_pods: bool) -> Victims:
    if not isinstance(raw, dict):
        raise WireError(f"preempt: {where} must be an object")
    entry = {key.lower(): value for key, value in raw.items()}
    pods = entry.get("pods") or []
    if not isinstance(pods, list):
        raise WireError(f"preempt: {where}.Pods must be a list")
    uids = []
    for i, pod in enumerate(pods):
        if not isinstance(pod, dict):
            raise WireError(f"preempt: {where}.Pods[{i}] must be an object")
        if full_pods:
            meta = pod.get("metadata")
            uid = meta.get("uid") if isinstance(meta, dict) else None
        else:
            uid = {key.lower(): value for key, value in pod.items()}.get("uid")
        if not isinstance(uid, str) or not uid:
            raise WireError(f"preempt: {where}.Pods[{i}] has no UID")
        uids.append(uid)
    violations = entry.get("numpdbviolations") or 0
    if isinstance(violations, bool) or not isinstance(violations, int):
        raise WireError(f"preempt: {where}.NumPDBViolations must be an integer")
    if not 0 <= violations <= _INT64_MAX:
        raise WireError(f"preempt: {where}.NumPDBViolations must be a count (0 to 2^63-1)")
    return Victims(uids=tuple(uids), pdb_violations=violations)


def read_preemption_args(body: bytes) -> PreemptionArgs:
    args = _object(body, "preempt")
    pod = _pod(args, "preempt")
    meta = args.get("nodenametometavictims")
    full = args.get("nodenametovictims")
    source, full_pods = (meta, False) if meta is not None else (full, True)
    if source is None:
        return PreemptionArgs(pod=pod, candidates={})
    if not isinstance(source, dict):
        raise WireError("preempt: NodeNameToMetaVictims must be an object")
    _count(source, "preempt", "NodeNameToMetaVictims" if meta is not None else "NodeNameToVictims")
    candidates = {
        node: _victims(value, f"victims of {node}", full_pods=full_pods)
        for node, value in source.items()
    }
    return PreemptionArgs(pod=pod, candidates=candidates)


# -- replies --------------------------------------------------------------------------------


def filter_result(outcome: FilterOutcome, args: ExtenderArgs) -> bytes:
    """``ExtenderFilterResult`` in the same mode (names or objects) as the request."""
    names: list[str] | None = outcome.passed
    nodes: dict[str, Any] | None = None
    if args.raw_nodes is not None:
        nodes = {"metadata": {}, "items": [args.raw_nodes[n] for n in outcome.passed]}
        names = None
    return orjson.dumps(
        {
            "Nodes": nodes,
            "NodeNames": names,
            "FailedNodes": outcome.failed,
            "FailedAndUnresolvableNodes": outcome.unresolvable,
            "Error": "",
        }
    )


def filter_error(message: str) -> bytes:
    return orjson.dumps(
        {
            "Nodes": None,
            "NodeNames": None,
            "FailedNodes": None,
            "FailedAndUnresolvableNodes": None,
            "Error": message,
        }
    )


# ``HostPriorityList`` written by joining strings: ``_HOST_SCORE[s]`` ends one host's entry with
# score ``s`` and opens the next, so the body is the hosts interleaved with those separators.
_OPEN_HOST = '[{"Host":"'
_HOST_SCORE = {s: f'","Score":{s}}},{{"Host":"' for s in range(scoring.MAX_SCORE + 1)}
_NEXT_HOST = ',{"Host":"'


def host_priorities(scores: scoring.Scores) -> bytes:
    """``HostPriorityList``: a bare array of ``{"Host", "Score"}`` with integer scores.

    Node names are DNS subdomains (``objects.to_node`` refuses others, as the API server
    does), which need no escaping in JSON; so when the hosts hold no quote or backslash and
    every score is in 0..10, the body is one string join, three times faster than an object
    per host through orjson, which writes anything else."""
    hosts, values = scores
    if not hosts:
        return b"[]"
    plain = "".join(hosts)
    if plain.isascii() and '"' not in plain and "\\" not in plain:
        parts = [""] * (2 * len(hosts))
        parts[0::2] = hosts
        try:
            parts[1::2] = map(_HOST_SCORE.__getitem__, values)
        except (KeyError, TypeError):
            pass
        else:
            return (_OPEN_HOST + "".join(parts)[: -len(_NEXT_HOST)] + "]").encode()
    return orjson.dumps([{"Host": host, "Score": value} for host, value in scores.pairs()])


def binding_result(error: str = "") -> bytes:
    return orjson.dumps({"Error": error})


def preemption_result(candidates: Mapping[str, Victims]) -> bytes:
    """``ExtenderPreemptionResult``, always in the ``NodeNameToMetaVictims`` form."""
    return orjson.dumps(
        {
            "NodeNameToMetaVictims": {
                node: {
                    "Pods": [{"UID": uid} for uid in v.uids],
                    "NumPDBViolations": v.pdb_violations,
                }
                for node, v in candidates.items()
            }
        }
    )


def error(message: str) -> bytes:
    """The body of an HTTP 400/500/503: ``{"Error": "..."}``."""
    return orjson.dumps({"Error": message})
