"""Building the Job for one node attempt: a pure function of the workflow and the planner's Launch.

Retries belong to the planner, so the Job never retries on its own (`backoffLimit: 0`, `restartPolicy:
Never`). The owner reference makes deleting a Workflow delete its Jobs. Pods default to the restricted Pod
Security Standard; a user's podTemplate securityContext replaces those defaults.

A Launch with `inputs` (templates reading outputs only Redis holds) runs `dagwright-node-runner --render-inputs`,
which reads them from `$DAGWRIGHT_INPUTS`, renders them and runs the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagwright import nodeio
from dagwright.k8s import names
from dagwright.planner import Launch
from dagwright.spec import PodTemplate
from dagwright.workflows import Workflow

NODE_RUNNER = (
    "dagwright-node-runner"  # on the PATH of images built FROM the node-runner image or with dagwright[runner]
)
RENDER_INPUTS = "--render-inputs"
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
REDIS_CA_VOLUME = "dagwright-redis-ca"
REDIS_CA_DIR = "/etc/dagwright/redis-ca"
REDIS_CA_KEY = "ca.crt"  # the key kube-root-ca.crt and trust-manager bundles use too


@dataclass(frozen=True)
class RedisSettings:
    """How node-runner reaches Redis: the URL, and the Secret holding the password (never the password).

    For a `rediss://` URL signed by a private CA, `ca_configmap` names a ConfigMap (key `ca.crt`) that node pods
    mount: a CA certificate is public, so a ConfigMap, like the cluster's own `kube-root-ca.crt`. The kubelet
    resolves both names in the pod's namespace, so they must exist in every namespace that runs nodeRunner nodes.
    """

    url: str
    password_secret: str | None = None  # Secret name; the key is `password`
    password_key: str = "password"
    ca_configmap: str | None = None  # ConfigMap name; the key is `ca.crt`

    @property
    def ca_file(self) -> str:
        """Where node-runner finds the CA in the pod (`$DAGWRIGHT_REDIS_CA`)."""
        return f"{REDIS_CA_DIR}/{REDIS_CA_KEY}"


def build_job(
    workflow: Workflow, launch: Launch, *, suspend: bool = False, redis: RedisSettings | None = None
) -> dict[str, Any]:
    template = workflow.spec.pod_template or PodTemplate()
    node = launch.spec
    labels = {
        names.LABEL_WORKFLOW: names.label_value(workflow.name),
        names.LABEL_NODE: launch.node,
        names.LABEL_ATTEMPT: str(launch.attempt),
        **({names.LABEL_ITEM: str(launch.item)} if launch.item is not None else {}),
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
    }
    pod_labels = {**template.metadata.labels, **(node.pod_metadata.labels if node.pod_metadata else {}), **labels}
    pod_annotations = {**template.metadata.annotations, **(node.pod_metadata.annotations if node.pod_metadata else {})}
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "suspend": suspend,
        "template": {
            "metadata": {"labels": pod_labels, "annotations": pod_annotations},
            "spec": _pod_spec(workflow, launch, template, redis),
        },
    }
    if launch.timeout_seconds is not None:
        job_spec["activeDeadlineSeconds"] = launch.timeout_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.job_name(workflow.name, launch.node, launch.attempt, launch.item),
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


def _contract_env(workflow: Workflow, launch: Launch, redis: RedisSettings | None) -> list[dict[str, Any]]:
    """The node I/O contract: a plain command's outputs go to the termination message; node-runner, when it
    wraps the command, gets its identity and Redis settings (the password by Secret reference only)."""
    env: list[dict[str, Any]] = [
        {"name": "DAGWRIGHT_OUTPUTS", "value": nodeio.TERMINATION_LOG},
        {"name": "DAGWRIGHT_PROGRESS", "value": "/dev/null"},
        {"name": "DAGWRIGHT_WORKFLOW_UID", "value": workflow.uid or ""},
        # An item's own name for node-runner's Redis keys (`work.3`), so items never share one.
        {"name": "DAGWRIGHT_NODE", "value": launch.node if launch.item is None else f"{launch.node}.{launch.item}"},
        {"name": "DAGWRIGHT_ATTEMPT", "value": str(launch.attempt)},
    ]
    if launch.inputs is not None:
        env.append({"name": "DAGWRIGHT_INPUTS", "value": _literal_env(launch.inputs.to_json())})
    if launch.spec.node_runner and redis is not None:
        env.append({"name": "DAGWRIGHT_REDIS_URL", "value": redis.url})
        if redis.password_secret:
            secret = {"name": redis.password_secret, "key": redis.password_key}
            env.append({"name": "DAGWRIGHT_REDIS_PASSWORD", "valueFrom": {"secretKeyRef": secret}})
        if redis.ca_configmap:
            env.append({"name": "DAGWRIGHT_REDIS_CA", "value": redis.ca_file})
    return env


def _pod_spec(workflow: Workflow, launch: Launch, template: PodTemplate, redis: RedisSettings | None) -> dict[str, Any]:
    user_env = [{"name": name, "value": _kubelet_literal(value)} for name, value in launch.env]
    container: dict[str, Any] = {
        "name": names.CONTAINER,
        "image": launch.spec.image,
        "env": [*_contract_env(workflow, launch, redis), *user_env],
        "securityContext": template.container_security_context or RESTRICTED_CONTAINER,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if launch.inputs is not None:
        container["command"] = [NODE_RUNNER, RENDER_INPUTS]
    elif launch.spec.node_runner:
        container["command"] = [NODE_RUNNER, "--", *map(_kubelet_literal, launch.command)]
    elif launch.command:
        container["command"] = [_kubelet_literal(value) for value in launch.command]
    if launch.args:
        container["args"] = [_kubelet_literal(value) for value in launch.args]
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
    if launch.spec.node_runner and redis is not None and redis.ca_configmap:
        _mount_redis_ca(pod, container, redis.ca_configmap)
    return pod


def _mount_redis_ca(pod: dict[str, Any], container: dict[str, Any], configmap: str) -> None:
    """Only the `ca.crt` key, read-only: a ConfigMap without that key keeps the pod from starting (FailedMount
    names the key) rather than starting node-runner without the file `$DAGWRIGHT_REDIS_CA` names."""
    items = [{"key": REDIS_CA_KEY, "path": REDIS_CA_KEY}]
    pod["volumes"] = [{"name": REDIS_CA_VOLUME, "configMap": {"name": configmap, "items": items}}]
    container["volumeMounts"] = [{"name": REDIS_CA_VOLUME, "mountPath": REDIS_CA_DIR, "readOnly": True}]


def _kubelet_literal(text: str) -> str:
    """The kubelet expands `$(VAR)` in command, args and env values and reduces `$$` to `$`. Doubling every `$`
    turns that off, so the process gets exactly the rendered text, as with `dagwright run`: a parameter value
    like `$(DAGWRIGHT_REDIS_PASSWORD)` must not pull another variable's value into the command line."""
    return text.replace("$", "$$")


def _literal_env(text: str) -> str:
    """JSON that the kubelet passes on unchanged: it expands `$(VAR)` in env values, so no `$` may remain (JSON
    reads the escape back as `$`)."""
    return text.replace("$", "\\u0024")
