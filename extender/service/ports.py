"""The service's ports (what it needs from the outside world) and the values it hands out."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVarTuple

from extender.core import gang, model


class Binder(Protocol):
    """Creates the ``pods/binding`` of a pod; raises on failure."""

    async def bind(self, pod: model.Pod, node_name: str) -> None: ...


class Evictor(Protocol):
    """Evicts a pod through the Eviction API (preemption, draining); raises on failure."""

    async def evict(self, pod: model.Pod, *, reason: str) -> None: ...


class Notifier(Protocol):
    """Tells the cluster what happened; fire-and-forget, never raises, never blocks."""

    def event(self, pod: model.Pod, *, reason: str, message: str, warning: bool = False) -> None:
        """Record a Kubernetes Event on the pod (``kubectl describe pod`` shows it)."""

    def nudge(self, pods: Sequence[model.Pod]) -> None:
        """Touch the pods (an annotation patch) so kube-scheduler retries them at once."""

    def annotate(self, pod: model.Pod, annotations: Mapping[str, str]) -> None:
        """Set annotations on the pod (an empty value removes one): state that must outlive
        the process."""


class GangView(Protocol):
    """What queue admission reads of the pod groups (``service.gangs`` keeps them)."""

    def policy(self, key: gang.GroupKey) -> gang.Policy | None:
        """The group's policy (None: no member of it seen yet)."""

    def workload(self, namespace: str, name: str) -> gang.Workload | None:
        """The Workload object of that name, if it exists."""


class Placement(Protocol):
    """What gang planning asks quota admission before it places members."""

    def may_place(self, pod: model.Pod) -> bool:
        """Whether the pod may take capacity yet: it bypasses quota, or it is admitted."""

    def constrain(self, pod: model.Pod) -> model.Pod:
        """The pod as placement must see it: with its admitted flavor's node labels."""


class QuietNotifier:
    """A notifier for clusters nobody watches (the simulation): it only counts."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.nudged = 0
        self.annotated = 0

    def event(self, pod: model.Pod, *, reason: str, message: str, warning: bool = False) -> None:
        if len(self.events) < 10000:
            self.events.append((pod.key, reason, message))

    def nudge(self, pods: Sequence[model.Pod]) -> None:
        self.nudged += len(pods)

    def annotate(self, pod: model.Pod, annotations: Mapping[str, str]) -> None:
        self.annotated += 1


Clock = Callable[[], float]

Ts = TypeVarTuple("Ts")


class Cancellable(Protocol):
    """Deferred work not run yet (or still running): an asyncio ``TimerHandle`` or ``Task``
    fits, so do the manual clock's handles."""

    def cancel(self) -> object: ...

    def cancelled(self) -> bool: ...


class Timers(Protocol):
    """The one owner of the service's deferred work: callbacks after a delay or soon, and
    coroutines run as tasks.  Everything it hands out is tracked until it ran, and ``close``
    cancels what is still pending, so nothing outlives the service.

    ``LoopTimers`` (``extender.service.timers``) runs the work on the running asyncio loop;
    work asked for while no loop runs yet (the service is built before the server starts)
    waits for ``start``.  Tests use a manual clock instead (``tests/fakes.py``: ``ManualTimers``).
    Callbacks run on the loop, never concurrently with other service code, so they may
    change state freely.
    """

    def later(self, delay: float, callback: Callable[[*Ts], object], *args: *Ts) -> Cancellable:
        """Run ``callback(*args)`` once, ``delay`` seconds from now (at once if <= 0)."""

    def soon(self, callback: Callable[[*Ts], object], *args: *Ts) -> Cancellable:
        """Run ``callback(*args)`` once the code running now has returned (the loop's next
        turn), without waiting for any time to pass."""

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str = "") -> Cancellable:
        """Run ``work`` as a task of its own."""

    def start(self) -> None:
        """Called once from inside the running loop (the app's startup): the work asked for
        while no loop ran starts now, its delays counted from when it was asked for."""

    def close(self) -> None:
        """Cancel every pending callback and task; from then on nothing new is started
        (a coroutine given to ``spawn`` is closed unrun).  Synchronous, as cancelling is:
        the cancelled tasks unwind on the loop's next turns, and the loop's own shutdown
        (aiohttp's ``run_app``, ``asyncio.run``) awaits them."""


class RequestError(ValueError):
    """A request that names things the extender cannot accept (answered with HTTP 400)."""


class NotReady(RuntimeError):
    """The cluster view has not synced yet."""


class ApiError(RuntimeError):
    """A Kubernetes API call that failed, with the API server's own message and the HTTP
    status (0: the server was not reached).  The subclasses are the statuses callers treat
    differently."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        """Worth trying again later: the server was unreachable, overloaded or failing, or a
        PodDisruptionBudget forbids an eviction for now."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class NotFound(ApiError):
    """HTTP 404: the object does not exist (it was deleted, or never was)."""


class Conflict(ApiError):
    """HTTP 409: the object changed or already exists (e.g. a pod bound already)."""


class TooManyRequests(ApiError):
    """HTTP 429: the server is throttling, or an eviction would violate a
    PodDisruptionBudget."""


def api_error(status: int, message: str) -> ApiError:
    """The typed error for an HTTP status."""
    kind = {404: NotFound, 409: Conflict, 429: TooManyRequests}.get(status, ApiError)
    return kind(message, status)


class BindError(RuntimeError):
    """A bind that was refused or failed; the message goes back to the scheduler."""


@dataclass(frozen=True, slots=True)
class Victims:
    """The pods preemption would evict on one node, by uid."""

    uids: tuple[str, ...]
    pdb_violations: int = 0
