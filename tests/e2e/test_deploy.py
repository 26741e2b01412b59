"""The shipped manifests: ``kubectl apply -k deploy/ --dry-run=server`` passes against the real
API server (every object valid as the server defaults and validates it, RBAC included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from controlplane import ControlPlane

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_kustomization_passes_a_server_side_dry_run(control_plane: ControlPlane) -> None:
    cp = control_plane
    # A dry run creates nothing, so the namespaced objects need their namespace for real.
    cp.kubectl("create", "namespace", "muster-system", check=False)
    try:
        res = cp.kubectl("apply", "-k", str(DEPLOY), "--dry-run=server")
        out = res.stdout
        for kind_name in (
            "namespace/muster-system",
            "customresourcedefinition.apiextensions.k8s.io/workloads.muster.dev",
            "serviceaccount/muster",
            "clusterrole.rbac.authorization.k8s.io/muster",
            "clusterrolebinding.rbac.authorization.k8s.io/muster",
            "configmap/muster-queues",
            "deployment.apps/muster",
            "service/muster",
        ):
            assert kind_name in out, out
        assert "(server dry run)" in out
        got = cp.kubectl("get", "deployment", "muster", "-n", "muster-system", check=False)
        assert got.returncode != 0  # nothing was created
    finally:
        cp.kubectl("delete", "namespace", "muster-system", "--wait=false", check=False)
