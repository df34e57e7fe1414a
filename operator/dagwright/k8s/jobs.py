"""Building the Job for one node attempt: a pure function of the workflow and the planner's Launch.

Retries belong to the planner, so the Job never retries on its own (`backoffLimit: 0`, `restartPolicy:
Never`). The owner reference makes deleting a Workflow delete its Jobs. Pods default to the restricted Pod
Security Standard; a user's podTemplate securityContext replaces those defaults.
"""

from __future__ import annotations

from typing import Any

from dagwright import nodeio
from dagwright.k8s import names
from dagwright.planner import Launch
from dagwright.spec import PodTemplate
from dagwright.workflows import Workflow

RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def build_job(workflow: Workflow, launch: Launch, *, suspend: bool = False) -> dict[str, Any]:
    template = workflow.spec.pod_template or PodTemplate()
    node = launch.spec
    labels = {
        names.LABEL_WORKFLOW: names.label_value(workflow.name),
        names.LABEL_NODE: launch.node,
        names.LABEL_ATTEMPT: str(launch.attempt),
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
    }
    pod_labels = {**template.metadata.labels, **(node.pod_metadata.labels if node.pod_metadata else {}), **labels}
    pod_annotations = {**template.metadata.annotations, **(node.pod_metadata.annotations if node.pod_metadata else {})}
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "suspend": suspend,
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations},
            "spec": _pod_spec(launch, template),
        },
    }
    if launch.timeout_seconds is not None:
        job_spec["activeDeadlineSeconds"] = launch.timeout_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.job_name(workflow.name, launch.node, launch.attempt),
            "namespace": workflow.namespace,
            "labels": labels,
            "annotations": {names.ANNOTATION_WORKFLOW_UID: workflow.uid or ""},
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": "Workflow",
                    "name": workflow.name,
                    "uid": workflow.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


def _contract_env() -> list[dict[str, str]]:
    """Where a plain command writes outputs and progress: the termination message carries outputs back."""
    return [
        {"name": "DAGWRIGHT_OUTPUTS", "value": nodeio.TERMINATION_LOG},
        {"name": "DAGWRIGHT_PROGRESS", "value": "/dev/null"},
    ]


def _pod_spec(launch: Launch, template: PodTemplate) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": names.CONTAINER,
        "image": launch.spec.image,
        "env": [*_contract_env(), *({"name": name, "value": value} for name, value in launch.env)],
        "securityContext": template.container_security_context or RESTRICTED_CONTAINER,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if launch.command:
        container["command"] = list(launch.command)
    if launch.args:
        container["args"] = list(launch.args)
    resources = launch.spec.resources or template.resources
    if resources:
        container["resources"] = resources
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "securityContext": template.security_context or RESTRICTED_POD,
    }
    optional = {
        "serviceAccountName": template.service_account_name,
        "nodeSelector": template.node_selector,
        "tolerations": template.tolerations,
        "imagePullSecrets": template.image_pull_secrets,
        "priorityClassName": template.priority_class_name,
    }
    pod.update({key: value for key, value in optional.items() if value})
    return pod
