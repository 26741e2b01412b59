"""What the service reads of a pod's status and scheduler: who schedules it, and whether a
scheduler already tried and failed (the pods to nudge after muster's view resyncs)."""

from __future__ import annotations

import pytest

from extender.core import objects
from tests import builders


def with_status(**status: object) -> dict[str, object]:
    raw = builders.make_pod("p", uid="u", cpu="1")
    raw["status"] = status
    return raw


@pytest.mark.parametrize(
    ("conditions", "unschedulable"),
    [
        ([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}], True),
        ([{"type": "PodScheduled", "status": "False", "reason": "SchedulerError"}], True),
        ([{"type": "PodScheduled", "status": "True"}], False),
        ([{"type": "Ready", "status": "False"}], False),
        ([], False),
    ],
)
def test_a_failed_scheduling_attempt_is_read_from_pod_scheduled(conditions, unschedulable):
    assert objects.to_pod(with_status(conditions=conditions)).unschedulable is unschedulable


@pytest.mark.parametrize("conditions", ["not a list", ["not an object"]])
def test_conditions_of_the_wrong_type_are_an_error(conditions):
    with pytest.raises(objects.ObjectError, match=r"pod\.status\.conditions"):
        objects.to_pod(with_status(conditions=conditions))


def test_the_scheduler_name_defaults_as_the_api_server_does():
    raw = builders.make_pod("p", uid="u", cpu="1")
    assert objects.to_pod(raw).scheduler_name == "default-scheduler"
    raw["spec"]["schedulerName"] = "muster"
    assert objects.to_pod(raw).scheduler_name == "muster"
