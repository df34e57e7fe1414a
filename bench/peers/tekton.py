"""Tekton Pipelines' controller on the benchmark plane: built, installed and started like a peer's own.

The controller (``cmd/controller`` of github.com/tektoncd/pipeline) is built from its Go module into the plane's
binary cache, once (gobuild.py: ``go build`` inside the published module, since its go.mod has a ``replace``
directive that ``go install pkg@version`` refuses). It runs out of cluster as a process against the plane's
kubeconfig, restricted to one namespace (``-namespace``), without leader election (``-disable-ha``: one replica),
without its admission webhook (tekton_manifests.py writes PipelineRuns with the webhook's defaults), and with
``SYSTEM_NAMESPACE`` the benchmark's namespace, which holds the ConfigMaps it reads at start (the shipped ones from
the module's ``config/``, logging at warn). Its CRDs are the shipped ones for the objects its informers watch
(TaskRun, PipelineRun, CustomRun, ResolutionRequest, VerificationPolicy), applied unchanged: their conversion
webhook is never called, since everything here is read and written at the stored versions.

The images it injects into pods (entrypoint, nop, ...) are names only: kwok runs no container. The plane's kwok
Stages complete Tekton's pods as they do Argo's (see tekton_manifests.py).

Profiles: ``defaults`` is the controller as shipped (client QPS 20 / burst 20: it doubles the client-go defaults it
starts from; 2 threads per controller); ``tuned`` lifts the client limit the way the dagwright operator has none
(``-kube-api-qps 5000 -kube-api-burst 10000``, doubled by the controller to 10,000 / 20,000, Argo tuned's figures)
and runs 32 threads per controller (Argo's 32 workflow workers, >= the operator's 4).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as s
import gobuild
import tekton_manifests as m

from tests.e2e.cluster import plane
from tests.e2e.cluster.helpers import wait_for

VERSION = "v1.12.0"
MODULE = "github.com/tektoncd/pipeline"
PACKAGE = "cmd/controller"
BINARY = "tekton-controller"
CRDS = ("300-taskrun.yaml", "300-pipelinerun.yaml", "300-customrun.yaml")
CRDS += ("300-resolutionrequest.yaml", "300-verificationpolicy.yaml")
CONFIGMAPS = (
    "config-defaults.yaml", "config-feature-flags.yaml", "config-logging.yaml", "config-observability.yaml",
    "config-events.yaml", "config-tracing.yaml", "config-spire.yaml", "config-wait-exponential-backoff.yaml",
)  # fmt: skip
IMAGE_FLAGS = (  # every one must be set (the controller refuses to start without), to anything: kwok runs no image
    "-entrypoint-image", "-nop-image", "-sidecarlogresults-image", "-workingdirinit-image", "-shell-image",
    "-shell-image-win",
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    name: str
    args: tuple[str, ...]


PROFILES = {
    "defaults": Profile("defaults", ()),
    "tuned": Profile("tuned", ("-kube-api-qps", "5000", "-kube-api-burst", "10000", "-threads-per-controller", "32")),
}


def install_controller(progress: plane.Progress = s.note) -> Path:
    """The controller built from its module into the plane's binary cache, once."""
    return gobuild.cached_binary(BINARY, VERSION, gobuild.go_build_in_module(MODULE, VERSION, PACKAGE, progress))


def module_dir() -> Path:
    return gobuild.module_dir(MODULE, VERSION)


def install_crds(kube: s.Cluster) -> None:
    """The shipped CRDs of the objects the controller's informers watch, from the module it was built from."""
    crds = module_dir() / "config" / "300-crds"
    for name in CRDS:
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds / name))
    for plural in ("taskruns", "pipelineruns", "customruns"):
        kube.kubectl("wait", "--for=condition=Established", f"crd/{plural}.tekton.dev", "--timeout=60s")


def configmaps(namespace: str) -> list[dict[str, Any]]:
    """The shipped ConfigMaps the controller reads, moved to `namespace`, logging at warn (as the other peers)."""
    found = []
    for name in CONFIGMAPS:
        body: dict[str, Any] = yaml.safe_load((module_dir() / "config" / name).read_text())
        body["metadata"] = {"name": body["metadata"]["name"], "namespace": namespace}
        data = body.setdefault("data", {})
        if body["metadata"]["name"] == "config-logging":
            data["zap-logger-config"] = data["zap-logger-config"].replace('"level": "info"', '"level": "warn"')
            for key in [k for k in data if k.startswith("loglevel.")]:
                data[key] = "warn"
        found.append(body)
    return found


@contextlib.contextmanager
def controller(kube: s.Cluster, namespace: str, profile: Profile) -> Iterator[s.Operator]:
    """Start the controller on `namespace`, wait for its metrics, stop it (SIGTERM) afterwards."""
    binary = install_controller()
    for body in configmaps(namespace):
        kube.core.create_namespaced_config_map(namespace, body)
    port = s.free_port()
    log_fd, log_name = tempfile.mkstemp(prefix=f"tekton-controller-{namespace}-", suffix=".log")
    images = [arg for flag in IMAGE_FLAGS for arg in (flag, f"dagwright.invalid/tekton{flag.removesuffix('-image')}")]
    cmd = [str(binary), "-kubeconfig", str(kube.kubeconfig), "-namespace", namespace, "-disable-ha", *images]
    cmd += profile.args
    env = {
        **os.environ,
        "SYSTEM_NAMESPACE": namespace,
        "METRICS_DOMAIN": "tekton.dev/pipeline",
        "METRICS_PROMETHEUS_HOST": "127.0.0.1",
        "METRICS_PROMETHEUS_PORT": str(port),
        "PROBES_PORT": str(s.free_port()),  # its own probe server; knative's stays on its fixed 8080
        "PROFILING_PORT": str(s.free_port()),
    }
    proc = subprocess.Popen(cmd, stdout=log_fd, stderr=subprocess.STDOUT, env=env)
    os.close(log_fd)
    ctl = s.Operator(proc, port, Path(log_name))

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"tekton controller exited {proc.returncode}:\n{ctl.log_tail()}")
        try:
            return bool(ctl.metrics())
        except OSError:
            return False

    try:
        wait_for("tekton controller /metrics", up, timeout=60, interval=0.2)
        time.sleep(2.0)  # its informers sync before its workers start
        yield ctl
    finally:
        s.note("stopping tekton controller")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        s.note(f"tekton controller log: {ctl.log_path}")


pipeline_run = m.pipeline_run
node_of = m.node_of
phase_of = m.phase_of
GROUP, API_VERSION, PLURAL = m.GROUP, m.API_VERSION, m.PLURAL

if __name__ == "__main__":  # build only: python bench/peers/tekton.py
    print(install_controller())
