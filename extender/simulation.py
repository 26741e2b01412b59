"""The simulated cluster: generated (or file-given) nodes and in-memory binding, no Kubernetes.

This is the embedded default for ``muster demo``, the load test and tests that need no API
server.  It feeds the same ``ClusterState`` the watches feed, and its binder "binds" by showing
the pod as bound, which is what the watch would report after a real binding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from extender.core import cluster, model, objects

ZONE_LABEL = "topology.kubernetes.io/zone"
RACK_LABEL = "muster.dev/rack"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def generated_nodes(
    count: int,
    *,
    cpu: str = "4",
    memory: str = "32Gi",
    pods: int = 110,
    per_rack: int = 20,
    zones: int = 3,
) -> list[model.Node]:
    """``count`` nodes shaped like scheduler_perf's node-default (4 cpu, 32Gi, 110 pods),
    labelled with a zone and a rack (``per_rack`` nodes to a rack, racks spread over zones)."""
    nodes = []
    for i in range(count):
        rack = i // per_rack
        name = f"node-{i:05d}"
        raw = {
            "metadata": {
                "name": name,
                "labels": {
                    HOSTNAME_LABEL: name,
                    ZONE_LABEL: f"zone-{chr(ord('a') + rack % zones)}",
                    RACK_LABEL: f"rack-{rack:04d}",
                },
            },
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": str(pods)}},
        }
        nodes.append(objects.to_node(raw))
    return nodes


def nodes_from_yaml(path: Path) -> list[model.Node]:
    """Node objects from a YAML file: several documents, a ``kind: List``, or both."""
    nodes = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        is_list = str(doc.get("kind", "")).endswith("List")
        items: Iterable[Any] = doc.get("items") or [] if is_list else [doc]
        for item in items:
            try:
                nodes.append(objects.to_node(item))
            except objects.ObjectError as exc:
                raise ValueError(f"{path}: {exc}") from None
    return nodes


class Feed(Protocol):
    def replace_nodes(self, nodes: Sequence[model.Node]) -> None: ...
    def mark_synced(self) -> None: ...


class SimulatedCluster:
    """Holds the simulated nodes; ``populate`` feeds them to the service as a synced list."""

    def __init__(self, nodes: Iterable[model.Node]) -> None:
        self.nodes = list(nodes)

    def populate(self, feed: Feed) -> None:
        feed.replace_nodes(self.nodes)
        feed.mark_synced()


class PodFeed(Protocol):
    def remove_pod(self, pod: model.Pod) -> None: ...


class SimulatedEvictor:
    """Evicts in memory: the pod leaves the view at once, as a real eviction ends with the
    pod deleted.  ``feed`` (the service) is set once the service exists."""

    def __init__(self) -> None:
        self.feed: PodFeed | None = None
        self.evicted = 0

    async def evict(self, pod: model.Pod, *, reason: str) -> None:
        if self.feed is not None:
            self.feed.remove_pod(pod)
        self.evicted += 1


class SimulatedBinder:
    """Binds in memory: the pod shows up bound in the view, as the watch would report it."""

    def __init__(self, state: cluster.ClusterState) -> None:
        self.state = state
        self.bound = 0

    async def bind(self, pod: model.Pod, node_name: str) -> None:
        self.state.upsert_pod(dataclasses.replace(pod, node_name=node_name))
        self.bound += 1
