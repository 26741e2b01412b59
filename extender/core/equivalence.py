"""Equivalence classes of pods: which pods are interchangeable for filter and prioritize.

The rule: a pod's signature is made of exactly the fields our checks and scores read —
effective requests (overhead, init containers and sidecars already folded in), nodeSelector,
required node affinity, and tolerations — and nothing else.  Name, uid, labels, annotations,
priority and preferred affinity do not enter: no check or score reads them.  Two pods with
equal signatures get equal verdicts and equal scores on every node in every cluster state.

A pod is *unsignable* (always computed fresh) when kube-scheduler's own batching would refuse it
or when our verdict could depend on something outside the signature: host ports, pod
(anti-)affinity, topology spread constraints.  Gang members never reach the cache: their
nodes are decided by the gang plan.
"""

from __future__ import annotations

from extender.core import model


class Signature:
    """An equivalence class: the fields ``signature`` picks, hashed once.  The cache looks a
    signature up several times per call; hashing the nested terms and tolerations at every
    lookup showed in profiles."""

    __slots__ = ("_fields", "_hash")

    def __init__(self, fields: tuple[object, ...]) -> None:
        self._fields = fields
        self._hash = hash(fields)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Signature):
            return NotImplemented
        return self._hash == other._hash and self._fields == other._fields

    def __repr__(self) -> str:
        return f"Signature{self._fields!r}"


def signature(pod: model.Pod) -> Signature | None:
    """The pod's equivalence class, or None when it must be judged fresh every time."""
    if pod.host_ports or pod.has_pod_affinity or pod.has_topology_spread:
        return None
    return Signature(
        (
            tuple(sorted(pod.requests.items())),
            tuple(sorted(pod.node_selector.items())),
            pod.required_terms,
            pod.tolerations,
        )
    )
