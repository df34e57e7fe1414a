"""Outputs pass along the DAG on the cluster: an upstream pod's termination message feeds a downstream Job.

kwok plays the upstream pod's fate, including its termination message (`kwok.dagwright.io/message`), which
is exactly where a real container's `$DAGWRIGHT_OUTPUTS` file ends up (`/dev/termination-log`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagwright.k8s import admission

from .conftest import Kube
from .operator_fixtures import OperatorProcess, Operators, apply, list_jobs, node, wait_phase, workflow

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


REDIS_URL = "redis://dagwright-redis.invalid:6379/0"  # only handed to pods: kwok runs no container to dial it
REFERENCE = "dagwright:e2e:extract:outputs"


def _large_outputs_workflow(name: str, *, reader_node_runner: bool) -> dict[str, object]:
    """extract reports outputs held only in Redis (node-runner's envelope without a mirror); load reads them."""
    envelope = json.dumps({"dagwright/v1": {"ref": REFERENCE}})
    extract = _with_message(node("extract", command=["extract"], nodeRunner=True), envelope)
    load = node(
        "load",
        "extract",
        command=["load"],
        args=["{{ nodes.extract.outputs.blob }}", "{{ params.day }}"],
        env=[
            {"name": "BLOB", "value": "{{ nodes.extract.outputs.blob }}"},
            {"name": "DAY", "value": "{{ params.day }}"},
        ],
        nodeRunner=reader_node_runner,
    )
    return workflow(name, [extract, load], parameters={"day": "2026-11-26"})


def test_outputs_held_only_in_redis_reach_a_downstream_job_as_templates_for_node_runner(
    kube: Kube, namespace: str, operators: Operators
) -> None:
    operators.start("--redis-url", REDIS_URL)
    apply(kube, namespace, _large_outputs_workflow("big-io", reader_node_runner=True))

    status = wait_phase(kube, namespace, "big-io", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded", status
    assert status["nodes"]["extract"]["outputsRef"] == REFERENCE
    assert "outputs" not in status["nodes"]["extract"]

    (job,) = [j for j in list_jobs(kube, namespace, "big-io") if j["metadata"]["labels"]["dagwright.io/node"] == "load"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["dagwright-node-runner", "--render-inputs"]
    assert "args" not in container
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["DAGWRIGHT_REDIS_URL"] == REDIS_URL
    assert env["DAY"] == "2026-11-26" and "BLOB" not in env
    inputs = json.loads(env["DAGWRIGHT_INPUTS"])
    assert inputs["outputs"] == {"extract": REFERENCE}
    assert inputs["command"] == ["load"]
    assert inputs["args"] == ["{{ nodes.extract.outputs.blob }}", "{{ params.day }}"]
    assert inputs["env"] == {"BLOB": "{{ nodes.extract.outputs.blob }}"}
    assert inputs["values"]["params.day"] == "2026-11-26"


def test_a_reader_of_outputs_held_only_in_redis_without_node_runner_fails_saying_what_to_set(
    kube: Kube, namespace: str, operators: Operators
) -> None:
    operators.start("--redis-url", REDIS_URL)
    apply(kube, namespace, _large_outputs_workflow("big-io-plain", reader_node_runner=False))

    status = wait_phase(kube, namespace, "big-io-plain", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Failed"
    load = status["nodes"]["load"]
    assert load["reason"] == "InputsUnavailable"
    assert "set nodeRunner: true on node load" in load["message"]
    assert "outputs of node extract are stored in Redis" in status["message"]
    assert [j["metadata"]["labels"]["dagwright.io/node"] for j in list_jobs(kube, namespace, "big-io-plain")] == [
        "extract"
    ]  # nothing ran with `{{ ... }}` unrendered


def test_an_operator_given_a_redis_ca_configmap_mounts_it_into_node_runner_jobs_only(
    kube: Kube, namespace: str, operators: Operators, tmp_path: Path
) -> None:
    ca = admission.self_signed(["redis.infra"])[0].decode()
    kube.kubectl("create", "configmap", "redis-ca", "-n", namespace, f"--from-literal=ca.crt={ca}")
    (tmp_path / "ca.crt").write_text(ca)  # the operator's own copy, as the chart mounts it
    operator = operators.start(
        "--redis-url",
        "rediss://dagwright-redis.invalid:6380/0",
        "--redis-ca-configmap",
        "redis-ca",
        "--redis-ca-file",
        str(tmp_path / "ca.crt"),
    )
    extract = node("extract", command=["extract"], nodeRunner=True)
    apply(kube, namespace, workflow("tls-io", [extract, node("report", "extract", command=["report"])]))

    status = wait_phase(kube, namespace, "tls-io", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded", status  # the API server took the Job with the ConfigMap volume
    jobs = {
        j["metadata"]["labels"]["dagwright.io/node"]: j["spec"]["template"]["spec"] for j in list_jobs(kube, namespace)
    }

    (volume,) = jobs["extract"]["volumes"]
    assert volume["configMap"]["name"] == "redis-ca"
    (container,) = jobs["extract"]["containers"]
    (mount,) = container["volumeMounts"]
    assert (mount["name"], mount["readOnly"]) == (volume["name"], True)
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["DAGWRIGHT_REDIS_URL"] == "rediss://dagwright-redis.invalid:6380/0"
    assert env["DAGWRIGHT_REDIS_CA"] == f"{mount['mountPath']}/ca.crt"

    (report,) = jobs["report"]["containers"]
    assert "volumes" not in jobs["report"] and "volumeMounts" not in report
    assert not [var for var in report["env"] if var["name"].startswith("DAGWRIGHT_REDIS")]
    assert operator.alive() and "Traceback" not in operator.log(), operator.tail()
