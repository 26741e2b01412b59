"""Gang scheduling: quorum, a whole-gang plan with reservations, steering, and the bind gate.

An extender has no Permit hook, so the gang is decided here:

1. Quorum: until ``minCount`` members exist, filter rejects them (unresolvable) with the count.
2. Plan: at quorum the whole gang is placed at once (``core.gang.plan``) and its capacity is
   reserved as claims in the cluster view, so no other pod or gang can take it.
3. Nudge: the other members are touched so kube-scheduler retries them now.
4. Steer: filter passes a member only on its planned node, or moves its reservation to an
   offered node that fits when the planned one was not offered.
5. Gate: a member's bind waits until every quorum member reached bind, then all are bound
   concurrently.  At the group's deadline the waiting binds fail, the reservation is released
   and the group backs off exponentially.

Groups are rebuilt from the pods the watch delivers, so after a restart bound members count
as placed and the rest are planned around them.

``GangCoordinator`` is the one entry point and owns the groups (membership, steps 1-4, and
whole gangs under preemption); the parts:

* ``gate``  — step 5: the bind gate, the group's deadline and backoff, releasing a plan;
* ``group`` — one group's state, its phase and the Events a change of phase posts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from extender import metrics
from extender.core import cluster, gang, model, predicates
from extender.service.gangs.gate import BindGate
from extender.service.gangs.group import Group, Phase, reservation_key
from extender.service.ports import Binder, Clock, Notifier, Placement, Timers, Victims
from extender.settings import Settings

__all__ = ["GangCoordinator", "Group"]


def _by_domain(
    node_names: Sequence[str], *, domain: str, nodes: Mapping[str, cluster.NodeState]
) -> list[str]:
    """Offered nodes, those in the plan's topology ``domain`` ("label=value") first."""
    label, _, value = domain.partition("=")
    if not value:
        return list(node_names)
    inside = [n for n in node_names if n in nodes and nodes[n].node.labels.get(label) == value]
    chosen = set(inside)
    return inside + [n for n in node_names if n not in chosen]


def _only(node: str, node_names: Sequence[str], reason: str) -> predicates.FilterOutcome:
    return predicates.FilterOutcome(
        passed=[node], unresolvable={n: reason for n in node_names if n != node}
    )


class GangCoordinator:
    """Owns every pod group; called by the service for members, and by the watch feed."""

    def __init__(
        self,
        *,
        state: cluster.ClusterState,
        binder: Binder,
        notifier: Notifier,
        settings: Settings,
        placement: Placement,
        capacity_freed: Callable[[], None],
        timers: Timers,
        clock: Clock = time.monotonic,
    ) -> None:
        self.state = state
        self.notifier = notifier
        self.settings = settings
        self.clock = clock
        self.groups: dict[gang.GroupKey, Group] = {}
        self.group_of: dict[str, gang.GroupKey] = {}
        self.workloads: dict[tuple[str, str], gang.Workload] = {}
        self.placement = placement
        """Quota admission: whether a member may take capacity yet, and on which flavor."""
        self.capacity_freed = capacity_freed
        """Called when a reservation is let go, so pods turned away for room can retry."""
        self.gate = BindGate(
            state=state,
            binder=binder,
            notifier=notifier,
            settings=settings,
            timers=timers,
            clock=clock,
            capacity_freed=capacity_freed,
            groups=self.groups,
            group_of=self.group_of,
        )
        state.on_bound_change(self._bound_changed)
        state.index_domains(settings.topology_keys)  # as nodes arrive, not at the first plan

    def phases(self) -> dict[str, int]:
        """How many groups are in each phase (every phase named, for the metrics)."""
        counts = dict.fromkeys((phase.value for phase in Phase), 0)
        for group in self.groups.values():
            if group.phase is not None:
                counts[group.phase.value] += 1
        return counts

    # -- membership -------------------------------------------------------------------------

    def observe(self, pod: model.Pod) -> Group | None:
        """Track a pod (from the watch or a filter call); returns its group, if it has one."""
        member = gang.membership(pod)
        if member is None:
            return None
        if pod.terminated:
            self.forget(pod.uid)
            return None
        group = self.groups.get(member.key)
        if group is None:
            group = self.groups[member.key] = Group(key=member.key, first_seen=self.clock())
        group.members[pod.uid] = pod
        self.group_of[pod.uid] = member.key
        self._bound_changed(pod.uid, self.state.bound_node(pod.uid))
        group.policy = gang.policy(
            member,
            pod,
            workloads=self.workloads,
            default_timeout=self.settings.gang_timeout_seconds,
        )
        return group

    def policy(self, key: gang.GroupKey) -> gang.Policy | None:
        group = self.groups.get(key)
        return group.policy if group is not None else None

    def workload(self, namespace: str, name: str) -> gang.Workload | None:
        return self.workloads.get((namespace, name))

    def member(self, uid: str) -> model.Pod | None:
        """The latest copy of a member pod."""
        key = self.group_of.get(uid)
        group = self.groups.get(key) if key else None
        return group.members.get(uid) if group else None

    def forget(self, uid: str) -> None:
        """A pod is gone (deleted, or finished): drop it; a planned member releases the plan."""
        key = self.group_of.pop(uid, None)
        group = self.groups.get(key) if key else None
        if group is None:
            return
        group.members.pop(uid, None)
        group.bound.discard(uid)
        if uid in group.plan and group.gate and uid not in group.gate:
            # Others wait at the gate: keep their places, plan a replacement for this one.
            self.state.release(reservation_key(uid))
            del group.plan[uid]
            self.capacity_freed()
            self.notifier.nudge([p for p in group.pending() if p.uid not in group.plan])
        elif uid in group.plan:
            self.gate.release(group)
        if not group.members:
            self.gate.cancel_timer(group)
            del self.groups[group.key]

    def set_workload(self, workload: gang.Workload) -> None:
        self.workloads[(workload.namespace, workload.name)] = workload
        self._refresh(workload.namespace, workload.name)

    def delete_workload(self, namespace: str, name: str) -> None:
        self.workloads.pop((namespace, name), None)
        self._refresh(namespace, name)

    def _refresh(self, namespace: str, name: str) -> None:
        for group in list(self.groups.values()):
            if group.key.namespace == namespace and group.key.workload == name:
                for pod in list(group.members.values()):
                    self.observe(pod)
                self.notifier.nudge(group.pending())

    # -- filter -----------------------------------------------------------------------------

    def _bound_changed(self, uid: str, node: str) -> None:
        key = self.group_of.get(uid)
        group = self.groups.get(key) if key else None
        if group is None:
            return
        if node:
            group.bound.add(uid)
        else:
            group.bound.discard(uid)

    def filter(self, pod: model.Pod, node_names: Sequence[str]) -> predicates.FilterOutcome | None:
        """The verdict for a gang member, or None when the pod is not (or no longer) gated."""
        group = self.observe(pod)
        if group is None:
            return None
        policy = group.policy
        if policy.missing:
            return self._wait(group, node_names, f"waiting for gang {group.key}: {policy.missing}")
        if not policy.is_gang:
            return None
        if pod.uid not in group.plan:
            if len(group.bound) >= policy.min_count:
                return None  # the gang is running: members beyond minCount go one by one
            now = self.clock()
            if now < group.backoff_until:
                return self._wait(
                    group,
                    node_names,
                    f"gang {group.key} backing off for "
                    f"{group.backoff_until - now:.0f}s: {group.reason}",
                    Phase.BACKING_OFF,
                )
            live = len(group.members)
            if live < policy.min_count:
                return self._wait(
                    group,
                    node_names,
                    f"waiting for gang {group.key}: {live}/{policy.min_count} pods",
                )
            if not group.plan:
                self._plan_in_order(group, exclude=pod)
            elif group.placed() < policy.min_count:
                self._plan(group, exclude=pod)  # a planned member left: plan its replacement
            if not group.plan:
                return self._wait(group, node_names, group.reason, Phase.UNPLACEABLE)
            if pod.uid not in group.plan:
                return self._wait(
                    group,
                    node_names,
                    f"gang {group.key} is being placed; "
                    f"members beyond minCount {policy.min_count} wait for it",
                )
        return self._steer(group, pod, node_names)

    def _wait(
        self, group: Group, node_names: Sequence[str], reason: str, phase: Phase = Phase.WAITING
    ) -> predicates.FilterOutcome:
        group.set_phase(phase, reason, notifier=self.notifier)
        return predicates.FilterOutcome(unresolvable=dict.fromkeys(node_names, reason))

    def _to_place(self, group: Group) -> list[model.Pod]:
        """The earliest pending members that, with the bound and planned ones, complete
        minCount."""
        pending = sorted(
            (p for p in group.pending() if p.uid not in group.plan),
            key=lambda p: (p.created, p.name),
        )
        return pending[: max(0, group.policy.min_count - group.placed())]

    def _plan_in_order(self, group: Group, *, exclude: model.Pod) -> None:
        """Plan waiting gangs in queue order (priority, then age) up to and including ``group``,
        so an older or more important gang gets capacity first."""
        now = self.clock()
        rank = (-group.priority, group.created)
        ahead = sorted(
            (
                g
                for g in self.groups.values()
                if g is not group
                and not g.plan
                and g.policy.is_gang
                and now >= g.backoff_until
                and len(g.members) >= g.policy.min_count
                and len(g.bound) < g.policy.min_count
                and (-g.priority, g.created) < rank
                and any(self.placement.may_place(p) for p in g.members.values())
            ),
            key=lambda g: (-g.priority, g.created),
        )
        for other in ahead:
            self._plan(other, exclude=None)
        self._plan(group, exclude=exclude)

    def _plan(self, group: Group, *, exclude: model.Pod | None) -> None:
        now = self.clock()
        if not group.quorum_at:
            group.quorum_at = now
            metrics.gang_quorum_seconds.observe(max(0.0, now - group.first_seen))
        to_place = [self.placement.constrain(p) for p in self._to_place(group)]
        started = time.perf_counter()
        result = gang.plan(to_place, self.state, topology_keys=self.settings.topology_keys)
        metrics.gang_plan_seconds.observe(time.perf_counter() - started)
        if isinstance(result, gang.Unplaceable):
            group.set_phase(
                Phase.UNPLACEABLE, f"gang {group.key}: {result.reason}", notifier=self.notifier
            )
            return
        for pod in to_place:
            self.state.claim(reservation_key(pod.uid), result.nodes[pod.uid], pod.requests)
        completing = bool(group.plan)
        group.plan.update(result.nodes)
        if not completing:
            group.domain = result.domain
            self.gate.arm(group, now + group.policy.timeout_seconds)
        group.set_phase(
            Phase.PLANNED,
            f"gang {group.key} planned: {len(to_place)} member(s) in {result.domain}",
            notifier=self.notifier,
        )
        self.notifier.nudge([p for p in to_place if exclude is None or p.uid != exclude.uid])

    def _steer(
        self, group: Group, pod: model.Pod, node_names: Sequence[str]
    ) -> predicates.FilterOutcome:
        """Pass only the planned node; if it was not offered, move the member's reservation to
        an offered node that fits (same domain first), else release the plan."""
        planned = group.plan[pod.uid]
        state = self.state.nodes.get(planned)
        offered = set(node_names)
        if (
            planned in offered
            and state is not None
            and predicates.check_static(pod, state.node) is None
        ):
            return _only(planned, node_names, f"gang {group.key} member planned elsewhere")
        if pod.uid in group.gate:  # a member already waiting at bind keeps its node
            return _only(planned, node_names, f"gang {group.key} member planned elsewhere")
        key = reservation_key(pod.uid)
        self.state.release(key)
        for name in _by_domain(node_names, domain=group.domain, nodes=self.state.nodes):
            candidate = self.state.nodes.get(name)
            if candidate and predicates.check(pod, candidate.node, candidate.used) is None:
                self.state.claim(key, name, pod.requests)
                group.plan[pod.uid] = name
                return _only(name, node_names, f"gang {group.key} member planned elsewhere")
        self.gate.release(group)
        reason = (
            f"gang {group.key}: planned node {planned} was not offered and no offered "
            f"node fits; re-planning"
        )
        self.notifier.nudge([pod])
        return self._wait(group, node_names, reason)

    # -- bind gate --------------------------------------------------------------------------

    def gates(self, uid: str) -> Group | None:
        """The group whose gate a bind of ``uid`` must pass, if any."""
        return self.gate.gates(uid)

    async def bind(self, group: Group, pod: model.Pod, node_name: str) -> None:
        """Wait at the gate until all quorum members arrived, then all are bound together."""
        await self.gate.bind(group, pod, node_name)

    # -- preemption -------------------------------------------------------------------------

    def whole_gangs_only(self, candidates: Mapping[str, Victims]) -> dict[str, Victims]:
        """Drop candidate nodes whose victims would take only part of a gang's bound members."""
        kept = {}
        for node, victims in candidates.items():
            chosen = set(victims.uids)
            if all(self._wholly_in(uid, chosen) for uid in victims.uids):
                kept[node] = victims
        return kept

    def _wholly_in(self, uid: str, chosen: set[str]) -> bool:
        key = self.group_of.get(uid)
        group = self.groups.get(key) if key else None
        if group is None or not group.policy.is_gang or group.policy.min_count <= 1:
            return True
        return group.bound <= chosen
