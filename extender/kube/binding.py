"""Binding pods: create the ``pods/binding`` subresource, as kube-scheduler's DefaultBinder does."""

from __future__ import annotations

import asyncio
import functools

from extender.core import model
from extender.kube.client import Connection, namespaced_path, request


def binding_body(pod: model.Pod, node_name: str) -> dict[str, object]:
    """A v1 Binding, with the pod's uid.  The uid is no guard against a pod recreated under
    the same name: API server 1.20.2 binds whatever uid the Binding names (tried); the service
    compares the scheduler's PodUID with the pod it knows before binding."""
    metadata: dict[str, str] = {"name": pod.name, "namespace": pod.namespace}
    if pod.uid:
        metadata["uid"] = pod.uid
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }


class KubeBinder:
    """Implements ``service.Binder`` against the API server."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def _bind(self, pod: model.Pod, node_name: str) -> None:
        """Raises ``ApiError`` (``NotFound`` when the pod is gone)."""
        path = namespaced_path(pod.namespace, "pods", pod.name, "binding")
        request(self.connection, "POST", path, binding_body(pod, node_name))

    async def bind(self, pod: model.Pod, node_name: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self.connection.executor, functools.partial(self._bind, pod, node_name)
        )
