"""The Helm chart, against the real API server: lint, server-side dry run, install, and what it allows.

Why: users install operators with Helm; a chart that lints but is refused by the API server, grants more than
the operator needs, or runs pods a restricted namespace rejects, fails them on day one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cluster import plane
from .cluster.helpers import wait_for
from .conftest import Kube

pytestmark = pytest.mark.e2e

CHART = Path(__file__).resolve().parents[2] / "charts" / "dagwright"


@pytest.fixture(scope="module")
def helm() -> Path:
    return plane.install_helm()


def run_helm(helm: Path, kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": kube.kubeconfig, "HOME": str(Path.home()), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(helm), *args], env=env, capture_output=True, text=True, timeout=120)


def rendered(helm: Path, kube: Kube, namespace: str, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "dw", str(CHART), "-n", namespace]
    for value in sets:
        args += ["--set", value]
    result = run_helm(helm, kube, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_helm_lint_is_clean(helm: Path, kube: Kube) -> None:
    result = run_helm(helm, kube, "lint", str(CHART), "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("options", [False, True], ids=["defaults", "options"])
def test_rendered_chart_is_accepted_by_the_api_server(helm: Path, kube: Kube, namespace: str, options: bool) -> None:
    sets = (f"watchNamespaces={{{namespace}}}", "maxRunningNodes=50", "redis.enabled=true") if options else ()
    documents = rendered(helm, kube, namespace, *sets)
    kinds = {doc["kind"] for doc in documents}
    assert {"Deployment", "ServiceAccount", "Service"} <= kinds
    text = yaml.safe_dump_all(documents)
    result = kube.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False)
    assert result.returncode == 0, result.stderr


def test_install_establishes_the_crd_and_creates_the_operator(helm: Path, kube: Kube, namespace: str) -> None:
    result = run_helm(helm, kube, "install", "dw", str(CHART), "-n", namespace, "--set", "replicas=1")
    assert result.returncode == 0, result.stderr
    assert "kubectl apply -f examples/diamond.yaml" in result.stdout  # NOTES tell the next command
    established = kube.kubectl("get", "crd", "workflows.dagwright.io", "-o", "json")
    conditions = {c["type"]: c["status"] for c in json.loads(established.stdout)["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    wait_for(
        "the operator Deployment",
        lambda: kube.kubectl("get", "deployment", "dw-dagwright", "-n", namespace, check=False).returncode == 0,
        timeout=30,
    )
    run_helm(helm, kube, "uninstall", "dw", "-n", namespace)


def test_operator_pods_meet_the_restricted_pod_security_standard(helm: Path, kube: Kube, namespace: str) -> None:
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    deployment = next(d for d in rendered(helm, kube, namespace) if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"].pop("serviceAccountName")  # not installed in this test
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-pss"},
        "spec": deployment["spec"]["template"]["spec"],
    }
    accepted = kube.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod), check=False
    )
    assert accepted.returncode == 0, accepted.stderr
    # The same namespace refuses a pod that is not restricted: the check above is a real one.
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    refused = kube.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod), check=False
    )
    assert refused.returncode != 0 and "restricted" in refused.stderr


def test_the_operator_service_account_can_do_its_job_and_nothing_more(helm: Path, kube: Kube, namespace: str) -> None:
    result = run_helm(helm, kube, "install", "dw", str(CHART), "-n", namespace, "--set", "replicas=1")
    assert result.returncode == 0, result.stderr
    account = f"system:serviceaccount:{namespace}:dw-dagwright"

    def can(verb: str, resource: str, where: str = namespace) -> bool:
        resource, _, subresource = resource.partition("/")
        extra = [f"--subresource={subresource}"] if subresource else []
        answer = kube.kubectl("auth", "can-i", verb, resource, *extra, "-n", where, "--as", account, check=False)
        return answer.stdout.strip() == "yes"

    assert can("create", "jobs.batch") and can("delete", "jobs.batch") and can("watch", "pods")
    assert can("patch", "workflows.dagwright.io/status") and can("create", "events")
    assert can("update", "leases.coordination.k8s.io")
    assert not can("get", "secrets") and not can("list", "secrets")
    assert not can("create", "pods") and not can("delete", "pods")
    assert not can("patch", "workflows.dagwright.io")  # only status: the spec is the user's
    assert not can("update", "leases.coordination.k8s.io", "kube-system")
    assert not can("create", "deployments.apps")
    run_helm(helm, kube, "uninstall", "dw", "-n", namespace)
