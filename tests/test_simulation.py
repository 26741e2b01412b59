"""The simulated cluster: generated nodes, nodes from YAML, and in-memory binding."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from extender import simulation
from extender.core import cluster
from tests import builders


def test_generated_nodes_are_shaped_like_scheduler_perf_nodes() -> None:
    nodes = simulation.generated_nodes(45)
    assert len(nodes) == 45 and len({n.name for n in nodes}) == 45
    first = nodes[0]
    assert first.name == "node-00000"
    assert first.allocatable == {"cpu": 4000, "memory": 32 * 2**30, "pods": 110}
    assert first.labels[simulation.HOSTNAME_LABEL] == "node-00000"


def test_generated_nodes_fill_racks_and_spread_racks_over_zones() -> None:
    nodes = simulation.generated_nodes(60, per_rack=20, zones=3)
    racks = [n.labels[simulation.RACK_LABEL] for n in nodes]
    zones = [n.labels[simulation.ZONE_LABEL] for n in nodes]
    assert racks[0] == racks[19] == "rack-0000" and racks[20] == "rack-0001"
    assert (zones[0], zones[20], zones[40]) == ("zone-a", "zone-b", "zone-c")
    assert all(zones[i] == zones[i // 20 * 20] for i in range(60)), "a rack is in one zone"


def test_generated_nodes_take_a_custom_shape() -> None:
    (node,) = simulation.generated_nodes(1, cpu="64", memory="512Gi", pods=250)
    assert node.allocatable == {"cpu": 64000, "memory": 512 * 2**30, "pods": 250}


def test_nodes_from_yaml_reads_lists_and_several_documents(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Node
              metadata:
                name: gpu-1
                labels: {accelerator: a100}
              spec:
                taints:
                - {key: nvidia.com/gpu, value: present, effect: NoSchedule}
              status:
                allocatable: {cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "8"}
            - apiVersion: v1
              kind: Node
              metadata: {name: gpu-2}
              status:
                capacity: {cpu: "32", memory: 256Gi, pods: "110"}
            ---
            # an empty document is skipped
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: cpu-1}
            spec: {unschedulable: true}
            status:
              allocatable: {cpu: 3500m, memory: 15Gi, pods: "58"}
            ---
            apiVersion: v1
            kind: NodeList
            items: []
            """
        )
    )
    nodes = simulation.nodes_from_yaml(path)
    assert [n.name for n in nodes] == ["gpu-1", "gpu-2", "cpu-1"]
    gpu = nodes[0]
    assert gpu.allocatable["nvidia.com/gpu"] == 8 and gpu.labels == {"accelerator": "a100"}
    assert gpu.taints[0].key == "nvidia.com/gpu"
    assert nodes[1].allocatable["cpu"] == 32000, "capacity stands in for allocatable"
    assert nodes[2].unschedulable and nodes[2].allocatable["cpu"] == 3500


def test_nodes_from_yaml_names_the_file_and_the_field_of_a_bad_node(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Node\nmetadata: {name: n}\nstatus: {allocatable: {cpu: four}}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: node.status.allocatable: .*'four'"):
        simulation.nodes_from_yaml(path)


def test_populate_fills_and_syncs_a_view() -> None:
    state = cluster.ClusterState()
    simulated = simulation.SimulatedCluster(simulation.generated_nodes(5))
    simulated.populate(state)
    assert state.synced and len(state.nodes) == 5


async def test_the_simulated_binder_shows_the_pod_bound() -> None:
    state = cluster.ClusterState()
    simulation.SimulatedCluster(simulation.generated_nodes(2)).populate(state)
    binder = simulation.SimulatedBinder(state)
    pod = builders.pod("p", uid="p", cpu="1")
    await binder.bind(pod, "node-00001")
    assert binder.bound == 1
    assert state.pods["p"].node_name == "node-00001"
    assert state.nodes["node-00001"].used == {"cpu": 1000, "pods": 1}
