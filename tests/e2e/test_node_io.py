"""Outputs pass along the DAG on the cluster: an upstream pod's termination message feeds a downstream Job.

kwok plays the upstream pod's fate, including its termination message (`kwok.dagwright.io/message`), which
is exactly where a real container's `$DAGWRIGHT_OUTPUTS` file ends up (`/dev/termination-log`).
"""

# ruff: noqa: F811

from __future__ import annotations

import json

import pytest

from .conftest import Kube
from .operator_fixtures import (  # noqa: F401 (fixtures)
    OperatorProcess,
    apply,
    list_jobs,
    node,
    operator,
    operators,
    wait_phase,
    workflow,
)

pytestmark = pytest.mark.e2e


def _with_message(body: dict[str, object], message: str) -> dict[str, object]:
    metadata = body.setdefault("podMetadata", {"annotations": {}})
    assert isinstance(metadata, dict)
    metadata.setdefault("annotations", {})["kwok.dagwright.io/message"] = message
    return body


def test_termination_message_outputs_flow_into_a_downstream_jobs_args(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    outputs = {"rows": 42, "key": "s3://bucket/2026-11-25"}
    extract = _with_message(node("extract", command=["extract"]), json.dumps(outputs))
    load = node(
        "load",
        "extract",
        command=["load"],
        args=["--rows={{ nodes.extract.outputs.rows }}", "{{ nodes.extract.outputs.key }}"],
        env=[{"name": "KEY", "value": "{{ nodes.extract.outputs.key }}"}],
    )
    apply(kube, namespace, workflow("io", [extract, load]))

    status = wait_phase(kube, namespace, "io", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded", status
    assert status["nodes"]["extract"]["outputs"] == outputs  # mirrored into status for kubectl users

    (job,) = [j for j in list_jobs(kube, namespace) if j["metadata"]["labels"]["dagwright.io/node"] == "load"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--rows=42", "s3://bucket/2026-11-25"]
    assert {"name": "KEY", "value": "s3://bucket/2026-11-25"} in container["env"]


def test_outputs_that_are_not_a_json_object_fail_the_node_for_good(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    extract = _with_message(node("extract", command=["extract"]), "done, 42 rows")
    apply(kube, namespace, workflow("bad-io", [extract, node("load", "extract", command=["load"])]))

    status = wait_phase(kube, namespace, "bad-io", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Failed"
    assert status["nodes"]["extract"]["reason"] == "InvalidOutputs"
    assert status["nodes"]["load"]["phase"] == "Skipped"
