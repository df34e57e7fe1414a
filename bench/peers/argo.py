"""Argo Workflows' workflow-controller on the benchmark plane: built, installed and started like a peer's own.

The controller is built from its Go module (``go install``, CGO_ENABLED=0, -trimpath) into the plane's binary
cache under the same build lock as the plane's binaries and helm, once. Its CRDs come from the same module's
``manifests/base/crds/minimal`` (in the module cache after the build), its ConfigMap is the shipped one (empty)
plus a metrics port of our choosing, and it runs out of cluster as a process, namespaced, against the plane's
kubeconfig, without leader election.

Pods: Argo's pods (``init``, ``wait`` and ``main`` containers) are completed by the plane's own kwok Stages
(tests/e2e/cluster/stages/pod-succeed.yaml and pod-fail.yaml), which end any running pod that carries the
``kwok.dagwright.io/duration`` annotation: every container terminated, phase Succeeded, or Failed when
``kwok.dagwright.io/exit-code`` says so. Every Argo workflow here sets that annotation through
``spec.podMetadata``, so no Stage of Argo's own is needed and the plane (shared by the tests) is unchanged.

Profiles: ``defaults`` is the controller as shipped (10 s DEFAULT_REQUEUE_TIME, client QPS 20 / burst 30,
32 workflow workers); ``tuned`` sets DEFAULT_REQUEUE_TIME=1s and lifts the client limit the way the dagwright
operator has none (QPS 10,000 / burst 20,000), workers unchanged (32 >= the operator's 4). Node events stay on
in both, as Argo ships.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _support as s
import gobuild

from tests.e2e.cluster import plane
from tests.e2e.cluster.helpers import wait_for

VERSION = "v4.0.5"
MODULE = "github.com/argoproj/argo-workflows/v4"
CONFIGMAP = "workflow-controller-configmap"
GROUP, API_VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"
LABEL_WORKFLOW = "workflows.argoproj.io/workflow"
ANNOTATION_NODE_NAME = "workflows.argoproj.io/node-name"
DURATION_ANNOTATION = "kwok.dagwright.io/duration"  # the plane's pod Stages end such a pod after this long


@dataclass(frozen=True)
class Profile:
    name: str
    env: dict[str, str]
    args: tuple[str, ...]


PROFILES = {
    "defaults": Profile("defaults", {}, ()),
    "tuned": Profile("tuned", {"DEFAULT_REQUEUE_TIME": "1s"}, ("--qps", "10000", "--burst", "20000")),
}


def install_controller(progress: plane.Progress = s.note) -> Path:
    """workflow-controller built from its module into the plane's binary cache, once."""
    build = gobuild.go_install(f"{MODULE}/cmd/workflow-controller", VERSION, progress)
    return gobuild.cached_binary("workflow-controller", VERSION, build)


def module_dir() -> Path:
    """The module's source in the Go module cache (there after the build)."""
    return gobuild.module_dir(MODULE, VERSION)


def install_crds(kube: s.Cluster) -> None:
    """Argo's CRDs (the minimal ones it ships for kubectl apply) from the module it was built from."""
    crds = module_dir() / "manifests" / "base" / "crds" / "minimal"
    for path in sorted(crds.glob("argoproj.io_*.yaml")):
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    kube.kubectl("wait", "--for=condition=Established", "crd/workflows.argoproj.io", "--timeout=60s")


def configmap(metrics_port: int) -> dict[str, Any]:
    """The shipped ConfigMap (no data), with the metrics server on a free port, plain HTTP, for scraping."""
    shipped = module_dir() / "manifests" / "base" / "workflow-controller" / "workflow-controller-configmap.yaml"
    body: dict[str, Any] = yaml.safe_load(shipped.read_text())
    body.setdefault("data", {})["metricsConfig"] = yaml.safe_dump(
        {"enabled": True, "port": metrics_port, "path": "/metrics", "secure": False}
    )
    return body


@contextlib.contextmanager
def controller(kube: s.Cluster, namespace: str, profile: Profile) -> Iterator[s.Operator]:
    """Start workflow-controller on `namespace`, wait for its metrics, stop it (SIGTERM) afterwards."""
    binary = install_controller()
    port = s.free_port()
    kube.core.create_namespaced_config_map(namespace, configmap(port))
    log_fd, log_name = tempfile.mkstemp(prefix=f"argo-controller-{namespace}-", suffix=".log")
    cmd = [
        str(binary), "--kubeconfig", str(kube.kubeconfig), "--namespace", namespace,
        "--namespaced", "--managed-namespace", namespace, "--configmap", CONFIGMAP,
        "--loglevel", "warn", *profile.args,
    ]  # fmt: skip
    env = {**os.environ, "LEADER_ELECTION_DISABLE": "true", **profile.env}
    proc = subprocess.Popen(cmd, stdout=log_fd, stderr=subprocess.STDOUT, env=env)
    os.close(log_fd)
    ctl = s.Operator(proc, port, Path(log_name))

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"workflow-controller exited {proc.returncode}:\n{ctl.log_tail()}")
        try:
            return bool(ctl.metrics())
        except OSError:
            return False

    try:
        wait_for("workflow-controller /metrics", up, timeout=60, interval=0.2)
        time.sleep(2.0)  # its informers sync before its workers start
        yield ctl
    finally:
        s.note("stopping workflow-controller")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)  # it does not always exit on SIGTERM; nothing of it is kept
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        s.note(f"workflow-controller log: {ctl.log_path}")


def workflow(name: str, nodes: list[dict[str, Any]], image: str, pod_duration: str) -> dict[str, Any]:
    """An Argo DAG Workflow running dagwright-style `nodes` (name, command, dependsOn): one container template
    with `command` set (no image lookups) and no outputs."""
    tasks = []
    for node in nodes:
        task: dict[str, Any] = {"name": node["name"], "template": "run"}
        if node.get("dependsOn"):
            task["dependencies"] = list(node["dependsOn"])
        tasks.append(task)
    return {
        "apiVersion": f"{GROUP}/{API_VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "main",
            "podMetadata": {"annotations": {DURATION_ANNOTATION: pod_duration}},
            "templates": [
                {"name": "main", "dag": {"tasks": tasks}},
                {"name": "run", "container": {"image": image, "command": ["true"]}},
            ],
        },
    }


def node_of(pod: dict[str, Any]) -> tuple[str, str] | None:
    """(workflow, DAG task) an Argo pod runs, from its node-name annotation ("<workflow>.<task>")."""
    meta = pod.get("metadata") or {}
    workflow_name = (meta.get("labels") or {}).get(LABEL_WORKFLOW)
    node_name = (meta.get("annotations") or {}).get(ANNOTATION_NODE_NAME, "")
    if not workflow_name or not node_name.startswith(workflow_name + "."):
        return None
    return workflow_name, node_name[len(workflow_name) + 1 :]


if __name__ == "__main__":  # build only: python bench/peers/argo.py
    print(install_controller())
