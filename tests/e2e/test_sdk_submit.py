"""`Workflow.submit()` from Python against a real API server with the operator: what `dagwright submit` does,
with a typed status back. kwok plays the pods; a function node's outputs are played as its termination message
(where a real container's `$DAGWRIGHT_OUTPUTS` ends up), so the downstream Job shows what the planner rendered.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from dagwright.errors import SpecError
from dagwright.sdk import ClusterError, NodeDefaults, PodMetadata, Workflow, WorkflowPhase, function, node

from .conftest import Kube
from .operator_fixtures import IMAGE, OperatorProcess, list_jobs

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


@pytest.fixture(autouse=True)
def kubeconfig(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", kube.kubeconfig)  # what submit() reads, as kubectl does


def test_submit_and_watch_returns_the_final_status(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import diamond  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES))
    workflow = diamond.build()
    told = io.StringIO()
    status = workflow.submit(namespace, parameters={"date": "2027-01-01"}, watch=True, progress=told)
    assert status.phase is WorkflowPhase.SUCCEEDED and status.progress == "4/4"
    assert told.getvalue().splitlines()[-1].split()[1:3] == ["Succeeded", "4/4"]  # a line per change, as the CLI
    assert set(status.nodes) == {"extract", "transform-a", "transform-b", "load"}
    stored = kube.kubectl("get", "workflow", "diamond", "-n", namespace, "-o", "jsonpath={.spec.parameters.date}")
    assert stored.stdout == "2027-01-01"

    with pytest.raises(ClusterError, match=f"^workflow {namespace}/diamond already exists$"):
        workflow.submit(namespace)


def test_submit_refuses_an_invalid_workflow_before_sending_it(kube: Kube, namespace: str) -> None:
    workflow = Workflow("loose")  # built without `with`: nothing checked it yet
    node("a", image="i", command=["a", "{{ params.missing }}"], workflow=workflow)
    with pytest.raises(SpecError, match=r"spec\.nodes\['a'\]\.command\[1\]: .* names parameter 'missing'"):
        workflow.submit(namespace)
    assert kube.kubectl("get", "workflows", "-n", namespace, "-o", "name").stdout.strip() == ""


@function(image=IMAGE)
def count(day: str) -> dict[str, object]:
    return {"rows": 42, "day": day}


@function(image=IMAGE)
def report(rows: int, day: str) -> str:
    return f"{rows} rows on {day}"


def test_function_nodes_on_the_cluster_get_rendered_arguments(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    played = PodMetadata(annotations={"kwok.dagwright.io/message": json.dumps({"rows": 42, "day": "2026-11-29"})})
    with Workflow("functions", parameters={"day": "2026-11-29"}, defaults=NodeDefaults(image=IMAGE)) as wf:
        counted = count.with_options(pod_metadata=played)(day=wf.params["day"])
        report(rows=counted.outputs["rows"], day=counted.outputs["day"])
    status = wf.submit(namespace, watch=True)
    assert status.phase is WorkflowPhase.SUCCEEDED, status.nodes
    assert status.nodes["count"].outputs == {"rows": 42, "day": "2026-11-29"}

    containers = {
        job["metadata"]["labels"]["dagwright.io/node"]: job["spec"]["template"]["spec"]["containers"][0]
        for job in list_jobs(kube, namespace)
    }
    assert containers["count"]["command"] == ["python", "-m", "dagwright.sdk.call", count.target]
    assert containers["count"]["args"] == ["--text", "day=2026-11-29"]
    assert containers["report"]["args"] == ["--text", "rows=42", "--text", "day=2026-11-29"]
