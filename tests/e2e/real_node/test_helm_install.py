"""The central path, for real: `helm install` of the chart with the built images, then Workflows whose Jobs run
real containers on the plane's real node, in a namespace enforcing the restricted Pod Security Standard.

Facts are read from the API server (pods, Leases, workflow status) and from the containers' own effects (what
they printed, their termination messages, the kernel's OOM kill), never from kwok.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from ..cluster import node
from ..cluster.helpers import wait_for
from ..conftest import Kube, _namespace_name
from ..operator_fixtures import status_of, wait_phase
from .conftest import RealNode, on_real_node

# The first test's clock includes the module's setup: on a cold machine, the images' first build (a debootstrap
# base, pip installs) and the chart install.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

CHART = Path(__file__).resolve().parents[3] / "charts" / "dagwright"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RELEASE = "dw"
DEPLOYMENT = f"{RELEASE}-dagwright"

# What the restricted Pod Security Standard asks of every pod: the workflows below carry it in podTemplate.
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@dataclass
class Installed:
    """A chart release in its own restricted namespace, and how long it took to become Ready."""

    namespace: str
    ready_seconds: float
    helm: Path
    kube: Kube
    real_node: RealNode


def run_helm(helm: Path, kube: Kube, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": kube.kubeconfig, "HOME": str(Path.home()), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(helm), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(real_node: RealNode, helm: Path, kube: Kube) -> Iterator[Installed]:
    """`helm install --wait` into a fresh namespace labelled restricted; uninstalled and deleted afterwards."""
    namespace = _namespace_name("real-node-chart")
    labels = {"dagwright.io/e2e": "true", "pod-security.kubernetes.io/enforce": "restricted"}
    core = client.CoreV1Api(kube.api_client)
    core.create_namespace({"metadata": {"name": namespace, "labels": labels}})
    volume = _redis_volume(kube, namespace)
    repository, tag = real_node.operator_image.rsplit(":", 1)
    selector = json.dumps({"matchLabels": {"kubernetes.io/metadata.name": namespace}})
    placement = on_real_node()
    started = time.monotonic()
    result = run_helm(
        helm, kube, "install", RELEASE, str(CHART), "-n", namespace, "--wait", "--timeout", "240s",
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never",
        "--set", f"watchNamespaces={{{namespace}}}",
        "--set-json", f"webhook.namespaceSelector={selector}",
        "--set-json", f"nodeSelector={json.dumps(placement['nodeSelector'])}",
        "--set-json", f"tolerations={json.dumps(placement['tolerations'])}",
        "--set", "logFormat=text",
        "--set", "redis.enabled=true", "--set", f"redis.image={real_node.redis_image}",
    )  # fmt: skip
    ready_seconds = time.monotonic() - started
    try:
        assert result.returncode == 0, result.stdout + result.stderr + _pods_report(kube, namespace)
        print(f"\n[real node] helm install to operator Ready: {ready_seconds:.1f}s")
        yield Installed(namespace, ready_seconds, helm, kube, real_node)
    finally:
        run_helm(helm, kube, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "60s")
        core.delete_namespace(namespace, propagation_policy="Background")
        core.delete_persistent_volume(volume)


def _redis_volume(kube: Kube, namespace: str) -> str:
    """A hostPath PersistentVolume for the bundled Redis' claim: the plane has no storage provisioner."""
    claim = f"data-{RELEASE}-dagwright-redis-0"
    path = tempfile.mkdtemp(prefix="redis-", dir=node.node_dir())
    os.chmod(path, 0o777)  # Redis runs as uid 999; fsGroup does not apply to hostPath volumes
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-redis"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": path, "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(volume))
    return str(volume["metadata"]["name"])  # type: ignore[index]


def _pods_report(kube: Kube, namespace: str) -> str:
    pods = kube.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
    events = kube.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout
    return f"\n{pods}\n{events[-4000:]}"


def _explain(kube: Kube, namespace: str, workflow: str) -> str:
    """A failing test's evidence: the workflow's status, its pods, their logs, the operators' last lines."""
    status = json.dumps(status_of(kube, namespace, workflow), indent=1)
    logs = kube.kubectl("logs", "-n", namespace, "-l", f"dagwright.io/workflow={workflow}", "--tail=20", check=False)
    operators = kube.kubectl(
        "logs", "-n", namespace, "-l", "app.kubernetes.io/component=operator", "--tail=30", check=False
    )
    return f"{status}\n{_pods_report(kube, namespace)}\n{logs.stdout}{logs.stderr}\n{operators.stdout}"


def _operator_pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    out = kube.kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=operator", "-o", "json")
    pods: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return pods


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def _apply(kube: Kube, namespace: str, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False)


def _workflow(name: str, image: str, nodes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    template = {**on_real_node(), "securityContext": RESTRICTED_POD, "containerSecurityContext": RESTRICTED_CONTAINER}
    return {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"defaults": {"image": image}, "podTemplate": template, **spec, "nodes": nodes},
    }


def test_the_operator_runs_from_the_chart_two_replicas_one_leader(installed: Installed) -> None:
    kube, namespace = installed.kube, installed.namespace
    pods = _operator_pods(kube, namespace)
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] == installed.real_node.name
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True", pod["status"]
        (container,) = pod["status"]["containerStatuses"]
        assert container["imageID"], container  # a real image, run by containerd
    lease = json.loads(kube.kubectl("get", "lease", "dagwright-operator", "-n", namespace, "-o", "json").stdout)
    holder = lease["spec"]["holderIdentity"]  # <pod name>-<random>: one replica's identity
    assert [pod for pod in pods if holder.startswith(pod["metadata"]["name"] + "-")], (holder, pods)

    for pod in pods:
        address = pod["status"]["podIP"]
        assert _get(f"http://{address}:8080/healthz")[0] == 200
        status, metrics = _get(f"http://{address}:8000/metrics")
        assert status == 200 and "dagwright_" in metrics


def test_the_webhook_in_the_pod_refuses_a_cyclic_workflow_at_apply(installed: Installed) -> None:
    cyclic = _workflow(
        "cyclic", installed.real_node.runner_image, [{"name": "a", "dependsOn": ["a"], "command": ["true"]}]
    )
    result = wait_for(
        "the webhook to answer (a refusal)",
        lambda: (r := _apply(installed.kube, installed.namespace, cyclic)).returncode != 0 and r,
        timeout=60,
        interval=1,
    )
    assert 'admission webhook "validate.workflows.dagwright.io" denied the request' in result.stderr
    assert "spec.nodes[0].dependsOn[0]" in result.stderr


def test_the_diamond_example_succeeds_and_outputs_travel_through_termination_messages(installed: Installed) -> None:
    kube, namespace = installed.kube, installed.namespace
    diamond = yaml.safe_load((EXAMPLES / "diamond.yaml").read_text())
    manifest = _workflow("diamond", installed.real_node.runner_image, diamond["spec"]["nodes"])
    manifest["spec"]["parameters"] = diamond["spec"]["parameters"]
    # The example's extract node, plus an output that load must receive in its args.
    writes = "import json, os; json.dump({'rows': 42}, open(os.environ['DAGWRIGHT_OUTPUTS'], 'w'))"
    nodes = manifest["spec"]["nodes"]
    nodes[0]["args"] = [f"{nodes[0]['args'][0]}; {writes}"]
    nodes[-1]["args"] = ["import sys; print('load', sys.argv[1:])", "{{ nodes.extract.outputs.rows }}"]
    assert _apply(kube, namespace, manifest).returncode == 0

    status = wait_phase(kube, namespace, "diamond", "Succeeded", "Failed", timeout=180)
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == "4/4"
    assert status["nodes"]["extract"]["outputs"] == {"rows": 42}

    logs = _dagwright(kube, "logs", "diamond", "load", "-n", namespace)
    assert "load ['42']" in logs.stdout, logs.stdout + logs.stderr
    extract_logs = _dagwright(kube, "logs", "diamond", "extract", "-n", namespace)
    assert "extract 2026-11-25" in extract_logs.stdout


def _dagwright(kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl dagwright ...`, the kubectl plugin installed with the package, as a user calls it."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(kube.kubectl_path), "dagwright", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_node_over_its_memory_limit_is_oom_killed_and_retried_as_transient(installed: Installed) -> None:
    kube, namespace = installed.kube, installed.namespace
    hog = {
        "name": "hog",
        "command": ["python3", "-c", "b = bytearray(256 * 1024 * 1024); print(len(b))"],
        "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}},
        "retry": {"limit": 1, "policy": "Transient", "backoff": {"initialSeconds": 1, "jitter": 0}},
    }
    assert _apply(kube, namespace, _workflow("oom", installed.real_node.runner_image, [hog])).returncode == 0
    status = wait_phase(kube, namespace, "oom", "Succeeded", "Failed", timeout=180)
    assert status["phase"] == "Failed"
    node = status["nodes"]["hog"]
    assert node["reason"] == "OOMKilled", node
    assert node["attempts"] == 2, node  # retried once: OOMKilled is transient


def test_pause_mode_suspend_stops_a_running_container_and_resume_runs_it_again(installed: Installed) -> None:
    kube, namespace = installed.kube, installed.namespace
    core = client.CoreV1Api(kube.api_client)
    slow = {"name": "slow", "command": ["sh", "-c", "echo started; sleep 6; echo finished"]}
    workflow = _workflow("suspend", installed.real_node.runner_image, [slow], pauseMode="Suspend")
    assert _apply(kube, namespace, workflow).returncode == 0

    def running_pod() -> str | None:
        pods = core.list_namespaced_pod(namespace, label_selector="dagwright.io/workflow=suspend").items
        for pod in pods:
            for container in pod.status.container_statuses or []:
                if container.state.running is not None:
                    return str(pod.metadata.name)
        return None

    first = wait_for("the node's container to run", running_pod, timeout=120, interval=0.5)
    kube.kubectl("patch", "workflow", "suspend", "-n", namespace, "--type=merge", "-p", '{"spec":{"paused":true}}')

    def gone() -> bool:
        names = {p.metadata.name for p in core.list_namespaced_pod(namespace).items}
        return first not in names

    wait_for("the suspended Job's pod to be removed", gone, timeout=60, interval=0.5)
    assert wait_phase(kube, namespace, "suspend", "Paused", timeout=30)["phase"] == "Paused"
    kube.kubectl("patch", "workflow", "suspend", "-n", namespace, "--type=merge", "-p", '{"spec":{"paused":false}}')
    status = wait_phase(kube, namespace, "suspend", "Succeeded", "Failed", timeout=120)
    assert status["phase"] == "Succeeded", status
    logs = _dagwright(kube, "logs", "suspend", "slow", "-n", namespace)
    assert "finished" in logs.stdout, logs.stdout + logs.stderr


def test_node_runner_passes_100_kib_of_outputs_through_the_bundled_redis_and_reports_progress(
    installed: Installed,
) -> None:
    kube, namespace = installed.kube, installed.namespace
    produce = (
        "import json, os, time\n"
        "for done in (25, 50, 75):\n"
        "    open(os.environ['DAGWRIGHT_PROGRESS'], 'a').write(f'{done}/100\\n'); time.sleep(2.5)\n"
        "json.dump({'blob': 'x' * 100 * 1024}, open(os.environ['DAGWRIGHT_OUTPUTS'], 'w'))\n"
    )
    consume = "import sys; print('received', len(sys.argv[1]), 'bytes')"
    nodes = [
        {"name": "produce", "command": ["python3", "-c", produce]},
        {"name": "consume", "dependsOn": ["produce"], "command": ["python3", "-c", consume],
         "args": ["{{ nodes.produce.outputs.blob }}"]},
    ]  # fmt: skip
    manifest = _workflow("big-outputs", installed.real_node.runner_image, nodes)
    manifest["spec"]["defaults"]["nodeRunner"] = True
    assert _apply(kube, namespace, manifest).returncode == 0

    seen: set[str] = set()

    def produced() -> dict[str, Any] | None:
        found: dict[str, Any] = (status_of(kube, namespace, "big-outputs").get("nodes") or {}).get("produce") or {}
        if found.get("phase") == "Running" and found.get("progress"):
            seen.add(str(found["progress"]))
        return found if found.get("phase") in ("Succeeded", "Failed") else None

    wait_for("produce to finish", produced, timeout=180, interval=0.3)
    status = wait_phase(kube, namespace, "big-outputs", "Succeeded", "Failed", timeout=120)
    assert status["phase"] == "Succeeded", _explain(kube, namespace, "big-outputs")
    assert seen and seen <= {"25/100", "50/100", "75/100"}, (seen, _explain(kube, namespace, "big-outputs"))
    produced = status["nodes"]["produce"]
    assert produced.get("outputsRef"), produced  # held in Redis only: over the termination message's 3 KiB
    assert "outputs" not in produced or produced["outputs"] is None
    logs = _dagwright(kube, "logs", "big-outputs", "consume", "-n", namespace)
    assert f"received {100 * 1024} bytes" in logs.stdout, logs.stdout + logs.stderr


def test_uninstall_leaves_no_operator_pods(installed: Installed) -> None:
    """Last in this module: the release is gone afterwards."""
    kube, namespace = installed.kube, installed.namespace
    kept = _workflow("kept", installed.real_node.runner_image, [{"name": "a", "command": ["true"]}])
    assert _apply(kube, namespace, kept).returncode == 0
    wait_phase(kube, namespace, "kept", "Succeeded", timeout=120)
    result = run_helm(installed.helm, kube, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "60s")
    assert result.returncode == 0, result.stderr
    wait_for("the operator pods to go", lambda: not _operator_pods(kube, namespace), timeout=60)
    assert status_of(kube, namespace, "kept")["phase"] == "Succeeded"  # the user's Workflows outlive the operator
