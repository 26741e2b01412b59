"""Property: Kueue objects with any field mutated (any YAML value, in any place, keys removed
or added) either load or raise ``ConfigError`` in one line, never another exception.  The
strategies are in tests/builders.py: they also feed the file-level properties in
tests/test_queuefile.py."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.core import kueue
from tests.builders import KUEUE_DOCUMENTS as DOCUMENTS
from tests.builders import KUEUE_KEYS as KNOWN_KEYS
from tests.builders import mutated_kueue_documents as mutated_documents
from tests.builders import yaml_values as values


def _loads_or_refuses(documents: list[Any]) -> kueue.QueueConfig | None:
    try:
        return kueue.parse(documents)
    except kueue.ConfigError as exc:
        assert "\n" not in str(exc)
        return None


def test_the_unmutated_documents_load():
    config = kueue.parse(copy.deepcopy(DOCUMENTS))
    assert config.local_queues[("team-a", "user-queue")].cluster_queue == "team-a"
    assert config.wait_for_pods_ready.backoff_limit == 5
    assert "nominalQuota" in KNOWN_KEYS and "backoffLimitCount" in KNOWN_KEYS


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_mutated_documents_load_or_raise_config_error(documents: list[Any]):
    _loads_or_refuses(documents)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=4))
def test_any_documents_load_or_raise_config_error(documents: list[Any]):
    _loads_or_refuses(documents)


def test_values_python_cannot_print_are_refused_in_one_line():
    documents = copy.deepcopy(DOCUMENTS)
    documents[3]["value"] = 10**5000
    documents[1]["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"] = [
        datetime.date(2001, 1, 1),
        {None: 10**5000},
    ]
    assert _loads_or_refuses(documents) is None
