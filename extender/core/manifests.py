"""Raw Kubernetes pods built from a few parameters: plain dicts, camelCase, as the wire and the
API carry them. The one pod builder of the demo, the load test, the tests and the e2e tests.

The other way round from :func:`extender.core.objects.to_pod`. A field given as ``None`` is left
out, as the API server leaves out empty fields; every call returns fresh dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"


def container(
    name: str = "main",
    *,
    image: str | None = PAUSE_IMAGE,
    requests: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A container asking for ``requests`` up to ``limits`` (either left out when empty);
    ``fields`` are more container fields, camelCase (``restartPolicy="Always"``)."""
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    out: dict[str, Any] = {"name": name}
    if image is not None:
        out["image"] = image
    out["resources"] = resources
    out.update(fields)
    return out


def pod(
    name: str,
    *,
    namespace: str | None = None,
    uid: str | None = None,
    created: str | None = None,
    resource_version: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    containers: Sequence[Mapping[str, Any]] | None = None,
    spec: Mapping[str, Any] | None = None,
    phase: str | None = None,
) -> dict[str, Any]:
    """A v1.Pod running ``containers`` (one :func:`container` if not given).

    ``created`` is ``metadata.creationTimestamp`` (``"2025-01-01T00:00:00Z"``); ``spec`` holds
    more spec fields, camelCase (``{"nodeSelector": {...}}``); ``phase`` gives the pod a status.
    Without ``namespace`` and ``uid`` it is a manifest to create; with them, a pod as
    kube-scheduler sends it.
    """
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if uid is not None:
        meta["uid"] = uid
    if created is not None:
        meta["creationTimestamp"] = created
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    body: dict[str, Any] = {
        "containers": list(containers) if containers is not None else [container()]
    }
    body.update(spec or {})
    out: dict[str, Any] = {"metadata": meta, "spec": body}
    if phase is not None:
        out["status"] = {"phase": phase}
    return out
