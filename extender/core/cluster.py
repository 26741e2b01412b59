"""The extender's own view of the cluster: nodes, pods, and the capacity claimed on each node.

A *claim* is capacity held on a node under a key: a bound pod (key = its uid), a pod the
extender is binding right now (assumed), or later a reservation.  ``NodeState.used`` is the sum
of the node's claims, kept incrementally.  Every change to a node or its claims gives it a new
``generation`` from one global counter, so a cache entry made at generation g is still valid
for that node exactly while its generation is g.

All methods are synchronous and run on the event loop; nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from extender.core import model, resources


@dataclass(slots=True)
class NodeState:
    node: model.Node
    generation: int
    used: dict[str, int] = field(default_factory=dict)


class ClusterState:
    """Nodes and pods from the watch (or the simulation), plus assumed pods."""

    CHANGE_LOG_SIZE = 100_000

    def __init__(self) -> None:
        self.nodes: dict[str, NodeState] = {}
        self.pods: dict[str, model.Pod] = {}
        self.pods_by_key: dict[str, model.Pod] = {}
        self.synced = False
        self._generations = itertools.count(1)
        self.generation = 0
        """The newest generation handed out (of any node)."""
        # Node names in the order their generations were handed out: generation g changed
        # the node at index g - 1 - _changed_base.
        self._changed: list[str] = []
        self._changed_base = 0
        # claim key -> (node name, resources); kept even while the node is unknown.
        self._claims: dict[str, tuple[str, resources.ResourceList]] = {}
        self._claims_by_node: dict[str, dict[str, resources.ResourceList]] = {}
        # uid -> node of pods the extender bound but the watch has not yet shown bound.
        self.assumed: dict[str, str] = {}

    # -- nodes ------------------------------------------------------------------------------

    def upsert_node(self, node: model.Node) -> None:
        state = self.nodes.get(node.name)
        if state is None:
            used = resources.total(self._claims_by_node.get(node.name, {}).values())
            self.nodes[node.name] = NodeState(node, self._bump(node.name), used)
        elif state.node != node:
            state.node = node
            state.generation = self._bump(node.name)

    def delete_node(self, name: str) -> None:
        if self.nodes.pop(name, None) is not None:
            self._bump(name)

    # -- the change log ---------------------------------------------------------------------

    def _bump(self, name: str) -> int:
        """A new generation for node ``name``, recorded in the change log."""
        generation = next(self._generations)
        self.generation = generation
        log = self._changed
        log.append(name)
        if len(log) > self.CHANGE_LOG_SIZE:
            drop = len(log) // 2
            del log[:drop]
            self._changed_base += drop
        return generation

    def changed_since(self, generation: int) -> list[str] | None:
        """Names of the nodes changed after ``generation`` (with repeats), or None when the
        log no longer reaches back that far."""
        index = generation - self._changed_base
        if index < 0:
            return None
        return self._changed[index:]

    # -- claims -----------------------------------------------------------------------------

    def claim(self, key: str, node_name: str, amount: resources.ResourceList) -> None:
        """Hold ``amount`` on ``node_name`` under ``key`` (moving an existing claim)."""
        current = self._claims.get(key)
        if current == (node_name, amount):
            return
        if current is not None:
            self.release(key)
        self._claims[key] = (node_name, amount)
        self._claims_by_node.setdefault(node_name, {})[key] = amount
        state = self.nodes.get(node_name)
        if state is not None:
            resources.add(state.used, amount)
            state.generation = self._bump(node_name)

    def release(self, key: str) -> None:
        current = self._claims.pop(key, None)
        if current is None:
            return
        node_name, amount = current
        on_node = self._claims_by_node.get(node_name)
        if on_node is not None:
            on_node.pop(key, None)
            if not on_node:
                del self._claims_by_node[node_name]
        state = self.nodes.get(node_name)
        if state is not None:
            resources.subtract(state.used, amount)
            state.generation = self._bump(node_name)

    def claim_of(self, key: str) -> str | None:
        """The node holding ``key``'s claim, if any."""
        current = self._claims.get(key)
        return current[0] if current else None

    # -- pods -------------------------------------------------------------------------------

    def upsert_pod(self, pod: model.Pod) -> None:
        old = self.pods.get(pod.uid)
        if old is not None and old.key != pod.key:
            self.pods_by_key.pop(old.key, None)
        self.pods[pod.uid] = pod
        self.pods_by_key[pod.key] = pod
        if pod.node_name and not pod.terminated:
            self.assumed.pop(pod.uid, None)
            self.claim(pod.uid, pod.node_name, pod.requests)
        elif pod.uid in self.assumed and not pod.terminated:
            pass  # our binding is in flight; the watch has not caught up yet
        else:
            self.assumed.pop(pod.uid, None)
            self.release(pod.uid)

    def delete_pod(self, uid: str) -> None:
        pod = self.pods.pop(uid, None)
        if pod is not None and self.pods_by_key.get(pod.key) is pod:
            del self.pods_by_key[pod.key]
        self.assumed.pop(uid, None)
        self.release(uid)

    def assume(self, pod: model.Pod, node_name: str) -> None:
        """Account ``pod`` on ``node_name`` now, before the binding is confirmed."""
        self.assumed[pod.uid] = node_name
        self.claim(pod.uid, node_name, pod.requests)

    def forget(self, uid: str) -> None:
        """Undo ``assume`` after a failed binding."""
        if self.assumed.pop(uid, None) is not None:
            self.release(uid)

    def bound_node(self, uid: str) -> str:
        """The node a pod is bound or being bound to, or ``""``."""
        pod = self.pods.get(uid)
        if pod is not None and pod.node_name:
            return pod.node_name
        return self.assumed.get(uid, "")

    def mark_synced(self) -> None:
        self.synced = True

    # -- resync -----------------------------------------------------------------------------

    def replace_nodes(self, nodes: Iterable[model.Node]) -> None:
        """A fresh node list (after a relist): upsert all, drop the ones that are gone."""
        fresh = {node.name: node for node in nodes}
        for name in list(self.nodes):
            if name not in fresh:
                self.delete_node(name)
        for node in fresh.values():
            self.upsert_node(node)

    def replace_pods(self, pods: Iterable[model.Pod]) -> None:
        """A fresh pod list (after a relist).  Pods being bound by us keep their claims."""
        fresh = {pod.uid: pod for pod in pods}
        for uid in list(self.pods):
            if uid not in fresh and uid not in self.assumed:
                self.delete_pod(uid)
        for pod in fresh.values():
            self.upsert_pod(pod)

    def snapshot_used(self) -> Mapping[str, Mapping[str, int]]:
        """Per-node used resources (a copy), for tests and debugging."""
        return {name: dict(state.used) for name, state in self.nodes.items()}
