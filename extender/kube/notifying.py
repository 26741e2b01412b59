"""Telling the cluster: Kubernetes Events on pods, and the nudge that makes the scheduler retry.

Both are fire-and-forget: they run on the API worker threads and only log their failures, so a
slow or failing API server never stalls a filter call.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from datetime import UTC, datetime

from kubernetes import client

from extender.core import model
from extender.kube.client import Connection

log = logging.getLogger(__name__)

NUDGE_ANNOTATION = "muster.dev/nudged-at"
COMPONENT = "muster"


class KubeNotifier:
    """Implements ``service.Notifier`` against the API server."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.instance = socket.gethostname()

    def event(self, pod: model.Pod, *, reason: str, message: str, warning: bool = False) -> None:
        self.connection.executor.submit(self._event, pod, reason, message, warning)

    def nudge(self, pods: Sequence[model.Pod]) -> None:
        for pod in pods:
            self.connection.executor.submit(self._nudge, pod)

    def _event(self, pod: model.Pod, reason: str, message: str, warning: bool) -> None:
        now = datetime.now(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{pod.name}.", namespace=pod.namespace),
            involved_object=client.V1ObjectReference(
                api_version="v1",
                kind="Pod",
                namespace=pod.namespace,
                name=pod.name,
                uid=pod.uid or None,
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            source=client.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=self.instance,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        try:
            self.connection.core.create_namespaced_event(
                pod.namespace, body, _preload_content=False
            )
        except Exception as exc:  # an Event is best effort
            log.debug("event %s on %s not recorded: %s", reason, pod.key, exc)

    def _nudge(self, pod: model.Pod) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        patch = {"metadata": {"annotations": {NUDGE_ANNOTATION: stamp}}}
        try:
            self.connection.core.patch_namespaced_pod(
                pod.name, pod.namespace, patch, _preload_content=False
            )
        except Exception as exc:  # the pod may be gone; the scheduler retries anyway
            log.debug("nudge of %s failed: %s", pod.key, exc)
