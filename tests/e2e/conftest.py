"""Fixtures for the end-to-end tests against a real control plane (see controlplane.py).

- ``control_plane`` (session): a started :class:`controlplane.ControlPlane`. Builds the
  Kubernetes binaries first if they are missing (several minutes, once per machine) unless
  ``MUSTER_E2E_BUILD=0``, in which case the e2e tests are skipped.
- ``e2e_namespace`` (function): a fresh namespace, force-emptied afterwards.
- ``e2e_id`` (function): a short unique id for names and labels.

When an e2e test fails, the last lines of every component's log are attached to its report.
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

_STATE: dict[str, controlplane.ControlPlane] = {}


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
        f"\ncontrol plane up in {cp.startup_seconds:.1f}s, work dir {cp.workdir}", file=sys.stderr
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    cp = _STATE.get("cp")
    if rep.failed and cp is not None and "control_plane" in getattr(item, "fixturenames", ()):
        rep.sections.append((f"control plane logs ({cp.workdir / 'logs'})", cp.all_log_tails(30)))
