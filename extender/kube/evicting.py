"""Evicting pods through the Eviction API (``pods/eviction``), as Kueue's preemption does.

The API server answers with 429 when a PodDisruptionBudget forbids the eviction now; that is
raised like any other failure and the caller's next cycle tries again.  ``policy/v1`` Eviction
is served from Kubernetes 1.22; older API servers get ``policy/v1beta1``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from kubernetes import client

from extender.core import model
from extender.kube.binding import api_error_message
from extender.kube.client import Connection

VERSIONS = ("policy/v1", "policy/v1beta1")


class KubeEvictor:
    """Implements ``service.Evictor`` against the API server."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._version = VERSIONS[0]

    def _evict(self, pod: model.Pod) -> None:
        # Typed for the V1Eviction model; we send the raw body and read the raw response.
        core: Any = self.connection.core
        for version in VERSIONS[VERSIONS.index(self._version) :]:
            body = {
                "apiVersion": version,
                "kind": "Eviction",
                "metadata": {"name": pod.name, "namespace": pod.namespace},
            }
            try:
                response = core.create_namespaced_pod_eviction(
                    pod.name, pod.namespace, body, _preload_content=False
                )
            except client.ApiException as exc:
                if (
                    exc.status in (400, 404)
                    and version != VERSIONS[-1]
                    and ("policy/v1" in (exc.body or "") or "no kind" in (exc.body or ""))
                ):
                    self._version = VERSIONS[VERSIONS.index(version) + 1]
                    continue
                if exc.status == 404:
                    return  # already gone
                raise RuntimeError(api_error_message(exc)) from None
            response.read()
            response.release_conn()
            return

    async def evict(self, pod: model.Pod, *, reason: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.connection.executor, functools.partial(self._evict, pod))
