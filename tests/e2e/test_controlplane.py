"""The e2e harness itself works, without the extender: a real kube-scheduler binds pods to
kubelet-less Node objects, the controller-manager turns Jobs into pods, and the scheduler
config shipped for the release under test (v1beta1 for 1.20, v1 for 1.36) is accepted by it.
"""

from __future__ import annotations

import socket
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from controlplane import (
    DEFAULT_PORTS,
    LEGACY,
    SHIPPED_SCHEDULER_CONFIG,
    ControlPlane,
    ControlPlaneError,
    binaries_present,
    wait_until,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

PLAIN_SCHEDULER_CONFIG = textwrap.dedent("""\
    apiVersion: kubescheduler.config.k8s.io/v1beta1
    kind: KubeSchedulerConfiguration
    clientConnection:
      kubeconfig: KUBECONFIG_PATH
      qps: 200
      burst: 400
    leaderElection:
      leaderElect: false
    """)


def _pod(name: str, selector: dict[str, str], cpu: str = "100m") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": selector,
            "containers": [
                {
                    "name": "c",
                    "image": "registry.invalid/pause:3.2",  # never pulled: there is no kubelet
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                }
            ],
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def plain_scheduler(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.start_scheduler(PLAIN_SCHEDULER_CONFIG)
    try:
        yield control_plane
    finally:
        control_plane.stop_scheduler()


@pytest.fixture
def node(control_plane: ControlPlane, e2e_id: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A Node object labelled for this test only; yields (name, nodeSelector)."""
    name = f"node-{e2e_id}"
    selector = {"muster.dev/e2e-test": e2e_id}
    control_plane.create_node(name, cpu="4", memory="8Gi", pods="110", labels=selector)
    try:
        yield name, selector
    finally:
        control_plane.kubectl("delete", "node", name, "--wait=false", check=False)


def test_node_object_has_status(
    control_plane: ControlPlane, node: tuple[str, dict[str, str]]
) -> None:
    obj = control_plane.api("GET", f"/api/v1/nodes/{node[0]}")
    assert obj["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert [c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    # No TaintNodesByCondition admission, no node lifecycle controller: no not-ready taint.
    assert not obj["spec"].get("taints")


def test_scheduler_binds_pod(
    plain_scheduler: ControlPlane, e2e_namespace: str, node: tuple[str, dict[str, str]]
) -> None:
    cp = plain_scheduler
    name, selector = node
    cp.apply(_pod("p1", selector), "-n", e2e_namespace)
    assert cp.wait_pod_bound("p1", e2e_namespace, timeout=30) == name


def test_job_creates_pods(
    plain_scheduler: ControlPlane, e2e_namespace: str, node: tuple[str, dict[str, str]]
) -> None:
    cp = plain_scheduler
    name, selector = node
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j1"},
        "spec": {
            "parallelism": 2,
            "completions": 2,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    **_pod("x", selector)["spec"],  # type: ignore[dict-item]
                    "restartPolicy": "Never",
                }
            },
        },
    }
    cp.apply(job, "-n", e2e_namespace)

    def two_pods() -> list[dict[str, object]] | None:
        pods = cp.list_pods(e2e_namespace, "job-name=j1")
        return pods if len(pods) == 2 else None

    pods = wait_until(two_pods, 30, what="the Job's 2 pods")
    for p in pods:
        assert cp.wait_pod_bound(p["metadata"]["name"], e2e_namespace, 30) == name  # type: ignore[index]


def test_shipped_config_parses(control_plane: ControlPlane, tmp_path: Path) -> None:
    """kube-scheduler loads, defaults and validates the file shipped for its release."""
    text = SHIPPED_SCHEDULER_CONFIG.read_text()
    doc = yaml.safe_load(text)
    doc["clientConnection"]["kubeconfig"] = str(control_plane.scheduler_kubeconfig)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    out = tmp_path / "written.yaml"
    res = subprocess.run(
        [str(control_plane.bin / "kube-scheduler"), f"--config={cfg}", f"--write-config-to={out}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    written = yaml.safe_load(out.read_text())
    assert written["apiVersion"] == yaml.safe_load(text)["apiVersion"]
    (ext,) = written["extenders"]
    # false/empty fields are omitted when written (omitempty)
    assert ext == {
        "urlPrefix": "http://127.0.0.1:8888",
        "filterVerb": "filter",
        "prioritizeVerb": "prioritize",
        "preemptVerb": "preempt",
        "bindVerb": "bind",
        "weight": 1,
        "nodeCacheCapable": True,
        "httpTimeout": "5m30s",
    }
    assert written["clientConnection"]["qps"] == 200
    assert written["clientConnection"]["burst"] == 400
    assert written["leaderElection"]["leaderElect"] is False
    if LEGACY:  # the plain-HTTP addresses are gone from v1
        assert written["healthzBindAddress"] == written["metricsBindAddress"] == "127.0.0.1:10251"


def test_scheduler_rejects_unknown_extender_field(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The decoder is strict, so test_shipped_config_parses proves the names are right."""
    doc = yaml.safe_load(SHIPPED_SCHEDULER_CONFIG.read_text())
    doc["extenders"][0]["enableHttps"] = True  # the legacy Policy API's spelling
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    res = subprocess.run(
        [
            str(control_plane.bin / "kube-scheduler"),
            f"--config={cfg}",
            f"--write-config-to={tmp_path / 'out.yaml'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0
    assert "enableHttps" in res.stderr


def test_shipped_config_calls_extender(
    control_plane: ControlPlane, e2e_namespace: str, node: tuple[str, dict[str, str]]
) -> None:
    """The real scheduler runs with the shipped config and calls the extender's filter: with
    nothing listening, the pod fails scheduling with a SchedulerError naming the URL."""
    doc = yaml.safe_load(SHIPPED_SCHEDULER_CONFIG.read_text())
    url = f"http://127.0.0.1:{_free_port()}"  # not 8888: a developer's muster may run there
    doc["extenders"][0]["urlPrefix"] = url
    control_plane.start_scheduler(yaml.safe_dump(doc), force_local=True)
    try:
        control_plane.apply(_pod("p1", node[1]), "-n", e2e_namespace)

        def failed_event() -> str | None:
            events = control_plane.api("GET", f"/api/v1/namespaces/{e2e_namespace}/events")["items"]
            msgs = [
                e.get("message") or ""
                for e in events
                if e.get("reason") == "FailedScheduling" and e["involvedObject"].get("name") == "p1"
            ]
            return next((m for m in msgs if url in m), None)

        msg = wait_until(failed_event, 30, what="a FailedScheduling event naming the extender")
        assert "filter" in msg
        assert "nodeName" not in control_plane.get_pod("p1", e2e_namespace)["spec"]
    finally:
        control_plane.stop_scheduler()


def test_kubectl_server_side_dry_run_of_kustomization(
    control_plane: ControlPlane, e2e_namespace: str, tmp_path: Path
) -> None:
    (tmp_path / "cm.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: muster-e2e}
        data: {a: "1"}
        """)
    )
    (tmp_path / "kustomization.yaml").write_text(
        f"namespace: {e2e_namespace}\nresources: [cm.yaml]\n"
    )
    res = control_plane.kubectl("apply", "-k", str(tmp_path), "--dry-run=server")
    assert "configmap/muster-e2e created (server dry run)" in res.stdout
    got = control_plane.kubectl("get", "configmap", "muster-e2e", "-n", e2e_namespace, check=False)
    assert got.returncode != 0  # dry run created nothing


def test_second_instance_on_other_ports_starts_and_stops(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    """Ports are configurable; stop() ends every process it started."""
    assert binaries_present()
    ports = {k: _free_port() for k in DEFAULT_PORTS}
    busy = ControlPlane(tmp_path, ports={**ports, "apiserver": control_plane.ports["apiserver"]})
    with pytest.raises(ControlPlaneError, match="in use"):
        busy.start()
    cp = ControlPlane(ports=ports)
    try:
        cp.start()
        cp.start_scheduler(PLAIN_SCHEDULER_CONFIG)
        pids = {
            c: cp.pid(c)
            for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
        }
        assert all(pids.values())
        assert cp.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    finally:
        cp.stop()
    for component, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), component  # reaped by stop()
        assert not cp.running(component)
    assert "Serving securely" in cp.log_tail("kube-apiserver", 10_000)


def test_bad_scheduler_config_raises_with_log(control_plane: ControlPlane) -> None:
    bad = PLAIN_SCHEDULER_CONFIG + "extenders:\n- urlPrefix: http://127.0.0.1:1\n  bogusField: 1\n"
    with pytest.raises(ControlPlaneError, match="bogusField") as info:
        control_plane.start_scheduler(bad, timeout=30)
    assert "kube-scheduler exited" in str(info.value)
    assert not control_plane.running("kube-scheduler")
