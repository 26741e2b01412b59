"""Workload lifecycle rules with an injected clock: backoff, the requeue limit, the maximum
execution time, and what is persisted."""

from __future__ import annotations

import pytest
import yaml

from extender.core import kueue, lifecycle

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
    config = kueue.parse(
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
    with pytest.raises(kueue.ConfigError, match="waitForPodsReady.timeout: 'soon' is not"):
        kueue.parse(
            [
                {
                    "apiVersion": "config.kueue.x-k8s.io/v1beta1",
                    "kind": "Configuration",
                    "waitForPodsReady": {"timeout": "soon"},
                }
            ]
        )


WAIT_FOR_PODS_READY = """\
apiVersion: config.kueue.x-k8s.io/v1beta1
kind: Configuration
waitForPodsReady:
  enable: true
  timeout: 2m30s
  recoveryTimeout: 90s
  requeuingStrategy: {backoffLimitCount: 5, backoffBaseSeconds: 10, backoffMaxSeconds: 600}
"""
AT = "Configuration: waitForPodsReady"
STRATEGY = f"{AT}.requeuingStrategy"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "backoffLimitCount: 5",
            "backoffLimitCount: .inf",
            f"{STRATEGY}.backoffLimitCount: must be an integer, got '.inf'",
        ),
        (
            "backoffLimitCount: 5",
            "backoffLimitCount: .nan",
            f"{STRATEGY}.backoffLimitCount: must be an integer, got '.nan'",
        ),
        (
            "backoffLimitCount: 5",
            "backoffLimitCount: 1.5",
            f"{STRATEGY}.backoffLimitCount: must be an integer, got 1.5",
        ),
        (
            "backoffLimitCount: 5",
            "backoffLimitCount: -1",
            f"{STRATEGY}.backoffLimitCount: must be an integer from 0 to 2147483647",
        ),
        (
            "backoffLimitCount: 5",
            "backoffLimitCount: 99999999999",
            f"{STRATEGY}.backoffLimitCount: must be an integer from 0 to 2147483647",
        ),
        (
            "backoffLimitCount: 5",
            "backoffLimitCount: five",
            f"{STRATEGY}.backoffLimitCount: must be an integer, got 'five'",
        ),
        (
            "backoffBaseSeconds: 10",
            "backoffBaseSeconds: .nan",
            f"{STRATEGY}.backoffBaseSeconds: must be a number from 0 to 2147483647, got '.nan'",
        ),
        (
            "backoffBaseSeconds: 10",
            "backoffBaseSeconds: .inf",
            f"{STRATEGY}.backoffBaseSeconds: must be a number from 0 to 2147483647, got '.inf'",
        ),
        (
            "backoffBaseSeconds: 10",
            "backoffBaseSeconds: -1",
            f"{STRATEGY}.backoffBaseSeconds: must be a number from 0 to 2147483647, got -1",
        ),
        (
            "backoffBaseSeconds: 10",
            "backoffBaseSeconds: 1.0e+10",
            f"{STRATEGY}.backoffBaseSeconds: must be a number",
        ),
        (
            "backoffBaseSeconds: 10",
            "backoffBaseSeconds: [10]",
            f"{STRATEGY}.backoffBaseSeconds: must be a number",
        ),
        (
            "backoffMaxSeconds: 600",
            "backoffMaxSeconds: .nan",
            f"{STRATEGY}.backoffMaxSeconds: must be a number",
        ),
        (
            "backoffMaxSeconds: 600",
            "backoffMaxSeconds: -.inf",
            f"{STRATEGY}.backoffMaxSeconds: must be a number",
        ),
        (
            "timeout: 2m30s",
            "timeout: .inf",
            f"{AT}.timeout: '.inf' is not a duration from 0s to 292 years",
        ),
        (
            "timeout: 2m30s",
            "timeout: .nan",
            f"{AT}.timeout: '.nan' is not a duration from 0s to 292 years",
        ),
        (
            "timeout: 2m30s",
            "timeout: -5",
            f"{AT}.timeout: -5 is not a duration from 0s to 292 years",
        ),
        ("timeout: 2m30s", "timeout: " + "9" * 400 + "h", f"{AT}.timeout: '999"),
        ("timeout: 2m30s", "timeout: " + "9" * 400, f"{AT}.timeout: 999"),
        (
            "timeout: 2m30s",
            "timeout: [2m30s]",
            f"{AT}.timeout: ['2m30s'] is not a duration such as 5m",
        ),
        ("timeout: 2m30s", "timeout: null", f"{AT}.timeout: None is not a duration such as 5m"),
        (
            "recoveryTimeout: 90s",
            "recoveryTimeout: .nan",
            f"{AT}.recoveryTimeout: '.nan' is not a duration",
        ),
        (
            "recoveryTimeout: 90s",
            "recoveryTimeout: 1.0e+300",
            f"{AT}.recoveryTimeout: 1e+300 is not a duration",
        ),
        (
            "  requeuingStrategy: {",
            "  requeuingStrategy: [{",
            f"{AT}.requeuingStrategy: must be an object",
        ),
        ("enable: true", "enable: 1", f"{AT}.enable: must be true or false"),
    ],
    ids=[
        "an infinite backoff limit",
        "a NaN backoff limit",
        "a fractional backoff limit",
        "a negative backoff limit",
        "a backoff limit past int32",
        "a word for the backoff limit",
        "a NaN backoff base",
        "an infinite backoff base",
        "a negative backoff base",
        "a backoff base past int32",
        "a list for the backoff base",
        "a NaN backoff maximum",
        "a negative infinite backoff maximum",
        "an infinite timeout",
        "a NaN timeout",
        "a negative timeout",
        "a timeout of more hours than a float holds",
        "a timeout of more seconds than a float holds",
        "a list for the timeout",
        "a null timeout",
        "a NaN recovery timeout",
        "a recovery timeout past Go's longest duration",
        "a list for the requeuing strategy",
        "a number for enable",
    ],
)
def test_wait_for_pods_ready_numbers_are_validated_where_they_are_read(old, new, message):
    text = WAIT_FOR_PODS_READY.replace(old, new, 1)
    if new.startswith("  requeuingStrategy: [{"):
        text = text.rstrip("\n") + "]\n"
    assert old in WAIT_FOR_PODS_READY
    with pytest.raises(kueue.ConfigError) as caught:
        kueue.parse(yaml.safe_load_all(text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_fractional_backoff_seconds_are_accepted():
    text = WAIT_FOR_PODS_READY.replace("backoffBaseSeconds: 10", "backoffBaseSeconds: 0.2")
    policy = kueue.parse(yaml.safe_load_all(text)).wait_for_pods_ready
    assert (policy.backoff_base, policy.backoff_max, policy.backoff_limit) == (0.2, 600, 5)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e9999", "-5", "1e300", "lots"])
def test_a_persisted_number_edited_by_hand_reads_as_zero_never_raises(value):
    """The annotations are on pods anyone may edit; the watch restores from them."""
    record = lifecycle.Record("pod/ns/p", "ns")
    record.restore(
        {
            lifecycle.REQUEUE_COUNT_ANNOTATION: value,
            lifecycle.REQUEUE_AT_ANNOTATION: value,
            lifecycle.ACCUMULATED_ANNOTATION: value,
        }
    )
    assert record.requeue.count == 0 and record.accumulated == 0.0


def test_backoff_of_a_huge_requeue_count_is_the_cap_not_an_overflow():
    policy = lifecycle.WaitForPodsReady(enabled=True)
    assert lifecycle.backoff(2**40, policy) == policy.backoff_max
