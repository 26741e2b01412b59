"""The bind gate: a gang member's bind waits until every planned member reached bind, then
all are bound concurrently.

It also owns the group's deadline and backoff: the timer armed when a plan is made (and again
when the first member reaches the gate), the expiry that fails the waiting binds, lets the
plan go and backs the group off exponentially, and the nudge when the backoff ends.
Releasing a plan (its reservations, and the binds waiting on it) is here too.  Membership
and planning stay with the coordinator, which owns the groups; this reads them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from extender import metrics
from extender.core import cluster, gang, model
from extender.service.gangs.group import Group, Phase, reservation_key
from extender.service.ports import Binder, BindError, Clock, Notifier, Timers
from extender.settings import Settings

log = logging.getLogger(__name__)


class BindGate:
    def __init__(
        self,
        *,
        state: cluster.ClusterState,
        binder: Binder,
        notifier: Notifier,
        settings: Settings,
        timers: Timers,
        clock: Clock,
        capacity_freed: Callable[[], None],
        groups: Mapping[gang.GroupKey, Group],
        group_of: Mapping[str, gang.GroupKey],
    ) -> None:
        self.state = state
        self.binder = binder
        self.notifier = notifier
        self.settings = settings
        self.timers = timers
        self.clock = clock
        self.capacity_freed = capacity_freed
        """Called when a reservation is let go, so pods turned away for room can retry."""
        self.groups = groups
        """The coordinator's groups, read here; the coordinator adds and drops them."""
        self.group_of = group_of

    def gates(self, uid: str) -> Group | None:
        """The group whose gate a bind of ``uid`` must pass, if any."""
        key = self.group_of.get(uid)
        group = self.groups.get(key) if key else None
        return group if group is not None and uid in group.plan else None

    async def bind(self, group: Group, pod: model.Pod, node_name: str) -> None:
        """Wait at the gate until all quorum members arrived, then all are bound together."""
        planned = group.plan[pod.uid]
        if planned != node_name:
            raise BindError(f"gang member {pod.key} is planned on {planned}, not {node_name}")
        waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        earlier = group.gate.get(pod.uid)
        if earlier is not None:
            # A second call for a member already waiting: its first caller gave up or died (a
            # restarted scheduler retries the pod); the newest call takes its place.
            group.gate[pod.uid] = waiting
            if not earlier.done():
                earlier.set_exception(BindError(f"superseded by a newer bind of {pod.key}"))
        else:
            self.state.release(reservation_key(pod.uid))
            self.state.assume(pod, node_name)
            group.gate[pod.uid] = waiting
            if len(group.gate) == 1:
                self.arm(group, self.clock() + group.policy.timeout_seconds)
            if len(group.gate) == len(group.plan):
                self._open(group)
        try:
            await waiting
        except asyncio.CancelledError:
            self._leave_gate(group, pod, node_name, waiting)
            raise

    def _leave_gate(
        self, group: Group, pod: model.Pod, node_name: str, waiting: asyncio.Future[None]
    ) -> None:
        """The caller of a waiting bind went away: the member leaves the gate and keeps its
        planned place (a reservation again), so the scheduler's retry can wait there anew."""
        if group.gate.get(pod.uid) is not waiting:
            return  # the gate opened, or a newer call took the place
        del group.gate[pod.uid]
        self.state.forget(pod.uid)
        if group.plan.get(pod.uid) == node_name:
            self.state.claim(reservation_key(pod.uid), node_name, pod.requests)
        log.info("gang member %s left the gate: its bind call was cancelled", pod.key)

    def _open(self, group: Group) -> None:
        """Every planned member is at the gate: bind them all, concurrently."""
        self.cancel_timer(group)
        gate, group.gate = group.gate, {}
        placements = {uid: group.plan.pop(uid) for uid in gate}
        self.timers.spawn(self._bind_all(group, gate, placements), name=f"bind gang {group.key}")

    async def _bind_all(
        self, group: Group, gate: Mapping[str, asyncio.Future[None]], placements: Mapping[str, str]
    ) -> None:
        pods = [group.members[uid] for uid in gate if uid in group.members]
        results = await asyncio.gather(
            *(self.binder.bind(pod, placements[pod.uid]) for pod in pods), return_exceptions=True
        )
        failed = 0
        for pod, result in zip(pods, results, strict=True):
            waiting = gate[pod.uid]
            if isinstance(result, BaseException):
                failed += 1
                self.state.forget(pod.uid)
                if not waiting.done():
                    waiting.set_exception(
                        BindError(
                            f"binding gang member {pod.key} to "
                            f"{placements[pod.uid]} failed: {result}"
                        )
                    )
            elif not waiting.done():
                waiting.set_result(None)
        for uid, waiting in gate.items():  # members deleted while waiting
            if not waiting.done():
                waiting.set_exception(BindError(f"gang member {uid} left the group"))
        if failed:
            group.set_phase(
                Phase.WAITING,
                f"gang {group.key}: {failed} binding(s) failed; re-planning those members",
                notifier=self.notifier,
            )
            self.notifier.nudge(group.pending())
            return
        if group.quorum_at:
            metrics.gang_quorum_to_bound_seconds.observe(max(0.0, self.clock() - group.quorum_at))
        group.quorum_at = 0.0
        group.attempts = 0
        group.set_phase(
            Phase.BOUND,
            f"gang {group.key} bound: {len(pods)} member(s)"
            + (f" in {group.domain}" if group.domain else ""),
            notifier=self.notifier,
        )

    # -- releasing a plan, deadlines and backoff --------------------------------------------

    def release(self, group: Group) -> None:
        """Let the whole plan go.  Members waiting at the gate cannot complete it any more:
        their binds fail now, so the scheduler retries them into the next plan (left waiting,
        the gate could never match the new plan's count)."""
        for uid, waiting in group.gate.items():
            self.state.forget(uid)
            if not waiting.done():
                waiting.set_exception(BindError(f"gang {group.key} is being re-planned; retry"))
        group.gate.clear()
        held = bool(group.plan)
        for uid in group.plan:
            self.state.release(reservation_key(uid))
        group.plan.clear()
        if held:
            self.capacity_freed()
        group.domain = ""
        self.cancel_timer(group)

    def cancel_timer(self, group: Group) -> None:
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None

    def arm(self, group: Group, deadline: float) -> None:
        """Set (or move) the group's deadline: when it passes, the waiting binds fail and the
        group backs off."""
        self.cancel_timer(group)
        group.deadline = deadline
        group.timer = self.timers.later(deadline - self.clock(), self._expire, group)

    def _expire(self, group: Group) -> None:
        """The deadline passed before every quorum member reached bind."""
        group.timer = None
        arrived = len(group.gate)
        needed = len(group.plan)
        reason = (
            f"gang {group.key} timed out after {group.policy.timeout_seconds:.0f}s: "
            f"{arrived}/{needed} planned member(s) reached bind"
        )
        for uid, waiting in group.gate.items():
            self.state.forget(uid)
            if not waiting.done():
                waiting.set_exception(BindError(reason))
        group.gate.clear()
        self.release(group)
        group.attempts += 1
        settings = self.settings
        delay = min(
            settings.gang_backoff_base_seconds * 2 ** (group.attempts - 1),
            settings.gang_backoff_max_seconds,
        )
        group.backoff_until = self.clock() + delay
        metrics.gang_timeouts.inc()
        log.info("%s; backing off %.0fs", reason, delay)
        group.set_phase(
            Phase.BACKING_OFF, f"{reason}; retrying in {delay:.0f}s", notifier=self.notifier
        )
        self.timers.later(delay, self._retry, group)

    def _retry(self, group: Group) -> None:
        if self.groups.get(group.key) is group:
            self.notifier.nudge(group.pending())
