"""The cluster CLI as a user types it (`dagwright ...`, also `kubectl dagwright ...`): submit, list, get, graph,
watch, and one clear line for every mistake.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Kube
from .operator_fixtures import OperatorProcess

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MAIN = "import sys; from dagwright.cli import main; sys.exit(main())"


def cli(kube: Kube, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig}
    return subprocess.run([sys.executable, "-c", MAIN, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_submit_with_parameters_then_list_get_and_graph(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    submitted = cli(kube, "submit", str(EXAMPLES / "diamond.yaml"), "-n", namespace, "-p", "date=2027-01-01", "--watch")
    assert submitted.returncode == 0, submitted.stderr
    assert f"workflow {namespace}/diamond submitted" in submitted.stdout
    assert "Succeeded 4/4" in submitted.stdout  # --watch follows it to the end

    body = kube.kubectl("get", "workflow", "diamond", "-n", namespace, "-o", "jsonpath={.spec.parameters.date}")
    assert body.stdout == "2027-01-01"

    listing = cli(kube, "list", "-n", namespace)
    assert listing.returncode == 0
    header = ["NAMESPACE", "NAME", "PHASE", "PROGRESS", "AGE", "TEMPLATE", "MESSAGE"]
    assert listing.stdout.splitlines()[0].split() == header
    assert listing.stdout.splitlines()[1].split()[:4] == [namespace, "diamond", "Succeeded", "4/4"]

    tree = cli(kube, "get", "diamond", "-n", namespace)
    assert tree.returncode == 0
    lines = tree.stdout.splitlines()
    assert lines[0] == "diamond: Succeeded 4/4"
    table = lines[1:] if not lines[1].startswith("  ") else lines[2:]
    assert table[0].split() == ["NODE", "PHASE", "ATTEMPTS", "PROGRESS", "DURATION", "REASON"]
    rows = {line.replace("└─", "").split()[0]: line.replace("└─", "").split() for line in table[1:]}
    assert set(rows) == {"extract", "transform-a", "transform-b", "load"}
    assert all(row[1:3] == ["Succeeded", "1"] for row in rows.values())  # phase, one attempt each
    assert table[-1].index("load") > table[1].index("extract")  # indented by depth

    drawn = cli(kube, "graph", "diamond", "-n", namespace, "--format", "mermaid")
    assert drawn.returncode == 0 and "n_extract --> n_transform_a" in drawn.stdout


def test_submit_refuses_an_invalid_manifest_before_sending_it(kube: Kube, namespace: str, tmp_path: Path) -> None:
    bad = tmp_path / "cycle.yaml"
    bad.write_text(
        "apiVersion: dagwright.io/v1alpha1\nkind: Workflow\nmetadata: {name: loop}\nspec:\n  nodes:\n"
        "  - {name: a, image: x, command: [a], dependsOn: [b]}\n  - {name: b, image: x, command: [b], dependsOn: [a]}\n"
    )
    result = cli(kube, "submit", str(bad), "-n", namespace)
    assert result.returncode == 1
    assert "dependency cycle" in result.stderr and "Traceback" not in result.stderr
    assert kube.kubectl("get", "workflows", "-n", namespace, "-o", "name").stdout.strip() == ""


@pytest.mark.parametrize("command", [["get", "ghost"], ["pause", "ghost"], ["logs", "ghost", "a"], ["watch", "ghost"]])
def test_a_missing_workflow_is_one_clear_line(kube: Kube, namespace: str, command: list[str]) -> None:
    result = cli(kube, *command, "-n", namespace)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: workflow {namespace}/ghost not found"


def test_no_cluster_access_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "missing")}
    result = subprocess.run([sys.executable, "-c", MAIN, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no cluster access") and len(result.stderr.strip().splitlines()) == 1
