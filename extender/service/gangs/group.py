"""One pod group as both halves of the gang gate see it: its members, its plan and
reservations, its gate and deadline, and its phase.

Plain state and the few questions both halves ask of it (which members are pending, how many
are placed); the one side effect here is the Event a change of phase posts on every member.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from extender.core import gang, model
from extender.service.ports import Cancellable, Notifier

RESERVATION_PREFIX = "gang/"


class Phase(enum.StrEnum):
    WAITING = "Waiting"
    UNPLACEABLE = "Unplaceable"
    PLANNED = "Planned"
    BOUND = "Bound"
    BACKING_OFF = "BackingOff"


def reservation_key(uid: str) -> str:
    return RESERVATION_PREFIX + uid


@dataclass(eq=False)
class Group:
    key: gang.GroupKey
    first_seen: float
    policy: gang.Policy = field(default_factory=gang.Policy)
    members: dict[str, model.Pod] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    """Members bound or being bound (``ClusterState.bound_node``), kept as that changes."""
    plan: dict[str, str] = field(default_factory=dict)
    domain: str = ""
    gate: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    deadline: float = 0.0
    timer: Cancellable | None = None
    attempts: int = 0
    backoff_until: float = 0.0
    phase: Phase | None = None
    reason: str = ""
    quorum_at: float = 0.0

    @property
    def priority(self) -> int:
        return max((p.priority for p in self.members.values()), default=0)

    @property
    def created(self) -> float:
        return min((p.created for p in self.members.values()), default=0.0)

    def pending(self) -> list[model.Pod]:
        """Members neither bound nor being bound."""
        return [p for uid, p in self.members.items() if uid not in self.bound]

    def placed(self) -> int:
        """How many members are bound, being bound, or planned."""
        return len(self.bound | self.plan.keys())

    def set_phase(self, phase: Phase, reason: str, *, notifier: Notifier) -> None:
        """Record the group's state; a change of phase is an Event on every member (a new
        reason within the same phase, like a growing member count, is not)."""
        changed = self.phase is not phase
        self.phase, self.reason = phase, reason
        if not changed:
            return
        warning = phase in (Phase.UNPLACEABLE, Phase.BACKING_OFF)
        event = f"Gang{phase.value}"
        for pod in list(self.members.values()):
            notifier.event(pod, reason=event, message=reason, warning=warning)
