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

from dagwright.k8s import names


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


def apply(api_client: Any, name: str, namespace: str, patch: dict[str, Any]) -> None:
    """One merge patch of the Workflow's spec; API errors go to the caller, which words them for the user."""
    custom: Any = kubernetes.client.CustomObjectsApi(api_client)
    custom.patch_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, name, patch)
