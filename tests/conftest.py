"""Fixtures shared by more than one test directory: a small synced cluster view (``state``).
Each directory's conftest.py holds the fixtures of its own tests (web/: the service and an HTTP
client); fakes are in fakes.py, builders in builders.py."""

from __future__ import annotations

import pytest

from extender.core import cluster
from tests import builders

NODE_NAMES = ("node1", "node2", "node3")


@pytest.fixture
def state() -> cluster.ClusterState:
    """Three empty nodes of 4 cpu, 8Gi and 110 pods each; synced."""
    view = cluster.ClusterState()
    view.replace_nodes(builders.node(name) for name in NODE_NAMES)
    view.synced = True
    return view
