"""Fixtures for the end-to-end tests against a real control plane (see controlplane.py).

- ``control_plane`` (session): a started :class:`controlplane.ControlPlane`. Builds the
  Kubernetes binaries first if they are missing (several minutes, once per machine) unless
  ``MUSTER_E2E_BUILD=0``, in which case the e2e tests are skipped.
- ``e2e_namespace`` (function): a fresh namespace, force-emptied afterwards.
- ``e2e_id`` (function): a short unique id for names and labels.
- ``muster`` (session): ``muster serve`` as a subprocess against the control plane (the
  project's Workload CRD installed first), behind a ``RecordingProxy`` (see harness.py), with
  ``--queues`` on an initially empty file that queue tests rewrite (muster reloads it).
- ``schedulers`` (session): a ``SchedulerSwitch`` whose kube-scheduler calls that proxy.
- ``extender`` (function): muster running (started again if a test left it dead) and the
  scheduler on the shipped configuration; yields a ``harness.Extender`` bundle.
- ``queues`` (function): ``extender``, with muster's queues file emptied afterwards.
- ``nodes`` (function): a ``NodeSet`` of Node objects labelled for this test only.

When an e2e test fails, the last lines of every component's log are attached to its report,
and with them muster's log and the proxy's last calls.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import controlplane  # noqa: E402
import harness  # noqa: E402

_STATE: dict[str, controlplane.ControlPlane] = {}


def pytest_report_header(config: pytest.Config) -> str:
    release = controlplane.RELEASE
    return f"control plane: Kubernetes v{controlplane.K8S_VERSION} (MUSTER_E2E_K8S={release})"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[controlplane.ControlPlane]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the e2e control plane needs Linux")
    if not controlplane.binaries_present():
        if os.environ.get("MUSTER_E2E_BUILD", "1") == "0":
            pytest.skip(
                f"Kubernetes binaries not built in {controlplane.bin_dir()} "
                f"(MUSTER_E2E_BUILD=0); run tests/e2e/controlplane.sh build"
            )
        controlplane.ensure_built()
    cp = controlplane.ControlPlane()
    try:
        cp.start()
    except controlplane.ControlPlaneError as exc:
        pytest.fail(f"control plane did not start (work dir {cp.workdir}):\n{exc}", pytrace=False)
    _STATE["cp"] = cp
    print(
        f"\ncontrol plane v{controlplane.K8S_VERSION} up in {cp.startup_seconds:.1f}s, "
        f"work dir {cp.workdir}",
        file=sys.stderr,
    )
    try:
        yield cp
    finally:
        _STATE.pop("cp", None)
        cp.stop()


@pytest.fixture
def e2e_id() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def e2e_namespace(control_plane: controlplane.ControlPlane, e2e_id: str) -> Iterator[str]:
    ns = f"e2e-{e2e_id}"
    control_plane.kubectl("create", "namespace", ns)
    try:
        yield ns
    finally:
        # No kubelet confirms a graceful delete of a bound pod: delete with grace period 0.
        control_plane.kubectl(
            "delete",
            "jobs,pods",
            "--all",
            "-n",
            ns,
            "--grace-period=0",
            "--force",
            "--wait=false",
            check=False,
        )
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="session")
def muster(control_plane: controlplane.ControlPlane) -> Iterator[harness.MusterProcess]:
    """muster watching the control plane. The Workload CRD goes in first: muster looks for a
    served Workload API once, at start."""
    control_plane.kubectl("apply", "-f", str(harness.WORKLOAD_CRD))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/workloads.muster.dev", "--timeout=30s"
    )
    queues_file = control_plane.workdir / "queues.yaml"
    queues_file.write_text("")
    process = harness.MusterProcess(control_plane, extra_args=["--queues", str(queues_file)])
    proxy = harness.RecordingProxy(process.port).start()
    harness.SESSION.update(process=process, proxy=proxy, queues_file=queues_file)
    try:
        process.start()
        yield process
    finally:
        harness.SESSION.clear()
        process.stop()
        proxy.stop()


@pytest.fixture(scope="session")
def schedulers(
    control_plane: controlplane.ControlPlane, muster: harness.MusterProcess
) -> Iterator[harness.SchedulerSwitch]:
    switch = harness.SchedulerSwitch(control_plane, harness.SESSION["proxy"].url)
    harness.SESSION["switch"] = switch
    try:
        yield switch
    finally:
        harness.SESSION.pop("switch", None)
        switch.stop()


@pytest.fixture
def extender(
    control_plane: controlplane.ControlPlane,
    muster: harness.MusterProcess,
    schedulers: harness.SchedulerSwitch,
) -> harness.Extender:
    if not muster.alive():  # a failed restart test may have left it dead
        muster.start()
    schedulers.use("shipped")
    harness.SESSION["proxy"].delays.clear()
    return harness.Extender(
        control_plane, muster, harness.SESSION["proxy"], schedulers, harness.SESSION["queues_file"]
    )


@pytest.fixture
def queues(extender: harness.Extender) -> Iterator[harness.Extender]:
    """``extender`` with the queues file emptied afterwards."""
    yield extender
    harness.write_queues(extender, "")


@pytest.fixture
def nodes(control_plane: controlplane.ControlPlane, e2e_id: str) -> Iterator[harness.NodeSet]:
    node_set = harness.NodeSet(control_plane, e2e_id)
    try:
        yield node_set
    finally:
        node_set.remove()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    cp = _STATE.get("cp")
    if rep.failed and cp is not None and "control_plane" in getattr(item, "fixturenames", ()):
        rep.sections.append((f"control plane logs ({cp.workdir / 'logs'})", cp.all_log_tails(30)))
    process, proxy = harness.SESSION.get("process"), harness.SESSION.get("proxy")
    if rep.failed and process is not None and "muster" in getattr(item, "fixturenames", ()):
        rep.sections.append((f"muster log ({process.log_path})", process.log_tail(60)))
        rep.sections.append(("extender calls through the proxy (last 30)", proxy.summary(30)))
    if rep.failed and "control_plane" in getattr(item, "fixturenames", ()):
        for sections in list(harness.REPORT_SECTIONS.values()):
            rep.sections.extend(sections())
