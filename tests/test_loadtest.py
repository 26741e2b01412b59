"""Smoke test of the load test (loadtest/run.py): every quick scenario on a tiny simulated
cluster, each against its own ``muster serve`` subprocess, must bind its pods without errors and
report the documented JSON keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadtest import workloads

pytestmark = pytest.mark.slow  # muster serve subprocesses: about 25 s in all

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "loadtest" / "run.py"
KEYS = (
    "pods_per_second",
    "pods_per_second_p50",
    "pods_per_second_p90",
    "pods_per_second_p99",
    "filter_ms_p50",
    "filter_ms_p99",
    "prioritize_ms_p99",
    "bind_ms_p99",
    "errors",
    "rss_mb",
    "cpu_ms_per_pod",
    "cache_hit_ratio",
)


def run(*args: str, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quiet", "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    doc = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, doc, proc.stdout + proc.stderr


def test_every_scenario_binds_its_pods_without_errors(tmp_path: Path) -> None:
    code, doc, text = run(
        "--scenario", "all", "--nodes", "50", "--pods", "100", "--gangs", "10",
        "--gang-size", "3", tmp_path=tmp_path,
    )  # fmt: skip
    assert code == 0, text
    scenarios = doc["scenarios"]
    assert set(scenarios) == set(workloads.SCENARIOS)
    for name, figures in scenarios.items():
        for key in KEYS:
            assert key in figures, (name, key)
        assert figures["errors"] == 0, (name, text)
        assert figures["pods_bound"] > 0, name
        assert figures["pods_per_second"] > 0, name
        assert figures["rss_mb"] > 0, name
    # 50 nodes hold 50 one-per-node pods; the others fit wherever they are offered
    assert scenarios["identical"]["pods_bound"] == 50
    assert scenarios["alternating"]["pods_bound"] == 50
    assert scenarios["distinct"]["pods_bound"] == 100
    assert scenarios["churn"]["pods_bound"] == 90
    assert scenarios["churn"]["pods_unschedulable"] == 10
    for name, gangs in (("gangs", 10), ("large-gang", 1)):
        figures = scenarios[name]
        assert figures["gangs_done"] == gangs, (name, text)
        assert figures["pods_bound"] == gangs * 3
        assert figures["gang_plans"] >= gangs
        assert figures["gang_plan_ms_avg"] > 0
    full = scenarios["full-nodes"]
    assert full["runs"]["nodes"]["payload"] == "nodes"
    assert full["runs"]["nodes"]["pods_bound"] == 100
    assert "nodes_vs_names" in full["ratios"]
    # Identical pods reuse verdicts: each lookup judges again only the node that the previous
    # pod filled (a partial hit), not the ~50 nodes offered.
    identical = scenarios["identical"]
    assert identical["cache_reuse_ratio"] > 0.9, "identical pods reuse verdicts"
    assert identical["cache_rechecked_nodes"] / identical["cache_lookups"] < 5


def test_compare_runs_cache_on_and_off(tmp_path: Path) -> None:
    code, doc, text = run(
        "--scenario", "identical", "--nodes", "50", "--pods", "60", "--compare",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert code == 0, text
    assert set(doc["runs"]) == {"cache-on", "cache-off"}
    assert doc["runs"]["cache-off"]["cache_lookups"] == 0
    ratios = doc["ratios"]["cache-off_vs_cache-on"]
    assert ratios["cpu_ms_per_pod_cache_off_over_cache_on"] is not None
    assert "pods_per_second_cache_on_over_cache_off" in ratios


def test_queue_mix_admits_what_the_quota_covers(tmp_path: Path) -> None:
    code, doc, text = run(
        "--scenario", "queue-mix", "--nodes", "50", "--pods", "90", tmp_path=tmp_path
    )  # fmt: skip
    assert code == 0, text
    # The queues' quota covers 80 % of the pods' cpu: the rest waits for quota, with why.
    assert 0 < doc["pods_unschedulable"] < 90 * 0.5, text
    assert doc["pods_bound"] + doc["pods_unschedulable"] == 90
    assert doc["queue_cycles"] > 0 and doc["queue_cycle_ms_avg"] > 0


def test_only_loopback_targets(tmp_path: Path) -> None:
    code, _, text = run("--target", "http://10.0.0.1:8888", "--nodes", "50", tmp_path=tmp_path)
    assert code != 0
    assert "only loopback" in text


def test_a_captured_pod_is_the_template(tmp_path: Path) -> None:
    captured = {
        "Pod": {
            "metadata": {
                "name": "web-1",
                "namespace": "shop",
                "uid": "u",
                "labels": {"a": "b", "muster.dev/workload": "train"},
                "annotations": {"muster.dev/min-count": "3"},
            },
            "spec": {
                "nodeName": "",
                "containers": [
                    {"name": "web", "image": "nginx", "resources": {"requests": {"cpu": "1"}}},
                    {"name": "sidecar", "image": "envoy"},
                ],
                "schedulerName": "default-scheduler",
            },
            "status": {"phase": "Pending"},
        },
        "Nodes": None,
        "NodeNames": ["n1"],
    }
    (tmp_path / "scheduler-1.20.2-filter.json").write_bytes(orjson.dumps(captured))
    templates = workloads.load_templates(tmp_path)
    assert templates.pod_source.endswith("scheduler-1.20.2-filter.json")
    pod, requests = workloads.PodFactory(templates.pod).make(
        "p-1", workloads.POD_SATURATION, variant=3
    )
    assert pod["metadata"]["name"] == "p-1" and pod["metadata"]["uid"] != "u"
    assert pod["metadata"]["labels"] == {"a": "b"}, "no gang membership from the capture"
    assert "annotations" not in pod["metadata"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["web", "sidecar"]
    assert "nodeName" not in pod["spec"]
    assert requests["cpu"] == 3000 and requests["memory"] == 2**30 + 3
    assert workloads.load_templates(tmp_path / "none").pod_source == "built-in template"


@pytest.mark.parametrize("scenario", ["churn", "distinct"])  # distinct: no cache entry is kept
def test_the_in_process_measurement_runs_cache_on_and_off(tmp_path: Path, scenario: str) -> None:
    out = tmp_path / "inprocess.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "loadtest" / "inprocess.py"), "--scenario", scenario,
         "--nodes", "50", "--pods", "40", "--json", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    for side in ("on", "off"):
        assert doc["median"][side]["pods_bound"] > 0
        assert doc["median"][side]["errors"] == 0
        assert doc["median"][side]["service_filter_prioritize_ms_per_pod"] > 0
    assert "service_filter_prioritize_ms_per_pod_off_over_on" in doc["ratios"]
