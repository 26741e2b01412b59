"""Gang scheduling through the real kube-scheduler 1.20.2: whole gangs or nothing, a late last
member, a gang that times out and lets go of everything, and a restart of muster while a gang
waits at its bind gate.

Membership both ways: labels ``muster.dev/workload`` + ``muster.dev/pod-group`` with the
annotation ``muster.dev/min-count``, and a ``muster.dev`` Workload object (the project's CRD,
installed by the ``muster`` fixture before muster starts).

"Bound" means the pod has ``spec.nodeName``. Kubernetes has no multi-pod binding: muster opens
a gang's gate when every member reached bind and then creates the 8 bindings concurrently, so
a LIST can land between them. Every check below therefore allows a gang to be partly bound
only inside that burst (a few hundred ms), never while muster waits, and never at the end.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import controlplane
import harness
import pytest
from controlplane import ControlPlane, wait_until
from harness import Extender, NodeSet, PodSampler, create, delete_pods, events, placements, pod

pytestmark = pytest.mark.e2e

GANG = 8
BURST_SECONDS = 1.5
"""Longest time a gang may be seen partly bound: the spread of its 8 concurrent bindings."""


def gang_pod(
    name: str,
    gang: str,
    selector: Mapping[str, str],
    *,
    min_count: int | None = GANG,
    timeout: float | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A member by labels; ``min_count=None`` leaves minCount to the Workload object."""
    annotations = {}
    if min_count is not None:
        annotations["muster.dev/min-count"] = str(min_count)
    if timeout is not None:
        annotations["muster.dev/gang-timeout-seconds"] = str(timeout)
    return pod(
        name,
        selector,
        cpu="1",
        labels={"muster.dev/workload": gang, "muster.dev/pod-group": "workers"},
        annotations=annotations,
        **spec,
    )


def workload(name: str, min_count: int) -> dict[str, Any]:
    return {
        "apiVersion": "muster.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": name},
        "spec": {"podGroups": [{"name": "workers", "policy": {"gang": {"minCount": min_count}}}]},
    }


def members(gang: str) -> list[str]:
    return [f"{gang}-{i}" for i in range(GANG)]


def bound_count(sample: Mapping[str, str], gang: str) -> int:
    return sum(1 for name in members(gang) if sample.get(name))


def assert_never_partly_bound(
    samples: list[tuple[float, dict[str, str]]], gangs: list[str]
) -> None:
    """Each gang goes from 0 to 8 bound members in one burst, never backwards, and is never
    seen partly bound for longer than the burst or in the last sample."""
    assert samples, "no samples"
    for gang in gangs:
        counts = [(t, bound_count(s, gang)) for t, s in samples]
        for (_, before), (t, after) in zip(counts, counts[1:], strict=False):
            assert after >= before, f"gang {gang} lost bound members at {t:.2f}"
        partial = [t for t, c in counts if 0 < c < GANG]
        if partial:
            assert partial[-1] - partial[0] <= BURST_SECONDS, (
                f"gang {gang} partly bound for {partial[-1] - partial[0]:.2f}s: "
                f"{[(round(t - samples[0][0], 2), c) for t, c in counts if 0 < c < GANG]}"
            )
        assert counts[-1][1] in (0, GANG), f"gang {gang} ended partly bound: {counts[-1][1]}"


def assert_gate_held(ext: Extender, sampler: PodSampler, gang: str, mark: int) -> None:
    """muster's gate: no member's bind call was answered, and no member was bound, before the
    last member's bind call reached muster."""
    calls = []
    for name in members(gang):
        answered = ext.proxy.for_pod(name, "bind", mark, answered=True)
        assert answered, f"{name} never reached bind"
        calls.append(answered[-1])
    last_arrival = max(c.started for c in calls)
    assert min(c.finished for c in calls) >= last_arrival, (
        f"gang {gang}: a bind call returned early"
    )
    first_bound = next(t for t, s in sampler.samples if bound_count(s, gang))
    assert first_bound > last_arrival, (
        f"gang {gang}: a member was seen bound {last_arrival - first_bound:.3f}s before the last "
        f"member reached bind"
    )


def muster_events(cp: ControlPlane, namespace: str, name: str, reason: str) -> list[str]:
    return [
        e.get("message") or ""
        for e in events(cp, namespace, name, reason)
        if (e.get("source") or {}).get("component") == "muster"
    ]


def wait_all_bound(cp: ControlPlane, namespace: str, names: list[str], timeout: float) -> None:
    wait_until(
        lambda: all(placements(cp, namespace).get(n) for n in names),
        timeout,
        0.05,
        f"{names} bound",
    )


# -----------------------------------------------------------------------------------------------


def test_gangs_are_bound_whole_or_not_at_all_when_only_some_fit(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    """Three gangs of 8 x 1 cpu on 16 cpu: two are bound whole, the third holds nothing and
    says why; when a bound gang leaves, the third is bound whole."""
    cp, ns = extender.cp, e2e_namespace
    for suffix in "abcd":
        nodes.add(suffix, cpu="4")
    harness.wait_muster_sees_nodes(cp, extender.muster)
    cp.apply(workload("beta", GANG), "-n", ns)
    gangs = ["alpha", "beta", "gamma"]
    mark = extender.proxy.mark()

    with PodSampler(cp, ns) as sampler:
        for i in range(GANG):  # interleaved, as three Jobs would create them
            for gang in gangs:
                by_workload = gang == "beta"  # minCount from the Workload object
                create(
                    cp,
                    ns,
                    gang_pod(
                        f"{gang}-{i}", gang, nodes.selector, min_count=None if by_workload else GANG
                    ),
                )
        wait_until(
            lambda: sum(bound_count(placements(cp, ns), g) for g in gangs) == 2 * GANG,
            60,
            0.1,
            "two whole gangs bound",
        )
        time.sleep(2)  # and nothing more happens
    assert not sampler.errors
    assert_never_partly_bound(sampler.samples, gangs)
    final = placements(cp, ns)
    whole = [g for g in gangs if bound_count(final, g) == GANG]
    (left_out,) = [g for g in gangs if bound_count(final, g) == 0]
    assert len(whole) == 2
    for gang in whole:
        assert_gate_held(extender, sampler, gang, mark)
        assert muster_events(cp, ns, f"{gang}-0", "GangBound")
    unplaceable = muster_events(cp, ns, f"{left_out}-0", "GangUnplaceable")
    assert any(f"{ns}/{left_out}/workers" in m for m in unplaceable), unplaceable

    # A bound gang leaves: its capacity goes to the gang that was left out, whole.
    mark = extender.proxy.mark()
    with PodSampler(cp, ns) as sampler:
        delete_pods(cp, ns, members(whole[0]))
        wait_all_bound(cp, ns, members(left_out), 30)
        time.sleep(0.5)
    assert_never_partly_bound(sampler.samples, [left_out, whole[1]])
    assert_gate_held(extender, sampler, left_out, mark)


def test_a_gang_whose_last_member_arrives_late_is_bound_within_two_seconds_of_it(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    cp, ns = extender.cp, e2e_namespace
    _two_nodes(cp, extender.muster, nodes)
    mark = extender.proxy.mark()
    names = members("late")

    with PodSampler(cp, ns) as sampler:
        for name in names[:-1]:
            create(cp, ns, gang_pod(name, "late", nodes.selector))
        # Muster turns the 7 away until the 8th exists: nothing is bound or reaches bind.
        wait_until(
            lambda: all(
                extender.proxy.for_pod(n, "filter", mark, answered=True) for n in names[:-1]
            ),
            30,
            0.1,
            "a filter call for each early member",
        )
        time.sleep(3)
        assert not any(placements(cp, ns).values())
        assert not extender.proxy.since(mark, "bind")
        waiting = re.compile(rf"waiting for gang {ns}/late/workers: (\d)/8 pods")
        counts = set()
        for name in names[:-1]:
            for call in extender.proxy.for_pod(name, "filter", mark, answered=True):
                assert call.reply["NodeNames"] == []
                for reason in call.reply["FailedAndUnresolvableNodes"].values():
                    match = waiting.fullmatch(reason)
                    assert match, reason
                    counts.add(int(match[1]))
        assert max(counts) == 7, counts

        create(cp, ns, gang_pod(names[-1], "late", nodes.selector))
        arrived = time.monotonic()
        wait_all_bound(cp, ns, names, 30)
        took = time.monotonic() - arrived
        time.sleep(0.3)
    assert took <= 2.0, f"the gang was bound {took:.2f}s after its last member arrived"
    assert_never_partly_bound(sampler.samples, ["late"])
    assert_gate_held(extender, sampler, "late", mark)


def _blocked_member(name: str, gang: str, selector: Mapping[str, str], timeout: float) -> Any:
    """A member that can never reach bind: its volume's claim does not exist, so the in-tree
    VolumeBinding filter turns it away before muster is asked."""
    return gang_pod(
        name,
        gang,
        selector,
        timeout=timeout,
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "missing"}}],
    )


def _two_nodes(cp: ControlPlane, muster: harness.MusterProcess, nodes: NodeSet) -> None:
    """Nodes a and b of 4 cpu each, once muster's view has them."""
    nodes.add("a", cpu="4")
    nodes.add("b", cpu="4")
    harness.wait_muster_sees_nodes(cp, muster)


def _hold_gate(ext: Extender, ns: str, nodes: NodeSet, gang: str, timeout: float) -> int:
    """Create a gang of 8 x 1 cpu (on 8 cpu) whose last member is blocked; wait until the other
    7 wait at muster's bind gate. Returns the proxy mark before the gang."""
    mark = ext.proxy.mark()
    names = members(gang)
    # The blocked member first: the last of the others to be filtered completes the gang.
    create(ext.cp, ns, _blocked_member(names[-1], gang, nodes.selector, timeout))
    for name in names[:-1]:
        create(ext.cp, ns, gang_pod(name, gang, nodes.selector, timeout=timeout))
    wait_until(
        lambda: all(ext.proxy.for_pod(n, "bind", mark) for n in names[:-1]),
        30,
        0.1,
        "7 members waiting at bind",
    )
    return mark


def test_an_unsatisfiable_gang_times_out_at_its_deadline_and_releases_everything(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    cp, ns = extender.cp, e2e_namespace
    _two_nodes(cp, extender.muster, nodes)
    names = members("stuck")

    with PodSampler(cp, ns) as sampler:
        mark = _hold_gate(extender, ns, nodes, "stuck", timeout=5)
        binds = [extender.proxy.for_pod(n, "bind", mark)[0] for n in names[:-1]]
        first = min(c.started for c in binds)
        # While the gang holds its 8 cpu (7 assumed at bind, 1 reserved for the blocked
        # member), a plain pod that needs one of them is turned away by muster.
        create(cp, ns, pod("during-hold", nodes.selector, cpu="1"))
        reply = _filter_reply(extender, "during-hold", mark)
        assert reply["NodeNames"] == [] and set(reply["FailedNodes"].values()) == {
            "Insufficient cpu"
        }
        wait_until(lambda: all(c.finished for c in binds), 20, 0.1, "the bind calls answered")
        time.sleep(0.5)
    # The deadline counts from the first member's bind call.
    answered = [c.finished - first for c in binds]
    assert all(4.5 <= t <= 8.0 for t in answered), answered
    for call in binds:
        assert call.status == 200 and "timed out after 5s" in call.reply["Error"]
    assert all(bound_count(s, "stuck") == 0 for _, s in sampler.samples)
    # Both kinds of Event are posted asynchronously.
    wait_until(
        lambda: any(
            "timed out after 5s: 7/8 planned member(s) reached bind" in m
            for m in muster_events(cp, ns, names[0], "GangBackingOff")
        ),
        10,
        0.2,
        "muster's GangBackingOff event",
    )
    # 1.20 prefixes the extender's error with "binding rejected: "; 1.36 posts it as it is.
    prefix = "binding rejected: " if controlplane.LEGACY else "gang "
    wait_until(
        lambda: any(
            m.startswith(prefix) and "timed out after 5s" in m
            for m in harness.messages(cp, ns, names[0], "FailedScheduling")
        ),
        10,
        0.2,
        "the scheduler's binding-rejected event",
    )

    # Everything is released: a pod that needs a whole node fits at once (the gang backs off
    # for 10 s before it is planned again).
    create(cp, ns, pod("after-release", nodes.selector, cpu="4"))
    wait_all_bound(cp, ns, ["after-release"], 5)


def _filter_reply(extender: Extender, name: str, mark: int) -> dict[str, Any]:
    """muster's answer to the first filter call for pod ``name`` after ``mark``."""
    calls = wait_until(
        lambda: extender.proxy.for_pod(name, "filter", mark, answered=True),
        20,
        0.1,
        f"a filter call for {name}",
    )
    return calls[-1].reply


def test_a_pod_turned_away_by_a_gang_reservation_is_retried_when_the_gang_times_out(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    cp, ns = extender.cp, e2e_namespace
    _two_nodes(cp, extender.muster, nodes)
    mark = _hold_gate(extender, ns, nodes, "held", timeout=4)
    create(cp, ns, pod("turned-away", nodes.selector, cpu="1"))
    reply = _filter_reply(extender, "turned-away", mark)
    assert reply["NodeNames"] == [] and "Insufficient cpu" in reply["FailedNodes"].values()
    assert placements(cp, ns)["turned-away"] == ""  # while the gang holds the room
    binds = [extender.proxy.for_pod(n, "bind", mark)[0] for n in members("held")[:-1]]
    wait_until(lambda: all(c.finished for c in binds), 20, 0.1, "the gang's deadline")
    released = time.monotonic()
    wait_until(
        lambda: placements(cp, ns)["turned-away"], 5, 0.1, "turned-away bound after the release"
    )
    assert time.monotonic() - released <= 5


def test_a_member_replaced_while_the_others_wait_at_bind_completes_the_gang(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    """A Job replaces a member that can never be placed; the 7 others already wait at the
    gate. The gang should be bound as soon as the replacement reaches bind."""
    cp, ns = extender.cp, e2e_namespace
    _two_nodes(cp, extender.muster, nodes)
    names = members("replaced")
    _hold_gate(extender, ns, nodes, "replaced", timeout=20)
    delete_pods(cp, ns, [names[-1]])
    create(cp, ns, gang_pod("replaced-8", "replaced", nodes.selector, timeout=20))
    wait_all_bound(cp, ns, [*names[:-1], "replaced-8"], 5)


def test_after_an_extender_restart_a_half_arrived_gang_is_never_partly_bound(
    extender: Extender, e2e_namespace: str, nodes: NodeSet
) -> None:
    """muster is killed while 7 members wait at its bind gate. Their bind calls fail, the new
    muster rebuilds the group from the pods it lists, and binds no member on its own; when a
    good 8th member replaces the blocked one, the gang is bound whole."""
    cp, ns, muster = extender.cp, e2e_namespace, extender.muster
    _two_nodes(cp, muster, nodes)
    names = members("restart")

    with PodSampler(cp, ns) as sampler:
        mark = _hold_gate(extender, ns, nodes, "restart", timeout=60)
        binds = [extender.proxy.for_pod(n, "bind", mark)[0] for n in names[:-1]]
        muster.kill()
        wait_until(lambda: all(c.finished for c in binds), 10, 0.1, "the bind calls cut off")
        assert {c.status for c in binds} == {502}
        muster.start()
        time.sleep(3)  # the restarted muster has the group, with 8 members, none bound
        assert not any(placements(cp, ns).values())

        replacement = "restart-8"
        delete_pods(cp, ns, [names[-1]])
        create(cp, ns, gang_pod(replacement, "restart", nodes.selector, timeout=60))
        arrived = time.monotonic()
        wait_all_bound(cp, ns, [*names[:-1], replacement], 30)
        took = time.monotonic() - arrived
        time.sleep(0.3)
    # members() names restart-0..7; the 8th is now restart-8: put it in the blocked one's slot.
    renamed = [
        (t, {**{k: v for k, v in s.items() if k != replacement}, names[-1]: s.get(replacement, "")})
        for t, s in sampler.samples
    ]
    assert_never_partly_bound(renamed, ["restart"])
    assert bound_count(renamed[-1][1], "restart") == GANG
    assert took <= 5.0, f"bound {took:.2f}s after the replacement arrived"
