"""Careless and hostile manifests: each is refused with a message that names the field, and nothing breaks.

Two doors. What the CRD schema can see, the API server refuses at `kubectl apply` (nothing is stored). What it
cannot see (cycles, unknown dependencies, template references, cluster-only rules) the admission webhook refuses
(tests/e2e/test_webhook.py); without it (as here: no webhook runs) it is stored, and the operator ends it as phase
Failed with reason InvalidSpec and the validation message, while it keeps serving the other workflows, never
crashing. Templated values arrive in Jobs literally, never evaluated.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from typing import Any

import pytest
import yaml

from .conftest import Kube
from .operator_fixtures import OperatorProcess, apply, list_jobs, wait_phase

pytestmark = pytest.mark.e2e

GOOD_NODE = {"name": "a", "image": "busybox:1.36", "command": ["true"]}


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    body = {"nodes": [copy.deepcopy(GOOD_NODE)], **spec}
    return {"apiVersion": "dagwright.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name}, "spec": body}


def node(**fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(GOOD_NODE), **fields}


# (id, spec fields, text the API server's refusal must contain: the field it names)
REFUSED_BY_THE_API_SERVER: list[tuple[str, dict[str, Any], str]] = [
    ("no-nodes", {"nodes": []}, "spec.nodes"),
    ("nodes-not-a-list", {"nodes": "a,b"}, "spec.nodes"),
    ("uppercase-name", {"nodes": [node(name="Extract")]}, "spec.nodes[0].name"),
    ("name-too-long", {"nodes": [node(name="n" * 64)]}, "spec.nodes[0].name"),
    ("underscore-name", {"nodes": [node(name="load_data")]}, "spec.nodes[0].name"),
    ("empty-name", {"nodes": [node(name="")]}, "spec.nodes[0].name"),
    ("parallelism-zero", {"parallelism": 0}, "spec.parallelism"),
    ("parallelism-negative", {"parallelism": -1}, "spec.parallelism"),
    ("parallelism-a-word", {"parallelism": "four"}, "spec.parallelism"),
    ("parallelism-absurd", {"parallelism": 10**9}, "spec.parallelism"),
    ("retry-limit-negative", {"nodes": [node(retry={"limit": -1})]}, "spec.nodes[0].retry.limit"),
    ("retry-limit-absurd", {"nodes": [node(retry={"limit": 5000})]}, "spec.nodes[0].retry.limit"),
    ("backoff-shrinking", {"nodes": [node(retry={"backoff": {"factor": 0.5}})]}, "factor"),
    ("jitter-over-one", {"nodes": [node(retry={"backoff": {"jitter": 2}})]}, "jitter"),
    ("retry-policy-unknown", {"nodes": [node(retry={"policy": "Sometimes"})]}, "spec.nodes[0].retry.policy"),
    ("exit-code-300", {"nodes": [node(retry={"transientExitCodes": [300]})]}, "transientExitCodes"),
    ("timeout-zero", {"nodes": [node(timeoutSeconds=0)]}, "spec.nodes[0].timeoutSeconds"),
    ("timeout-absurd", {"nodes": [node(timeoutSeconds=10**10)]}, "spec.nodes[0].timeoutSeconds"),
    ("deadline-negative", {"activeDeadlineSeconds": -5}, "spec.activeDeadlineSeconds"),
    ("ttl-negative", {"ttlSecondsAfterFinished": -1}, "spec.ttlSecondsAfterFinished"),
    ("priority-absurd", {"priority": 5000}, "spec.priority"),
    ("pause-mode-unknown", {"pauseMode": "Freeze"}, "spec.pauseMode"),
    ("paused-a-string", {"paused": "yes"}, "spec.paused"),
    ("command-a-string", {"nodes": [node(command="echo hi")]}, "spec.nodes[0].command"),
    ("env-without-name", {"nodes": [node(env=[{"value": "x"}])]}, "spec.nodes[0].env[0].name"),
    ("env-bad-name", {"nodes": [node(env=[{"name": "A=B", "value": "x"}])]}, "spec.nodes[0].env[0].name"),
    ("arg-too-long", {"nodes": [node(args=["x" * 40_000])]}, "spec.nodes[0].args[0]"),
    ("too-many-args", {"nodes": [node(args=["x"] * 300)]}, "spec.nodes[0].args"),
    ("parameter-not-a-string", {"parameters": {"date": 20261125}}, "spec.parameters.date"),
    ("parameter-bad-name", {"parameters": {"a b": "x"}}, "spec.parameters"),
    ("depends-on-a-string", {"nodes": [node(dependsOn="b")]}, "spec.nodes[0].dependsOn"),
    ("approval-without-answer", {"approvals": {"a": {"message": "ok"}}}, "spec.approvals.a.approved"),
    ("unknown-spec-field", {"paralelism": 3}, "paralelism"),
    ("unknown-node-field", {"nodes": [node(dependson=["b"])]}, "dependson"),
]


@pytest.mark.parametrize(
    ("fields", "field"),
    [case[1:] for case in REFUSED_BY_THE_API_SERVER],
    ids=[case[0] for case in REFUSED_BY_THE_API_SERVER],
)
def test_the_api_server_refuses_it_and_names_the_field(
    kube: Kube, namespace: str, fields: dict[str, Any], field: str
) -> None:
    result = kube.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest("bad", **fields)), check=False
    )
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert field in result.stderr, result.stderr
    assert kube.kubectl("get", "workflows", "-n", namespace, "-o", "name").stdout.strip() == ""


def test_ten_thousand_and_one_nodes_are_refused(kube: Kube, namespace: str) -> None:
    nodes = [node(name=f"n{i}") for i in range(10_001)]
    result = kube.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest("huge", nodes=nodes)), check=False
    )
    assert result.returncode != 0 and "spec.nodes" in result.stderr, result.stderr[-500:]


@pytest.mark.parametrize(
    ("what", "fields", "field"),
    [
        ("100,000 nodes", {"nodes": [node(name=f"n{i}") for i in range(100_000)]}, "spec.nodes"),
        ("10 MB of args", {"nodes": [node(args=["x" * 30_000] * 350)]}, "spec.nodes[0].args"),
    ],
    ids=["100k-nodes", "10mb-args"],
)
def test_absurd_sizes_are_refused_before_anything_is_stored(
    kube: Kube, namespace: str, tmp_path: Any, what: str, fields: dict[str, Any], field: str
) -> None:
    """The API server refuses a request this large before reading any field (its 3 MiB limit); `dagwright
    submit` checks the manifest first and names the field."""
    path = tmp_path / "absurd.yaml"
    path.write_text(yaml.safe_dump(manifest("absurd", **fields)))
    assert path.stat().st_size > 3 * 2**20, what  # over the API server's request limit
    result = kube.kubectl("apply", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode != 0 and "too large" in result.stderr.lower(), result.stderr[-500:]
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig}
    main = "import sys; from dagwright.cli import main; sys.exit(main())"
    submit = [sys.executable, "-c", main, "submit", str(path), "-n", namespace]
    refused = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and field in refused.stderr, refused.stderr[-500:]
    assert "Traceback" not in refused.stderr
    assert kube.kubectl("get", "workflows", "-n", namespace, "-o", "name").stdout.strip() == ""


# (name, spec fields, text the InvalidSpec message must contain, the field it must name). The admission webhook
# refuses each of these at `kubectl apply` (tests/e2e/test_webhook.py); without it they end as below.
FAILED_AS_INVALID_SPEC: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "cycle",
        {"nodes": [node(name="a", dependsOn=["c"]), node(name="b", dependsOn=["a"]), node(name="c", dependsOn=["b"])]},
        "dependency cycle: a -> b -> c -> a",
        "spec.nodes[0].dependsOn[0]",
    ),
    ("self-dependency", {"nodes": [node(dependsOn=["a"])]}, "depends on itself", "spec.nodes[0].dependsOn[0]"),
    ("unknown-dependency", {"nodes": [node(dependsOn=["ghost"])]}, "'ghost'", "spec.nodes[0].dependsOn[0]"),
    ("duplicate-names", {"nodes": [node(), node()]}, "duplicate node name 'a'", "spec.nodes[1].name"),
    (
        "unknown-parameter",
        {"nodes": [node(args=["{{ params.missing }}"])]},
        "parameter 'missing'",
        "spec.nodes[0].args[0]",
    ),
    (
        "code-in-a-template",
        {"nodes": [node(args=["{{ __import__('os').system('id') }}"])]},
        "not a valid template",
        "spec.nodes[0].args[0]",
    ),
    (
        "unknown-template-namespace",
        {"nodes": [node(args=["{{ secrets.token }}"])]},
        "not a known reference",
        "spec.nodes[0].args[0]",
    ),
    (
        "outputs-of-a-non-upstream",
        {"nodes": [node(), node(name="b", args=["{{ nodes.a.outputs.k }}"])]},
        "not upstream of 'b'",
        "spec.nodes[1].args[0]",
    ),
    ("no-image-on-a-cluster", {"nodes": [{"name": "a", "command": ["true"]}]}, "needs an image", "spec.nodes[0].image"),
    ("approval-that-runs-something", {"nodes": [node(approval={})]}, "runs nothing", "spec.nodes[0]"),
    (
        "node-runner-without-command",
        {"nodes": [{"name": "a", "image": "x", "nodeRunner": True}]},
        "nodeRunner",
        "spec.nodes[0]",
    ),
]


def test_what_the_schema_cannot_see_ends_as_invalid_spec_and_the_operator_keeps_serving(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    for name, fields, _, _ in FAILED_AS_INVALID_SPEC:
        apply(kube, namespace, manifest(name, **fields))
    # Hostile parameter values: valid, and they must reach the Job exactly as written.
    hostile = {"cmd": "$(rm -rf /); `id`", "tpl": "{{ params.cmd }}", "quote": "'; DROP TABLE x; --"}
    args = ["{{ params.cmd }}", "{{ params.tpl }}", "{{ params.quote }}"]
    apply(kube, namespace, manifest("hostile", parameters=hostile, nodes=[node(args=args)]))

    for name, _, text, field in FAILED_AS_INVALID_SPEC:
        status = wait_phase(kube, namespace, name, "Failed", timeout=30)
        assert text in status["message"] and f"{field}: " in status["message"], (name, status["message"])
        succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
        assert (succeeded["status"], succeeded["reason"]) == ("False", "InvalidSpec")
        assert list_jobs(kube, namespace, name) == []

    assert wait_phase(kube, namespace, "hostile", "Succeeded", "Failed", timeout=60)["phase"] == "Succeeded"
    (job,) = list_jobs(kube, namespace, "hostile")
    # `$$` is how a Job says "a literal $" (the kubelet would expand `$(VAR)` otherwise): the process gets
    # `$(rm -rf /); \`id\``, exactly the parameter's text.
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "$$(rm -rf /); `id`",
        "{{ params.cmd }}",  # substituted once, literally: never evaluated again
        "'; DROP TABLE x; --",
    ]
    assert operator.alive(), operator.tail()
    assert "Traceback" not in operator.log(), operator.tail()
