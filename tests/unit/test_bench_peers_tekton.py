"""The head-to-head benchmark's Tekton objects (bench/peers/tekton_manifests.py): PipelineRun, pods, phases."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "bench" / "peers" / "tekton_manifests.py"
_SPEC = importlib.util.spec_from_file_location("bench_peers_tekton_manifests", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
tekton = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = tekton
_SPEC.loader.exec_module(tekton)

NODES = [
    {"name": "a", "command": ["true"]},
    {"name": "b", "command": ["true"]},
    {"name": "c", "command": ["sh", "-c", "exit 0"], "dependsOn": ["a", "b"]},
]


def test_pipeline_run_has_a_task_per_node_run_after_its_dependencies() -> None:
    body = tekton.pipeline_run("wf1", NODES, "busybox:1.36", "250ms")
    assert body["apiVersion"] == "tekton.dev/v1"
    assert body["kind"] == "PipelineRun"
    tasks = body["spec"]["pipelineSpec"]["tasks"]
    assert [t["name"] for t in tasks] == ["a", "b", "c"]
    assert "runAfter" not in tasks[0]
    assert tasks[2]["runAfter"] == ["a", "b"]
    steps = [t["taskSpec"]["steps"] for t in tasks]
    assert all(len(s) == 1 and s[0]["image"] == "busybox:1.36" for s in steps)
    assert steps[2][0]["command"] == ["sh", "-c", "exit 0"]  # command set: the controller looks no image up


def test_pipeline_run_carries_the_pod_duration_and_the_webhook_defaults() -> None:
    body = tekton.pipeline_run("wf1", NODES, "busybox:1.36", "250ms")
    # annotations of the PipelineRun reach every TaskRun's pod: the plane's kwok Stages read this one
    assert body["metadata"]["annotations"] == {"kwok.dagwright.io/duration": "250ms"}
    assert body["spec"]["timeouts"] == {"pipeline": "1h0m0s"}
    assert body["spec"]["taskRunTemplate"] == {"serviceAccountName": "default"}


def test_node_of_reads_the_pipeline_run_and_task_labels() -> None:
    pod = {"metadata": {"labels": {"tekton.dev/pipelineRun": "wf1", "tekton.dev/pipelineTask": "c"}}}
    assert tekton.node_of(pod) == ("wf1", "c")
    assert tekton.node_of({"metadata": {"labels": {"tekton.dev/pipelineRun": "wf1"}}}) is None
    assert tekton.node_of({"metadata": {}}) is None


def test_phase_comes_from_the_succeeded_condition() -> None:
    def run(*conditions: dict[str, str]) -> dict[str, object]:
        return {"status": {"conditions": list(conditions)}}

    assert tekton.phase_of({}) == ""
    assert tekton.phase_of(run({"type": "Succeeded", "status": "Unknown", "reason": "Running"})) == ""
    assert tekton.phase_of(run({"type": "Succeeded", "status": "True", "reason": "Succeeded"})) == "Succeeded"
    assert tekton.phase_of(run({"type": "Succeeded", "status": "False", "reason": "Failed"})) == "Failed"
    assert tekton.phase_of(run({"type": "Succeeded", "status": "False", "reason": "PipelineRunTimeout"})) == "Failed"
    assert tekton.phase_of(run({"type": "Succeeded", "status": "False", "reason": "Cancelled"})) == "Cancelled"
    assert tekton.phase_of(run({"type": "Other", "status": "True"})) == ""
