"""What muster remembers of the pods the scheduler's calls name, beside the watched view.

* each pod version's conversion, and each pod spec's (pods of one template differ only in
  metadata), so a pod is converted once per version; it is also the pod a bind call refers to
  when the watch has not delivered it yet;
* *tentative* pods: known only from calls, not yet from the watch (housekeeping drops the ones
  a healthy watch never confirms);
* *tombstones*: deleted pods' uids, so a late call cannot bring one back;
* pods *turned away* for lack of room, to retry when room is freed.

Forgetting a pod here is ``forget``; the service calls it with every other part's forget.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import cachetools

from extender.core import model, objects
from extender.service.ports import Clock

DELETED_MEMORY_SECONDS = 600.0
"""How long a deleted pod's uid is remembered: a scheduler call about it after the watch
reported the deletion (the scheduler's queue lags too) must not bring it back."""


class CalledPods:
    def __init__(self, *, remembered: int, clock: Clock) -> None:
        self.remembered = remembered
        self.clock = clock
        self._seen: cachetools.LRUCache[str, tuple[str, model.Pod]] = cachetools.LRUCache(
            maxsize=remembered
        )
        """uid -> (resourceVersion, pod)."""
        self._specs: cachetools.LRUCache[bytes, objects.PodSpec] = cachetools.LRUCache(maxsize=256)
        """spec encoding -> its conversion."""
        self.tentative: dict[str, float] = {}
        """uid -> first seen in a call, oldest first."""
        self._deleted: cachetools.TTLCache[str, bool] = cachetools.TTLCache(
            maxsize=remembered, ttl=DELETED_MEMORY_SECONDS, timer=clock
        )
        self.turned_away: dict[str, tuple[model.Pod, float]] = {}
        """uid -> (pod, when) of pods whose last filter passed no node for lack of room,
        oldest first, at most ``remembered``."""

    def convert(self, raw: Mapping[str, object], *, spec_key: bytes = b"") -> model.Pod:
        """The request's Pod, reusing the conversion of the same uid and version, and of an
        equal spec: ``spec_key`` is the spec's encoding (equal keys, equal specs)."""
        meta = raw.get("metadata")
        if isinstance(meta, dict):
            uid, version = meta.get("uid"), meta.get("resourceVersion")
            if isinstance(uid, str) and uid and isinstance(version, str) and version:
                known = self._seen.get(uid)
                if known is not None and known[0] == version:
                    return known[1]
        spec = self._specs.get(spec_key) if spec_key else None
        if spec is None:
            spec = objects.to_pod_spec(raw.get("spec"))
            if spec_key:
                self._specs[spec_key] = spec
        pod = objects.to_pod(raw, spec=spec)
        if pod.uid:
            self._seen[pod.uid] = (pod.resource_version, pod)
        return pod

    def seen(self, uid: str) -> model.Pod | None:
        """The latest conversion of a pod a call carried."""
        known = self._seen.get(uid)
        return known[1] if known is not None else None

    # -- tentative pods and tombstones --------------------------------------------------------

    def called(self, uid: str) -> None:
        """A call named a pod the watch has not delivered."""
        self.tentative.setdefault(uid, self.clock())

    def confirmed(self, uid: str) -> None:
        self.tentative.pop(uid, None)

    def keep_young(self, listed: Collection[str], window: float) -> set[str]:
        """A fresh list of pods arrived: tentative pods it lacks that are older than
        ``window`` are dropped (the list would have had them); returns the young ones."""
        recent = self.clock() - window
        young = {uid for uid, since in self.tentative.items() if since >= recent}
        self.tentative = {uid: self.tentative[uid] for uid in young if uid not in listed}
        return young

    def unconfirmed(self, limit: float) -> list[str]:
        """Take the tentative pods first seen before ``limit``."""
        old = []
        for uid, since in self.tentative.items():
            if since > limit:
                break
            old.append(uid)
        for uid in old:
            del self.tentative[uid]
        return old

    def deleted(self, uid: str) -> None:
        self._deleted[uid] = True
        self.tentative.pop(uid, None)

    def is_deleted(self, uid: str) -> bool:
        return uid in self._deleted

    # -- turned away for lack of room -----------------------------------------------------------

    def turn_away(self, pod: model.Pod) -> None:
        self.turned_away.pop(pod.uid, None)
        self.turned_away[pod.uid] = (pod, self.clock())
        if len(self.turned_away) > self.remembered:
            del self.turned_away[next(iter(self.turned_away))]

    def placed(self, uid: str) -> None:
        """The pod's last filter passed a node (or rejected none for lack of room)."""
        self.turned_away.pop(uid, None)

    def take_turned_away(self, since: float = float("-inf")) -> list[model.Pod]:
        """Take the pods turned away since ``since``, newest first."""
        pods = []
        for uid in reversed(self.turned_away):
            pod, when = self.turned_away[uid]
            if when < since:
                break
            pods.append(pod)
        for pod in pods:
            del self.turned_away[pod.uid]
        return pods

    def forget(self, uid: str) -> None:
        self.turned_away.pop(uid, None)
        self._seen.pop(uid, None)
