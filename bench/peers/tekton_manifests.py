"""Tekton Pipelines objects for the head-to-head run, and how to read them back: no cluster, so unit-testable.

A dagwright-style workflow (nodes with name, command, dependsOn) becomes one v1 PipelineRun with its Pipeline and
every Task embedded (``pipelineSpec``, ``taskSpec``): one object per workflow, as a dagwright Workflow or an Argo
Workflow is, and no Task or Pipeline objects to create first. Each task has one step with ``command`` set, so the
controller looks no image up, and declares no results.

No admission webhook runs (it would need a Service reachable from the API server), so the PipelineRun is written
with the defaults the webhook would add that the reconciler reads from the stored object (timeout, service
account); the reconcilers default the rest in memory (``SetDefaults``) on every pass.

Pods: the PipelineRun's annotations are copied to each TaskRun and from there to its pod, so the plane's kwok
Stages (which end any running pod carrying ``kwok.dagwright.io/duration``) complete Tekton's pods too. They end
every container with exit code 0 and no termination message, which Tekton reads as a step that succeeded with no
results.
"""

from __future__ import annotations

from typing import Any

GROUP, API_VERSION, PLURAL = "tekton.dev", "v1", "pipelineruns"
LABEL_PIPELINE_RUN = "tekton.dev/pipelineRun"
LABEL_PIPELINE_TASK = "tekton.dev/pipelineTask"
DURATION_ANNOTATION = "kwok.dagwright.io/duration"  # the plane's pod Stages end such a pod after this long
DEFAULT_TIMEOUT = "1h0m0s"  # config-defaults' default-timeout-minutes (60), as the webhook would write it


def pipeline_run(name: str, nodes: list[dict[str, Any]], image: str, pod_duration: str) -> dict[str, Any]:
    """A PipelineRun running dagwright-style `nodes`: one task per node, `runAfter` its dependencies."""
    tasks = []
    for node in nodes:
        task: dict[str, Any] = {
            "name": node["name"],
            "taskSpec": {"steps": [{"name": "run", "image": image, "command": list(node.get("command") or ["true"])}]},
        }
        if node.get("dependsOn"):
            task["runAfter"] = list(node["dependsOn"])
        tasks.append(task)
    return {
        "apiVersion": f"{GROUP}/{API_VERSION}",
        "kind": "PipelineRun",
        "metadata": {"name": name, "annotations": {DURATION_ANNOTATION: pod_duration}},
        "spec": {
            "pipelineSpec": {"tasks": tasks},
            "timeouts": {"pipeline": DEFAULT_TIMEOUT},
            "taskRunTemplate": {"serviceAccountName": "default"},
        },
    }


def node_of(pod: dict[str, Any]) -> tuple[str, str] | None:
    """(PipelineRun, pipeline task) a Tekton pod runs, from the labels the controller puts on it."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    run, task = labels.get(LABEL_PIPELINE_RUN), labels.get(LABEL_PIPELINE_TASK)
    if not run or not task:
        return None
    return run, task


def phase_of(item: dict[str, Any]) -> str:
    """A PipelineRun's phase in dagwright's words, from its Succeeded condition (Tekton has no phase field).

    True is "Succeeded"; False is "Cancelled" when Tekton's reason says so, else "Failed"; unknown or missing
    is "" (still running, or not picked up yet).
    """
    for condition in (item.get("status") or {}).get("conditions") or []:
        if condition.get("type") != "Succeeded":
            continue
        status = condition.get("status")
        if status == "True":
            return "Succeeded"
        if status == "False":
            return "Cancelled" if str(condition.get("reason", "")).startswith("Cancelled") else "Failed"
    return ""
