"""kube-apiserver and etcd restarted, and the operator's connections cut, while workflows run.

Why: control planes are upgraded, restarted and fail over; load balancers drop long-lived connections. The
operator must notice nothing worse than a pause: it reconnects its watches on its own, retries what failed,
and every workflow still ends as it should, judged from the Jobs the API server holds (oracle.py). These run
on a plane of their own (conftest.py) so that restarting it disturbs no other test.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ..conftest import Kube
from ..operator_fixtures import Operators, Recorder
from . import scenario
from .conftest import FaultPlane
from .faults import Periodic, TcpProxy
from .report import publish

pytestmark = pytest.mark.e2e

SMALL = {"workflows": 5, "nodes": 8}
# After kube-apiserver restarts, the restarted server answers 403 until its RBAC caches fill, and the controller
# manager's watches back off (seen here: Jobs whose pods had finished stayed unfinished for 2-4 minutes). That is
# Kubernetes' recovery, not the operator's: it gets this much more time.
RECOVERY = 300.0


@pytest.fixture
def stage(fault_plane: FaultPlane, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Recorder]]:
    """A namespace on the fault plane and a recorder watching it from before the first workflow."""
    name = fault_plane.namespace(f"faults-{request.node.name[5:30].replace('_', '-')}-{secrets.token_hex(3)}")
    recorder = Recorder(fault_plane.kube, name)
    try:
        yield name, recorder
    finally:
        recorder.stop()


def scale(seed: int) -> scenario.Scale:
    return scenario.Scale(**SMALL, kill_low=0, kill_high=0, seed=seed)


def judge_run(
    kube: Kube, namespace: str, recorder: Recorder, faults: Periodic, what: str, recovery: float = 0.0
) -> dict[str, object]:
    run_scale = scale(scenario.Scale.from_env().seed)  # DAGWRIGHT_CHAOS_SEED repeats a run
    verdict, report = scenario.run(kube, namespace, recorder, run_scale, faults, recovery)
    report[what] = faults.count
    assert faults.count >= 1, f"the run ended before any fault was injected: {report} {faults.errors}"
    assert not faults.errors, faults.errors
    assert not verdict.violations, "\n".join(verdict.violations[:40]) + f"\n{report}"
    return report


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_control_plane_component_restarted_mid_run(
    fault_plane: FaultPlane, stage: tuple[str, Recorder], tmp_path: Path, component: str
) -> None:
    namespace, recorder = stage
    operators = Operators(fault_plane.kube, namespace, tmp_path)
    try:
        operators.start()
        restarts = Periodic(lambda: fault_plane.restart(component, down_for=2.0), 6, 10, seed=1, limit=2)
        restarts.start()
        report = judge_run(fault_plane.kube, namespace, recorder, restarts, "restarts", recovery=RECOVERY)
        publish(f"{component} restarted", report)
        assert all(process.alive() for process in operators.started), "the operator exited"
    finally:
        operators.stop_all()
        operators.report()


def test_operator_connections_cut_repeatedly(
    fault_plane: FaultPlane, stage: tuple[str, Recorder], tmp_path: Path
) -> None:
    namespace, recorder = stage
    proxy = TcpProxy(fault_plane.apiserver_port())
    proxy.start()
    config = yaml.safe_load(Path(fault_plane.kube.kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    proxied = tmp_path / "kubeconfig-through-proxy"
    proxied.write_text(yaml.safe_dump(config))
    through_proxy = Kube(str(proxied), fault_plane.kube.kubectl_path, fault_plane.kube.api_client, True)
    operators = Operators(through_proxy, namespace, tmp_path)
    try:
        operators.start()
        cuts = Periodic(proxy.cut, 1, 3, seed=2)
        cuts.start()
        report = judge_run(fault_plane.kube, namespace, recorder, cuts, "connection_cuts")
        publish("operator connections cut", {**report, "connections_opened": proxy.connections})
        assert proxy.connections > cuts.count, "the operator did not reconnect after its connections were cut"
        assert all(process.alive() for process in operators.started), "the operator exited"
    finally:
        operators.stop_all()
        operators.report()
        proxy.stop()
