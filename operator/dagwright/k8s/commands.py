"""What the cluster verbs of the CLI do, as functions of explicit arguments: connect, read, list and create
Workflows, find a node's pod and its log.

Called by `dagwright.cli.cluster` and `dagwright.cli.operator`, which own every flag and every line printed; this
module knows nothing of argparse. It imports the kubernetes client only inside the functions that talk to the
cluster, so that `dagwright run` never loads it. `explain` turns each failure a user can cause (no cluster, no
such workflow, RBAC) into one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from dagwright.k8s import names


class CommandError(Exception):
    """A failure the user can fix, said in one line."""


def explain(error: BaseException, what: str) -> str | None:
    """The one line for a failure a user can cause, or None for a bug (which keeps its traceback).

    `what` names the object the command was about, as in `workflow NS/NAME`.
    """
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException

    if isinstance(error, CommandError):
        return str(error)
    if isinstance(error, ConfigException):
        return f"no cluster access: {error}"
    if isinstance(error, ApiException):
        return _api_problem(what, error)
    if isinstance(error, OSError):
        return f"cannot reach the cluster: {error}"
    return None


def _api_problem(what: str, error: Any) -> str:
    if error.status == 404:
        return f"{what} not found"
    if error.status == 403:
        return f"not allowed (RBAC): {error.reason}"
    if error.status == 409:
        return f"{what} already exists"
    return f"the API server refused: {error.status} {error.reason}"


_POD_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def connect(kubeconfig: str | None = None) -> tuple[Any, str]:
    """An API client from the kubeconfig, and the kubeconfig's namespace (`default` when it names none); in a pod
    without a kubeconfig (the chart's `dagwright ui`), the pod's ServiceAccount and namespace.

    `$KUBECONFIG` is read now, not when the kubernetes client was imported (its default is fixed then), so a
    program that sets it later (the Python SDK's users, tests) gets the cluster it names."""
    from kubernetes import client, config

    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        config.load_kube_config(config_file=path)
    except config.ConfigException:
        if kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise
        config.load_incluster_config()
        with open(_POD_NAMESPACE, encoding="utf-8") as file:
            return client.ApiClient(), file.read().strip() or "default"
    _, context = config.list_kube_config_contexts(config_file=path)
    namespace = (context or {}).get("context", {}).get("namespace") or "default"
    return client.ApiClient(), str(namespace)


def read(api_client: Any, namespace: str, name: str, plural: str = names.PLURAL) -> dict[str, Any]:
    """A Workflow (or, with `plural`, another dagwright object) as the API server has it."""
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(api_client)
    response = custom.get_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, plural, name, _preload_content=False
    )
    body: dict[str, Any] = json.loads(response.data)
    return body


def read_template(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    """A WorkflowTemplate; CommandError naming it when there is none."""
    from kubernetes.client.exceptions import ApiException

    try:
        return read(api_client, namespace, name, names.TEMPLATE_PLURAL)
    except ApiException as error:
        if error.status == 404:
            raise CommandError(f"workflowtemplate {namespace}/{name} not found") from None
        raise


def create(api_client: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """The created Workflow (its name, when the body had only generateName)."""
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(api_client)
    response = custom.create_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.PLURAL, body, _preload_content=False
    )
    created: dict[str, Any] = json.loads(response.data)
    return created


def list_workflows(api_client: Any, namespace: str | None) -> list[dict[str, Any]]:
    """The Workflows of one namespace, or of all (`namespace` None)."""
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(api_client)
    if namespace is None:
        response = custom.list_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL, _preload_content=False)
    else:
        response = custom.list_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.PLURAL, _preload_content=False
        )
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


def request(api_client: Any, namespace: str, name: str, action: str, node: str | None, message: str) -> None:
    """pause, resume, stop, retry, approve or reject: a merge patch of the Workflow's spec (see `control.py`)."""
    from dagwright.k8s import control

    control.apply(api_client, name, namespace, control.patch_for(action, node, message))


def node_pod(
    api_client: Any, namespace: str, name: str, node_name: str, attempt: int | None, item: int | None = None
) -> str:
    """The name of the pod that ran `attempt` (default: the latest) of a node, or of a forEach node's item."""
    from kubernetes import client

    from dagwright.k8s import statuswire

    body = read(api_client, namespace, name)
    node = (statuswire.expanded(body.get("status") or {}).get("nodes") or {}).get(node_name)
    if node is None or not node.get("attempts"):
        raise CommandError(f"node {node_name} of workflow {namespace}/{name} has not run")
    if node.get("items") is not None or item is not None:
        return _item_pod(api_client, namespace, name, node_name, attempt, item)
    attempt = attempt or node["attempts"]
    job = names.job_name(name, node_name, attempt)
    core: Any = client.CoreV1Api(api_client)
    pods = core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items
    if not pods:
        raise CommandError(f"no pod left for {node_name} attempt {attempt} (Job {job})")
    pod_name: str = sorted(pods, key=lambda p: p.metadata.creation_timestamp)[-1].metadata.name
    return pod_name


def _item_pod(api_client: Any, namespace: str, name: str, node_name: str, attempt: int | None, item: int | None) -> str:
    """A forEach item's pod, found by its labels (a succeeded item's attempt count is not kept in status)."""
    from kubernetes import client

    if item is None:
        raise CommandError(f"node {node_name} is a forEach node: say which item with --item N")
    selector = (
        f"{names.LABEL_WORKFLOW}={names.label_value(name)},{names.LABEL_NODE}={node_name},{names.LABEL_ITEM}={item}"
    )
    if attempt is not None:
        selector += f",{names.LABEL_ATTEMPT}={attempt}"
    core: Any = client.CoreV1Api(api_client)
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    if not pods:
        raise CommandError(f"no pod left for {node_name} item {item}" + (f" attempt {attempt}" if attempt else ""))
    latest = max(
        pods, key=lambda p: (int(p.metadata.labels.get(names.LABEL_ATTEMPT, "0")), p.metadata.creation_timestamp)
    )
    pod_name: str = latest.metadata.name
    return pod_name


def pod_log(api_client: Any, namespace: str, pod: str) -> str:
    from kubernetes import client

    core: Any = client.CoreV1Api(api_client)
    text: str = core.read_namespaced_pod_log(pod, namespace, container=names.CONTAINER)
    return text


def follow_pod_log(api_client: Any, namespace: str, pod: str) -> Iterator[str]:
    """The node container's log as it is written, until the container ends."""
    from kubernetes import client

    core: Any = client.CoreV1Api(api_client)
    stream = core.read_namespaced_pod_log(
        pod, namespace, container=names.CONTAINER, follow=True, _preload_content=False
    )
    for chunk in stream.stream():
        yield chunk.decode(errors="replace")
