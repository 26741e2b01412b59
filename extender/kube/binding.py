"""Binding pods: create the ``pods/binding`` subresource, as kube-scheduler's DefaultBinder does."""

from __future__ import annotations

import asyncio
import functools
import json

from kubernetes import client

from extender.core import model
from extender.kube.client import Connection


def api_error_message(exc: client.ApiException) -> str:
    """The API server's own message (from the Status body) when there is one."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"


class KubeBinder:
    """Implements ``service.Binder`` against the API server."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def _bind(self, pod: model.Pod, node_name: str) -> None:
        body = client.V1Binding(
            metadata=client.V1ObjectMeta(
                name=pod.name, namespace=pod.namespace, uid=pod.uid or None
            ),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node_name),
        )
        try:
            # _preload_content=False: the client cannot deserialize the Status the API returns.
            self.connection.core.create_namespaced_pod_binding(
                pod.name, pod.namespace, body, _preload_content=False
            )
        except client.ApiException as exc:
            raise RuntimeError(api_error_message(exc)) from None

    async def bind(self, pod: model.Pod, node_name: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self.connection.executor, functools.partial(self._bind, pod, node_name)
        )
