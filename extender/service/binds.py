"""The bind verb: which pod a bind names, and binding it safely.

A bind must name the very pod (uid) muster knows by that name, of a scheduler muster serves.
A pod alone is re-checked against the node (two pods may have passed filter on the same last
room), accounted on it before the API call and un-accounted if the call fails; a gang member
waits at its gang's gate instead (``service.gangs``), and all members are bound together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from extender import metrics
from extender.core import cluster, model, predicates
from extender.service import gangs
from extender.service.calls import CalledPods
from extender.service.ports import Binder, BindError, NotFound

log = logging.getLogger(__name__)


class Binds:
    def __init__(
        self,
        *,
        state: cluster.ClusterState,
        binder: Binder,
        gangs: gangs.GangCoordinator,
        calls: CalledPods,
        constrain: Callable[[model.Pod], model.Pod],
        scheduler_names: Collection[str],
        vanished: Callable[[model.Pod], None],
    ) -> None:
        self.state = state
        self.binder = binder
        self.gangs = gangs
        self.calls = calls
        self.constrain = constrain
        """The pod with its admitted flavor's constraints (queue admission)."""
        self.scheduler_names = scheduler_names
        self.vanished = vanished
        """Called for a pod known only from calls that the API server says does not exist."""

    def _pod_for_bind(self, namespace: str, name: str, uid: str) -> model.Pod:
        """The pod a bind names; refusals never tell a caller the real uid."""
        key = f"{namespace}/{name}"
        if not uid:
            raise BindError(f"pod {key}: PodUID is required")
        if self.calls.is_deleted(uid):
            raise BindError(f"pod {key} is deleted")
        known = self.state.pods_by_key.get(key)
        if known is not None:
            if known.uid != uid:
                raise BindError(f"pod {key}: PodUID {uid} does not match the pod of that name")
            pod = known
        else:
            found = self.calls.seen(uid) or self.gangs.member(uid)
            if found is None or found.key != key:
                raise BindError(f"pod {key} (uid {uid}) is unknown to the extender")
            pod = found
        if pod.scheduler_name not in self.scheduler_names:
            raise BindError(
                f"pod {key} is for scheduler {pod.scheduler_name!r}, which muster does not "
                f"serve (--scheduler-names)"
            )
        return pod

    async def bind(self, *, namespace: str, name: str, uid: str, node_name: str) -> None:
        """Create the pod's binding, accounting it on the node before the API call returns."""
        try:
            pod = self._pod_for_bind(namespace, name, uid)
            if node_name not in self.state.nodes:
                raise BindError(f"node {node_name!r} is unknown to the extender")
            group = self.gangs.gates(pod.uid)
            current = "" if group is not None else self.state.bound_node(pod.uid)
            if current == node_name:
                metrics.binds.labels("bound").inc()
                return
            if current:
                raise BindError(f"pod {pod.key} is already bound to {current}")
        except BindError:
            metrics.binds.labels("refused").inc()
            raise
        if group is not None:
            await self._bind_member(group, pod, node_name)
            return
        # 1. re-check the fit: the scheduler filters the next pod before this bind arrives, so
        #    two pods may have passed muster's filter on the same last free room;
        state = self.state.nodes[node_name]
        misfit = predicates.check(self.constrain(pod), state.node, state.used)
        if misfit is not None:
            metrics.binds.labels("refused").inc()
            self.calls.turn_away(pod)
            raise BindError(f"pod {pod.key} no longer fits {node_name}: {misfit.reason}")
        # 2. account the pod at once so the next filter sees the node fuller;
        self.state.assume(pod, node_name)
        # 3. create the binding; 4. undo the accounting if that failed.  Shielded: a scheduler
        #    that hangs up does not leave the accounting half done.
        await asyncio.shield(self._bind_one(pod, node_name))

    async def _bind_one(self, pod: model.Pod, node_name: str) -> None:
        try:
            await self.binder.bind(pod, node_name)
        except Exception as exc:
            self.state.forget(pod.uid)
            if isinstance(exc, NotFound) and pod.uid not in self.state.pods:
                self.vanished(pod)  # known only from the wire, and it does not exist
            metrics.binds.labels("failed").inc()
            log.warning("binding %s to %s failed: %s", pod.key, node_name, exc)
            raise BindError(f"binding {pod.key} to {node_name} failed: {exc}") from exc
        metrics.binds.labels("bound").inc()

    async def _bind_member(self, group: gangs.Group, pod: model.Pod, node_name: str) -> None:
        """A gang member: wait at the gang's gate; all members are bound together."""
        try:
            await self.gangs.bind(group, pod, node_name)
        except BindError:
            metrics.binds.labels("failed").inc()
            raise
        metrics.binds.labels("bound").inc()
