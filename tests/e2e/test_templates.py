"""WorkflowTemplates on a real API server: a template-based Workflow runs the template as it was when it started,
a missing template ends it InvalidSpec, `dagwright submit --from template/NAME` starts runs, and `kubectl get`
shows which template a Workflow runs.

Why: a team keeps reviewed workflows as templates and others start them with their own parameters; an edit of the
template must never change a run already going (its nodes would be replaced mid-run), and a typo in a template's
name or a parameter must say so instead of running something else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import yaml

from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import (
    _MAIN,
    IMAGE,
    OperatorProcess,
    condition,
    dagwright,
    list_jobs,
    node,
    status_of,
    wait_phase,
)

pytestmark = pytest.mark.e2e


def template(name: str, nodes: list[dict[str, Any]], **parameters: str) -> dict[str, Any]:
    spec = {"parameters": parameters, "defaults": {"image": IMAGE}, "nodes": nodes}
    return {"apiVersion": "dagwright.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": name}, "spec": spec}


def run_of(name: str, template_name: str, **parameters: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"templateRef": {"name": template_name}}
    if parameters:
        spec["parameters"] = parameters
    return {"apiVersion": "dagwright.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name}, "spec": spec}


def kubectl_apply(kube: Kube, namespace: str, *documents: dict[str, Any]) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(documents))


def args_of(job: dict[str, Any]) -> list[str]:
    args: list[str] = job["spec"]["template"]["spec"]["containers"][0].get("args") or []
    return args


def nodes_of(kube: Kube, namespace: str, name: str) -> list[str]:
    return sorted(job["metadata"]["labels"]["dagwright.io/node"] for job in list_jobs(kube, namespace, name))


def test_a_run_keeps_the_template_it_started_with_and_kubectl_shows_the_template(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    nodes = [node("extract", duration="2s", args=["{{ params.date }}"]), node("load", "extract")]
    kubectl_apply(kube, namespace, template("etl", nodes, date="today"))
    kubectl_apply(kube, namespace, run_of("etl-1", "etl", date="2026-11-29"))
    wait_for("the run to start", lambda: status_of(kube, namespace, "etl-1").get("template"), timeout=60)

    # The template changes while the run goes: a node renamed, a parameter default changed.
    kubectl_apply(kube, namespace, template("etl", [node("replaced")], date="tomorrow"))
    status = wait_phase(kube, namespace, "etl-1", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded", status
    assert nodes_of(kube, namespace, "etl-1") == ["extract", "load"]
    (extract,) = [job for job in list_jobs(kube, namespace, "etl-1") if job["metadata"]["name"].endswith("extract-1")]
    assert args_of(extract) == ["2026-11-29"]
    assert [n["name"] for n in status["template"]["spec"]["nodes"]] == ["extract", "load"]

    listed = kube.kubectl("get", "workflows", "-n", namespace).stdout.splitlines()
    header = listed[0].split()
    assert "TEMPLATE" in header, listed
    row = listed[1].split()
    assert row[0] == "etl-1" and row[header.index("TEMPLATE")] == "etl", listed
    # A printer column cannot count: WorkflowTemplates show their parameters with the defaults.
    templates = kube.kubectl("get", "dwt", "-n", namespace).stdout.splitlines()
    assert templates[0].split()[:2] == ["NAME", "PARAMETERS"] and "tomorrow" in templates[1], templates

    # A later run gets the edited template.
    kubectl_apply(kube, namespace, run_of("etl-2", "etl"))
    assert wait_phase(kube, namespace, "etl-2", "Succeeded", "Failed")["phase"] == "Succeeded"
    assert nodes_of(kube, namespace, "etl-2") == ["replaced"]


def test_a_missing_template_or_an_undeclared_parameter_ends_the_run_invalid(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kubectl_apply(kube, namespace, template("etl", [node("extract")], date="today"))
    kubectl_apply(kube, namespace, run_of("nowhere", "missing"), run_of("typo", "etl", dat="2026-11-29"))
    for name, message in (
        ("nowhere", f"invalid spec: spec.templateRef.name: WorkflowTemplate 'missing' not found in {namespace}"),
        ("typo", "invalid spec: spec.parameters.dat: WorkflowTemplate 'etl' declares no parameter 'dat'"),
    ):
        status = wait_phase(kube, namespace, name, "Failed", "Succeeded")
        assert status["message"].startswith(message), status
        assert condition(status, "Succeeded")["reason"] == "InvalidSpec"
        assert list_jobs(kube, namespace, name) == []


def test_the_api_server_refuses_nodes_beside_a_template_ref(kube: Kube, namespace: str) -> None:
    both = run_of("both", "etl")
    both["spec"]["nodes"] = [node("a")]
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(both), check=False)
    assert (
        result.returncode != 0 and "spec.nodes: " in result.stderr and "not allowed with templateRef" in result.stderr
    )
    neither = run_of("neither", "etl")
    del neither["spec"]["templateRef"]
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(neither), check=False)
    assert (
        result.returncode != 0
        and "spec.nodes: " in result.stderr
        and "required unless templateRef is set" in result.stderr
    )


def test_submit_from_a_template_starts_a_run_and_refuses_an_undeclared_parameter(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kubectl_apply(kube, namespace, template("etl", [node("extract", args=["{{ params.date }}"])], date="today"))
    submitted = dagwright(kube, "submit", "--from", "template/etl", "-p", "date=2026-11-30", "-n", namespace, "--watch")
    first = submitted.stdout.splitlines()[0]
    assert first.startswith(f"workflow {namespace}/etl-") and first.endswith("submitted (WorkflowTemplate etl)")
    name = first.split()[1].split("/")[1]
    assert status_of(kube, namespace, name)["phase"] == "Succeeded"
    assert [args_of(job) for job in list_jobs(kube, namespace, name)] == [["2026-11-30"]]

    env = {**os.environ, "KUBECONFIG": kube.kubeconfig}
    for args, error in (
        (["-p", "dat=1"], "  -p dat: WorkflowTemplate 'etl' declares no parameter 'dat' (it declares: date)"),
        (["--from", "template/nope"], f"error: workflowtemplate {namespace}/nope not found"),
    ):
        command = [sys.executable, "-c", _MAIN, "submit", "--from", "template/etl", *args, "-n", namespace]
        refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and error in refused.stderr.splitlines(), refused.stderr
    assert len(kube.kubectl("get", "workflows", "-n", namespace, "-o", "name").stdout.split()) == 1
