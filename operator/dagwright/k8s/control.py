"""What `dagwright pause|resume|stop|retry|approve|reject` do to a Workflow in the cluster.

Each is one merge patch of the Workflow's spec: the operator's next reconcile sees the change like any other
(level-based), so the same effect is available with plain `kubectl patch`. Retry sets `spec.retryToken` to a
new value and clears `spec.stopped`; the planner resets failed, skipped and stopped nodes when the token
differs from the one recorded in status. Approvals are recorded in `spec.approvals`.
"""

from __future__ import annotations

import uuid
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from dagwright.k8s import names


class ControlError(Exception):
    """A one-line message for the user (missing workflow, no access, no cluster)."""


def patch_for(action: str, node: str | None = None, message: str = "") -> dict[str, Any]:
    if action == "pause":
        return {"spec": {"paused": True}}
    if action == "resume":
        return {"spec": {"paused": False}}
    if action == "stop":
        return {"spec": {"stopped": True}}
    if action == "retry":
        # Approvals are cleared too, so a rejected approval node asks again instead of failing at once.
        token = uuid.uuid4().hex[:12]
        return {"spec": {"stopped": False, "paused": False, "retryToken": token, "approvals": None}}
    if action in ("approve", "reject") and node:
        verdict = {"approved": action == "approve", "message": message}
        return {"spec": {"approvals": {node: verdict}}}
    raise ValueError(f"unknown action {action!r}")


def apply(name: str, namespace: str, patch: dict[str, Any]) -> None:
    try:
        kubernetes.config.load_kube_config()
    except Exception as error:
        raise ControlError(f"no cluster access: {error}") from None
    api = kubernetes.client.CustomObjectsApi()
    try:
        api.patch_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, name, patch)
    except ApiException as error:
        if error.status == 404:
            raise ControlError(f"workflow {namespace}/{name} not found") from None
        if error.status == 403:
            raise ControlError(f"not allowed to change workflow {namespace}/{name} (RBAC)") from None
        raise ControlError(f"the API server refused the change: {error.reason}") from None
    except OSError as error:
        raise ControlError(f"cannot reach the cluster: {error}") from None
