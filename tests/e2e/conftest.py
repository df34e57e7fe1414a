"""Fixtures for dagwright's end-to-end tests, which run against a real Kubernetes API server.

Why real: watches, resourceVersions, owner references and garbage collection, the status
subresource, CRD validation and printer columns all behave in ways a fake cannot reproduce.

Which cluster: if ``KUBECONFIG`` is set, that cluster is used as it is (kind on a machine
with Docker, or a plane a developer keeps running with ``make cluster-up``). Otherwise the
local control plane of ``tests/e2e/cluster/plane.py`` is used: reused if one is already
running, else built (first run only; progress is printed) and started. A plane started here
is stopped when the last pytest session using it ends (sessions of several developers on one
machine may share it), unless ``DAGWRIGHT_KEEP_CLUSTER=1``; one started with
``make cluster-up`` runs until ``make cluster-down``. Every ``crds/*.yaml`` is applied
at session start; each test gets its own namespace from the ``namespace`` fixture.

The fixtures every e2e test may name are all defined here, so no module imports a fixture by hand:
``kube``, ``namespace``, ``workflow_crd``, and the operator's ``operators``, ``operator`` and ``recorder``
(their classes, and the helpers tests call, are in ``operator_fixtures.py``).

Every test under tests/e2e is marked ``e2e``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .cluster import plane
from .cluster.helpers import wait_for
from .operator_fixtures import OperatorProcess, Operators, Recorder

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO_ROOT / "crds"
E2E_DIR = Path(__file__).resolve().parent
CHAOS_DIR = E2E_DIR / "chaos"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test against a real Kubernetes API server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chaos_timeout: float | None = None
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
        if CHAOS_DIR in Path(str(item.fspath)).parents and item.get_closest_marker("timeout") is None:
            chaos_timeout = chaos_timeout or _chaos_timeout(config)
            if chaos_timeout:
                item.add_marker(pytest.mark.timeout(chaos_timeout))


def _chaos_timeout(config: pytest.Config) -> float:
    """The per-test timeout (pyproject.toml) plus the chaos run's own budget, which grows with its scale
    (`make chaos` runs 50 workflows of 20 nodes); 0, no timeout, stays 0."""
    from .chaos.scenario import Scale, budget

    per_test = float(config.getoption("timeout", None) or config.getini("timeout") or 0)
    return per_test and per_test + budget(Scale.from_env())


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build what the e2e tests would otherwise build on first use (the plane's binaries: many minutes the first
    time; helm for the chart tests) before any test runs, so that the per-test timeout times tests, not builds."""
    paths = {Path(str(item.fspath)) for item in session.items}
    if session.config.option.collectonly or not any(E2E_DIR in path.parents for path in paths):
        return
    say = _progress(session)
    try:
        if not _external_kubeconfig():
            plane.build(say)
        if E2E_DIR / "test_chart.py" in paths:
            plane.install_helm(say)
    except Exception as error:  # the fixtures build again and fail where they always did: in the e2e tests only
        say(f"building ahead of the tests failed: {error}")


@dataclass
class Kube:
    """A cluster to test against: its kubeconfig, a kubectl, and a Python API client."""

    kubeconfig: str
    kubectl_path: Path
    api_client: client.ApiClient
    local_plane: bool

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        cmd = [str(self.kubectl_path), *args]
        proc = subprocess.run(cmd, env=env, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc


def _progress(request: pytest.FixtureRequest | pytest.Session) -> plane.Progress:
    """Print past pytest's output capture, so a long first build shows it is alive."""
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def say(msg: str) -> None:
        ctx = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with ctx:
            print(f"\n[e2e cluster] {msg}", flush=True)

    return say


def _kubectl_for_external_cluster(say: plane.Progress) -> Path:
    cached = plane.binary("kubectl")
    if cached.exists():
        return cached
    found = shutil.which("kubectl")
    if found:
        return Path(found)
    plane.build(say)
    return cached


def _crd_names(path: Path) -> list[str]:
    docs = yaml.safe_load_all(path.read_text())
    return [d["metadata"]["name"] for d in docs if d and d.get("kind") == "CustomResourceDefinition"]


def apply_crds(kube: Kube, files: list[Path]) -> None:
    """Apply CRD files and wait until the API server serves them (Established)."""
    for path in files:
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        for name in _crd_names(path):
            kube.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


def _external_kubeconfig() -> str | None:
    """$KUBECONFIG, unless it names the local plane's own kubeconfig (then the plane is managed here)."""
    value = os.environ.get("KUBECONFIG")
    if value and Path(value).expanduser().resolve() == plane.kubeconfig_path().resolve():
        return None
    return value or None


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest) -> Iterator[Kube]:
    say = _progress(request)
    external = _external_kubeconfig()
    lease: plane.Lease | None = None
    if external:
        kubeconfig = external
        kubectl_path = _kubectl_for_external_cluster(say)
        api = config.new_client_from_config()
    else:
        _, lease = plane.acquire(say)
        kubeconfig = str(plane.kubeconfig_path())
        kubectl_path = plane.binary("kubectl")
        api = config.new_client_from_config(config_file=kubeconfig)
    cluster = Kube(kubeconfig=kubeconfig, kubectl_path=kubectl_path, api_client=api, local_plane=not external)
    try:
        apply_crds(cluster, sorted(CRDS_DIR.glob("*.yaml")))
        yield cluster
    finally:
        api.close()
        if lease is not None:
            plane.release(lease, say, keep=os.environ.get("DAGWRIGHT_KEEP_CLUSTER") == "1")


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"e2e-{slug}-{secrets.token_hex(3)}"


def _default_service_account(v1: client.CoreV1Api, namespace: str) -> bool:
    try:
        v1.read_namespaced_service_account("default", namespace)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test (its default service account ready), deleted afterwards."""
    v1 = client.CoreV1Api(kube.api_client)
    name = _namespace_name(request.node.name)
    body = {"metadata": {"name": name, "labels": {"dagwright.io/e2e": "true"}}}
    v1.create_namespace(body)
    wait_for(f"service account default in {name}", lambda: _default_service_account(v1, name), timeout=30)
    yield name
    try:
        v1.delete_namespace(name, propagation_policy="Background")
    except ApiException as err:
        if err.status != 404:
            raise


def workflow_crd_file() -> Path:
    """The real Workflow CRD when crds/ has it, else the placeholder kept for the smoke tests."""
    real = CRDS_DIR / "workflows.dagwright.io.yaml"
    return real if real.exists() else E2E_DIR / "cluster" / "testdata" / "workflows.dagwright.io.yaml"


@pytest.fixture(scope="session")
def workflow_crd(kube: Kube) -> Path:
    """Make sure the Workflow CRD is installed; returns the file it came from."""
    path = workflow_crd_file()
    apply_crds(kube, [path])
    return path


@pytest.fixture
def operators(kube: Kube, namespace: str, tmp_path: Path) -> Iterator[Operators]:
    """Runs `dagwright operator` processes for the test's namespace (`operators.start(...)`); stops them all at
    teardown and prints their log tails, which pytest shows for a failing test."""
    running = Operators(kube, namespace, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
        running.report()


@pytest.fixture
def operator(operators: Operators) -> OperatorProcess:
    """One operator with default flags (no leader election, no metrics or health ports)."""
    return operators.start()


@pytest.fixture
def recorder(kube: Kube, namespace: str) -> Iterator[Recorder]:
    """The Job and Workflow watcher for the test's namespace, started before the test applies anything."""
    watching = Recorder(kube, namespace)
    try:
        yield watching
    finally:
        watching.stop()
