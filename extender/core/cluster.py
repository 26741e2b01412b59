"""The extender's own view of the cluster: nodes, pods, and the capacity claimed on each node.

A *claim* is capacity held on a node under a key: a bound pod (key = its uid), a pod the
extender is binding right now (assumed), or later a reservation.  ``NodeState.used`` is the sum
of the node's claims, kept incrementally.  Every change to a node or its claims gives it a new
``generation`` from one global counter, so a cache entry made at generation g is still valid
for that node exactly while its generation is g.

The view also keeps a *topology index* for gang planning: for each label key asked about
(``domains(key)``), the nodes grouped by that label's value with their free capacity summed,
kept up to date on every node and claim change, so a plan need not regroup all nodes.

All methods are synchronous and run on the event loop; nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from extender.core import model, resources


@dataclass(slots=True)
class NodeState:
    node: model.Node
    generation: int
    used: dict[str, int] = field(default_factory=dict)


def free_of(state: NodeState) -> dict[str, int]:
    """What is left on the node, per resource, never below zero (an over-committed resource
    has nothing left, not a negative amount)."""
    allocatable, used = state.node.allocatable, state.used
    return {
        name: max(0, allocatable.get(name, 0) - used.get(name, 0))
        for name in allocatable.keys() | used.keys()
    }


@dataclass(slots=True, eq=False)
class Domain:
    """The nodes that share one value of a topology label, e.g. ``muster.dev/rack=rack-0003``.

    ``free`` is ``free_of`` summed over the nodes: an upper bound of what any placement in
    the domain can use, since no node gives more than its own free capacity."""

    name: str
    nodes: dict[str, NodeState] = field(default_factory=dict)
    free: dict[str, int] = field(default_factory=dict)


BoundListener = Callable[[str, str], None]
"""Told ``(uid, node)`` when a pod becomes bound or assumed on a node, ``(uid, "")`` when it
no longer is (``bound_node`` changed)."""


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
        # label key -> label value -> domain, for the keys ``domains`` was asked about; and
        # each key's domains sorted by name (dropped when a domain appears or disappears).
        self._topology: dict[str, dict[str, Domain]] = {}
        self._sorted: dict[str, list[Domain]] = {}
        self._bound_listeners: list[BoundListener] = []

    # -- nodes ------------------------------------------------------------------------------

    def upsert_node(self, node: model.Node) -> None:
        state = self.nodes.get(node.name)
        if state is None:
            used = resources.total(self._claims_by_node.get(node.name, {}).values())
            state = self.nodes[node.name] = NodeState(node, self._bump(node.name), used)
            self._index(state, self._topology)
            self._account(state, +1)
        elif state.node != node:
            old = state.node.labels
            moved = [key for key in self._topology if old.get(key) != node.labels.get(key)]
            self._account(state, -1)
            self._unindex(state, moved)
            state.node = node
            state.generation = self._bump(node.name)
            self._index(state, moved)
            self._account(state, +1)

    def delete_node(self, name: str) -> None:
        state = self.nodes.pop(name, None)
        if state is not None:
            self._account(state, -1)
            self._unindex(state, self._topology)
            self._bump(name)

    # -- the topology index -----------------------------------------------------------------

    def index_domains(self, keys: Iterable[str]) -> None:
        """Keep the domains of these label keys from now on: O(nodes) once for a new key, then
        O(1) per node or claim change."""
        for key in keys:
            if key not in self._topology:
                self._topology[key] = {}
                for state in self.nodes.values():
                    self._index(state, (key,))
                    self._account(state, +1, (key,))

    def domains(self, key: str) -> Sequence[Domain]:
        """The domains of label ``key`` (indexed now if it was not), sorted by value; nodes
        within a domain in the order they joined it."""
        ordered = self._sorted.get(key)
        if ordered is None:
            self.index_domains((key,))
            by_value = self._topology[key]
            ordered = self._sorted[key] = [by_value[value] for value in sorted(by_value)]
        return ordered

    def _index(self, state: NodeState, keys: Iterable[str]) -> None:
        """Put the node into its domain of each of ``keys``."""
        labels = state.node.labels
        for key in keys:
            value = labels.get(key)
            if value is None:
                continue
            by_value = self._topology[key]
            domain = by_value.get(value)
            if domain is None:
                domain = by_value[value] = Domain(f"{key}={value}")
                self._sorted.pop(key, None)
            domain.nodes[state.node.name] = state

    def _unindex(self, state: NodeState, keys: Iterable[str]) -> None:
        """Take the node out of its domain of each of ``keys``; drop domains left empty."""
        labels = state.node.labels
        for key in keys:
            value = labels.get(key)
            if value is None:
                continue
            by_value = self._topology[key]
            domain = by_value[value]
            del domain.nodes[state.node.name]
            if not domain.nodes:
                del by_value[value]
                self._sorted.pop(key, None)

    def _account(self, state: NodeState, sign: int, keys: Iterable[str] | None = None) -> None:
        """Add (``sign`` +1) or take out (-1) the node's free capacity in the sums of its
        domains (of ``keys``, default every indexed key)."""
        if not self._topology:
            return
        labels = state.node.labels
        free = free_of(state)
        for key in self._topology if keys is None else keys:
            value = labels.get(key)
            if value is None:
                continue
            total = self._topology[key][value].free
            for name, amount in free.items():
                total[name] = total.get(name, 0) + sign * amount

    def _free_before(self, state: NodeState, amount: resources.ResourceList) -> dict[str, int]:
        """The node's free capacity of the resources in ``amount``, before it changes (only
        needed while domains are kept)."""
        if not self._topology:
            return {}
        allocatable, used = state.node.allocatable, state.used
        return {name: max(0, allocatable.get(name, 0) - used.get(name, 0)) for name in amount}

    def _account_change(self, state: NodeState, before: Mapping[str, int]) -> None:
        """Move the node's domains' sums by how much its free capacity of the resources in
        ``before`` changed: a claim costs O(its resources x indexed keys), not O(node)."""
        if not before:
            return
        allocatable, used = state.node.allocatable, state.used
        changes = [
            (name, max(0, allocatable.get(name, 0) - used.get(name, 0)) - old)
            for name, old in before.items()
        ]
        labels = state.node.labels
        for key, by_value in self._topology.items():
            value = labels.get(key)
            if value is None:
                continue
            total = by_value[value].free
            for name, change in changes:
                if change:
                    total[name] = total.get(name, 0) + change

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
            before = self._free_before(state, amount)
            resources.add(state.used, amount)
            self._account_change(state, before)
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
            before = self._free_before(state, amount)
            resources.subtract(state.used, amount)
            self._account_change(state, before)
            state.generation = self._bump(node_name)

    def claim_of(self, key: str) -> str | None:
        """The node holding ``key``'s claim, if any."""
        current = self._claims.get(key)
        return current[0] if current else None

    # -- pods -------------------------------------------------------------------------------

    def upsert_pod(self, pod: model.Pod) -> None:
        before = self.bound_node(pod.uid)
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
        self._tell_bound(pod.uid, before)

    def delete_pod(self, uid: str) -> None:
        before = self.bound_node(uid)
        pod = self.pods.pop(uid, None)
        if pod is not None and self.pods_by_key.get(pod.key) is pod:
            del self.pods_by_key[pod.key]
        self.assumed.pop(uid, None)
        self.release(uid)
        self._tell_bound(uid, before)

    def assume(self, pod: model.Pod, node_name: str) -> None:
        """Account ``pod`` on ``node_name`` now, before the binding is confirmed."""
        before = self.bound_node(pod.uid)
        self.assumed[pod.uid] = node_name
        self.claim(pod.uid, node_name, pod.requests)
        self._tell_bound(pod.uid, before)

    def forget(self, uid: str) -> None:
        """Undo ``assume`` after a failed binding."""
        before = self.bound_node(uid)
        if self.assumed.pop(uid, None) is not None:
            self.release(uid)
        self._tell_bound(uid, before)

    def on_bound_change(self, listener: BoundListener) -> None:
        """Call ``listener`` whenever ``bound_node`` of a pod changes."""
        self._bound_listeners.append(listener)

    def _tell_bound(self, uid: str, before: str) -> None:
        after = self.bound_node(uid)
        if after != before:
            for listener in self._bound_listeners:
                listener(uid, after)

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
