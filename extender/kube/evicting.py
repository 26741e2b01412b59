"""Evicting pods through the Eviction API (``pods/eviction``), as Kueue's preemption does.

The API server answers 429 while a PodDisruptionBudget forbids the eviction; that is raised as
``TooManyRequests`` (retryable) and the caller's next cycle tries again.  ``policy/v1`` Eviction is
served from Kubernetes 1.22 on; older API servers get ``policy/v1beta1``.
"""

from __future__ import annotations

import asyncio
import functools

from extender.core import model
from extender.kube.client import Connection, namespaced_path, request
from extender.service.ports import ApiError, NotFound

VERSIONS = ("policy/v1", "policy/v1beta1")


class KubeEvictor:
    """Implements ``service.Evictor`` against the API server."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._version = VERSIONS[0]

    def _evict(self, pod: model.Pod) -> None:
        path = namespaced_path(pod.namespace, "pods", pod.name, "eviction")
        for version in VERSIONS[VERSIONS.index(self._version) :]:
            body = {
                "apiVersion": version,
                "kind": "Eviction",
                "metadata": {"name": pod.name, "namespace": pod.namespace},
            }
            try:
                request(self.connection, "POST", path, body)
                return
            except ApiError as exc:
                unknown_kind = exc.status in (400, 404) and "no kind" in str(exc)
                if unknown_kind and version != VERSIONS[-1]:
                    self._version = VERSIONS[VERSIONS.index(version) + 1]
                    continue
                if isinstance(exc, NotFound):
                    return  # already gone
                raise

    async def evict(self, pod: model.Pod, *, reason: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.connection.executor, functools.partial(self._evict, pod))
