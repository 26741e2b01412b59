"""Workload lifecycle rules with an injected clock: backoff, the requeue limit, the maximum
execution time, and what is persisted."""

from __future__ import annotations

import pytest
import yaml

from extender.core import lifecycle, queues

DEFAULTS = lifecycle.WaitForPodsReady(enabled=True)


def test_backoff_doubles_from_sixty_seconds_up_to_an_hour():
    delays = [lifecycle.backoff(n, DEFAULTS) for n in range(1, 10)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_jitter_stretches_a_backoff_by_at_most_a_ten_thousandth():
    assert lifecycle.backoff(1, DEFAULTS, jitter=0.999) == pytest.approx(60 * 1.0000999)
    assert lifecycle.backoff(1, DEFAULTS, jitter=0.0) == 60


def test_each_timeout_requeues_later_until_the_limit_deactivates():
    policy = lifecycle.WaitForPodsReady(enabled=True, backoff_limit=2)
    state = lifecycle.RequeueState()
    now = 1000.0
    outcomes = []
    for _ in range(3):
        outcome = lifecycle.after_pods_ready_timeout(state, policy, now=now)
        outcomes.append(outcome)
        if isinstance(outcome, lifecycle.Requeue):
            state = outcome.state
    assert outcomes[0] == lifecycle.Requeue(lifecycle.RequeueState(1, now + 60))
    assert outcomes[1] == lifecycle.Requeue(lifecycle.RequeueState(2, now + 120))
    assert isinstance(outcomes[2], lifecycle.Deactivate)
    assert outcomes[2].reason is lifecycle.Reason.REQUEUING_LIMIT_EXCEEDED


def test_without_a_limit_requeues_never_stop():
    state = lifecycle.RequeueState(count=50)
    outcome = lifecycle.after_pods_ready_timeout(state, DEFAULTS, now=0.0)
    assert outcome == lifecycle.Requeue(lifecycle.RequeueState(51, 3600.0))


def test_execution_time_is_summed_over_admissions():
    # 40 s in an earlier admission, 25 s in this one: past a 60 s limit.
    assert lifecycle.exceeds_max_execution(60, accumulated=40, admitted_at=100, now=125)
    assert not lifecycle.exceeds_max_execution(60, accumulated=40, admitted_at=100, now=119)
    assert not lifecycle.exceeds_max_execution(None, accumulated=1e9, admitted_at=0, now=1e9)
    assert lifecycle.max_execution_seconds({lifecycle.MAX_EXEC_LABEL: "3600"}) == 3600
    assert lifecycle.max_execution_seconds({lifecycle.MAX_EXEC_LABEL: "soon"}) is None
    assert lifecycle.max_execution_seconds({}) is None


def test_persisted_state_survives_a_round_trip_through_annotations():
    record = lifecycle.Record("gang/ns/train/main", "ns")
    record.requeue = lifecycle.RequeueState(3, 1234.5)
    record.accumulated = 42.25
    record.active = False
    record.deactivation = "RequeuingLimitExceeded: requeued 3 time(s)"
    annotations = record.persisted()
    assert annotations[lifecycle.ACTIVE_ANNOTATION] == "false"
    restored = lifecycle.Record("gang/ns/train/main", "ns")
    restored.restore(annotations)
    assert restored.requeue == record.requeue
    assert restored.accumulated == 42.25
    assert restored.deactivation == record.deactivation
    assert not lifecycle.is_active(annotations)


def test_conditions_change_time_only_when_they_change():
    record = lifecycle.Record("pod/ns/p", "ns")
    assert record.condition("Admitted", True, "Admitted", "", now=1.0)
    assert not record.condition("Admitted", True, "Admitted", "", now=2.0)
    assert record.conditions["Admitted"].time == 1.0
    assert record.condition("Admitted", False, "Preempted", "x", now=3.0)


def test_kueue_configuration_sets_wait_for_pods_ready():
    config = queues.parse(
        yaml.safe_load_all("""\
apiVersion: config.kueue.x-k8s.io/v1beta1
kind: Configuration
waitForPodsReady:
  enable: true
  timeout: 2m30s
  recoveryTimeout: 90s
  requeuingStrategy:
    timestamp: Eviction
    backoffLimitCount: 5
    backoffBaseSeconds: 10
    backoffMaxSeconds: 600
""")
    )
    assert config.wait_for_pods_ready == lifecycle.WaitForPodsReady(
        enabled=True,
        timeout=150,
        recovery_timeout=90,
        backoff_base=10,
        backoff_max=600,
        backoff_limit=5,
    )
    with pytest.raises(queues.ConfigError, match="waitForPodsReady.timeout: 'soon' is not"):
        queues.parse(
            [
                {
                    "apiVersion": "config.kueue.x-k8s.io/v1beta1",
                    "kind": "Configuration",
                    "waitForPodsReady": {"timeout": "soon"},
                }
            ]
        )
