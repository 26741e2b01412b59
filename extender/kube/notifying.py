"""Telling the cluster: Kubernetes Events on pods, and the nudge that makes the scheduler retry.

Both are fire-and-forget: they run on the API worker threads and only log their failures, so a
slow or failing API server never stalls a filter call.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from extender.core import model
from extender.kube.client import Connection, namespaced_path, request

log = logging.getLogger(__name__)

NUDGE_ANNOTATION = "muster.dev/nudged-at"
COMPONENT = "muster"


def event_body(
    pod: model.Pod, *, reason: str, message: str, warning: bool, instance: str, now: datetime
) -> dict[str, object]:
    """A core/v1 Event about ``pod`` (the API kube-scheduler 1.20 itself still records to)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    involved: dict[str, str] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": pod.namespace,
        "name": pod.name,
    }
    if pod.uid:
        involved["uid"] = pod.uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{pod.name}.", "namespace": pod.namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


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

    def annotate(self, pod: model.Pod, annotations: Mapping[str, str]) -> None:
        self.connection.executor.submit(self._annotate, pod, dict(annotations))

    def _event(self, pod: model.Pod, reason: str, message: str, warning: bool) -> None:
        body = event_body(
            pod,
            reason=reason,
            message=message,
            warning=warning,
            instance=self.instance,
            now=datetime.now(UTC),
        )
        try:
            request(self.connection, "POST", namespaced_path(pod.namespace, "events"), body)
        except Exception as exc:  # an Event is best effort
            log.debug("event %s on %s not recorded: %s", reason, pod.key, exc)

    def _annotate(self, pod: model.Pod, annotations: dict[str, str]) -> None:
        # An empty value removes the annotation (a merge patch with null).
        self._patch_annotations(pod, {k: (v if v else None) for k, v in annotations.items()})

    def _nudge(self, pod: model.Pod) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._patch_annotations(pod, {NUDGE_ANNOTATION: stamp})

    def _patch_annotations(self, pod: model.Pod, values: dict[str, str | None]) -> None:
        try:
            request(
                self.connection,
                "PATCH",
                namespaced_path(pod.namespace, "pods", pod.name),
                {"metadata": {"annotations": values}},
                content_type="application/merge-patch+json",
            )
        except Exception as exc:  # the pod may be gone: nudges and records are best effort
            log.debug("patching annotations of %s failed: %s", pod.key, exc)
