"""A control plane of the chaos tests' own, for the faults that would disturb everyone else's tests.

Why a second plane: restarting kube-apiserver or etcd under a plane that other test sessions share would fail
their tests. This one runs from its own directory (the same cached binaries, other ports), started once per
module that asks for it and stopped afterwards. Only the local plane can be restarted from here; against
another cluster (KUBECONFIG set: kind, say) those tests are skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from ..cluster import plane
from ..cluster.helpers import wait_for
from ..conftest import CRDS_DIR, Kube, _default_service_account, _external_kubeconfig, _progress, apply_crds


@contextlib.contextmanager
def _plane_dir(run: Path) -> Iterator[None]:
    """Point plane.py at this plane's directory for one call (plane.py reads it from the environment)."""
    before = os.environ.get("DAGWRIGHT_CLUSTER_RUN")
    os.environ["DAGWRIGHT_CLUSTER_RUN"] = str(run)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DAGWRIGHT_CLUSTER_RUN", None)
        else:
            os.environ["DAGWRIGHT_CLUSTER_RUN"] = before


@dataclass
class FaultPlane:
    """A private plane: its Kube, and restarts of its components."""

    kube: Kube
    run: Path
    progress: plane.Progress

    def restart(self, component: str, down_for: float) -> float:
        with _plane_dir(self.run):
            return plane.restart(component, down_for, self.progress)

    def apiserver_port(self) -> int:
        with _plane_dir(self.run):
            state = plane.load_state()
        assert state is not None
        return state.apiserver_port

    def namespace(self, name: str) -> str:
        v1 = client.CoreV1Api(self.kube.api_client)
        v1.create_namespace({"metadata": {"name": name}})
        # The controller manager creates it; after an API server restart its watches may still be backing off.
        ready = lambda: _default_service_account(v1, name)  # noqa: E731
        wait_for(f"service account default in {name}", ready, timeout=240)
        return name


@pytest.fixture(scope="module")
def fault_plane(request: pytest.FixtureRequest) -> Iterator[FaultPlane]:
    if _external_kubeconfig():
        pytest.skip("restarting the API server or etcd needs the local plane (KUBECONFIG names another cluster)")
    say = _progress(request)
    run = Path(tempfile.mkdtemp(prefix="dagwright-fault-plane-"))
    with _plane_dir(run):
        plane.up(say, managed=False)
        kubeconfig = str(plane.kubeconfig_path())
    api = config.new_client_from_config(config_file=kubeconfig)
    kube = Kube(kubeconfig=kubeconfig, kubectl_path=plane.binary("kubectl"), api_client=api, local_plane=True)
    faults = FaultPlane(kube=kube, run=run, progress=say)
    try:
        apply_crds(faults.kube, sorted(CRDS_DIR.glob("*.yaml")))
        yield faults
    finally:
        api.close()
        if os.environ.get("DAGWRIGHT_KEEP_CLUSTER") == "1":
            say(f"keeping the fault plane: DAGWRIGHT_CLUSTER_RUN={run} python -m tests.e2e.cluster.plane down")
        else:
            with _plane_dir(run):
                plane.down(say)
            shutil.rmtree(run, ignore_errors=True)
