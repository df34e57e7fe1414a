"""The few Kubernetes API calls the operator makes, as plain dicts in and out.

The official client is not used for these calls: its generated API classes import a few hundred model
modules (~24 MB of the operator's memory for BatchV1Api and CoreV1Api in kubernetes 37, whose models are
pydantic classes) and validate every request body against its model (a whole V1Job per create), only for us
to send dicts and read the raw JSON back, and the operator process does not import the package at all
(`connection.py`). Requests go through `connection.Connection`'s pool, TLS and credentials; a status outside
2xx is `connection.ApiError`. Idempotency lives here too: creating a Job that exists and deleting one that is gone
both count as success. This is the seam unit tests replace; e2e tests use the real API server.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from dagwright.k8s import metrics, names
from dagwright.k8s.connection import ApiError, Connection, load_credentials

log = logging.getLogger("dagwright.k8s")

Body = dict[str, Any]


class JobConflict(Exception):
    """A Job name the operator needs is taken by a Job another Workflow owns."""


class Api(Protocol):
    """The seam: everything the Reconciler asks of the API server. `KubeApi` is the real one; the unit tests'
    `FakeApi` (tests/unit/k8s/test_reconcile.py) keeps Jobs, pods and Workflows in dicts."""

    def create_job(self, namespace: str, job: Body) -> Body | None: ...
    def delete_job(self, namespace: str, name: str) -> None: ...
    def get_job(self, namespace: str, name: str) -> Body | None: ...
    def set_job_suspended(
        self, namespace: str, name: str, suspend: bool, active_deadline_seconds: int | None = None
    ) -> None: ...
    def list_pods(self, namespace: str, job_name: str) -> list[Body]: ...
    def patch_status(self, namespace: str, name: str, patch: Body) -> Body | None: ...
    def get_workflow_template(self, namespace: str, name: str) -> Body | None: ...
    def delete_workflow(self, namespace: str, name: str, uid: str) -> None: ...
    def emit_event(self, workflow: Body, type_: str, reason: str, message: str) -> None: ...


def load_config() -> Connection:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    return Connection(load_credentials())


class KubeApi:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def create_job(self, namespace: str, job: Body) -> Body | None:
        """The created Job, or None when it already existed (an earlier launch of the same attempt).

        A Job of that name owned by another Workflow (a deleted one of the same name, whose Jobs the garbage
        collector has not removed yet) is not ours to adopt: JobConflict, so the pass is retried later.
        """
        _count("POST", "jobs")
        try:
            return self._request("POST", f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs", body=job)
        except ApiError as error:
            if error.status != 409:
                raise
        name = job["metadata"]["name"]
        existing = self.get_job(namespace, name)
        if existing is None or _owner_uids(existing) != _owner_uids(job):
            raise JobConflict(f"Job {namespace}/{name} exists but is not this Workflow's; waiting for it to go")
        return None

    def delete_job(self, namespace: str, name: str) -> None:
        body = {"propagationPolicy": "Background", "gracePeriodSeconds": 30}
        _count("DELETE", "jobs")
        try:
            self._request("DELETE", f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}", body=body)
        except ApiError as error:
            if error.status != 404:
                raise

    def get_job(self, namespace: str, name: str) -> Body | None:
        _count("GET", "jobs")
        try:
            return self._request("GET", f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}")
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def set_job_suspended(
        self, namespace: str, name: str, suspend: bool, active_deadline_seconds: int | None = None
    ) -> None:
        _count("PATCH", "jobs")
        spec: Body = {"suspend": suspend}
        if active_deadline_seconds is not None:
            spec["activeDeadlineSeconds"] = active_deadline_seconds
        try:
            self._request(
                "PATCH",
                f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}",
                body={"spec": spec},
                content_type="application/strategic-merge-patch+json",
            )
        except ApiError as error:
            if error.status != 404:
                raise

    def list_pods(self, namespace: str, job_name: str) -> list[Body]:
        selector = f"batch.kubernetes.io/job-name={job_name}"
        _count("LIST", "pods")
        listed = self._request("GET", f"/api/v1/namespaces/{_q(namespace)}/pods", query={"labelSelector": selector})
        items: list[Body] = listed.get("items") or []
        return items

    def patch_status(self, namespace: str, name: str, patch: Body) -> Body | None:
        """The updated Workflow, or None when it no longer exists."""
        _count("PATCH", "workflows/status")
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{names.PLURAL}/{_q(name)}/status"
        try:
            return self._request("PATCH", path, body=patch, content_type="application/merge-patch+json")
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def get_workflow_template(self, namespace: str, name: str) -> Body | None:
        """The WorkflowTemplate, or None when there is none of that name."""
        _count("GET", names.TEMPLATE_PLURAL)
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{names.TEMPLATE_PLURAL}/{_q(name)}"
        try:
            return self._request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def delete_workflow(self, namespace: str, name: str, uid: str) -> None:
        body = {"propagationPolicy": "Background", "preconditions": {"uid": uid}}
        _count("DELETE", "workflows")
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{names.PLURAL}/{_q(name)}"
        try:
            self._request("DELETE", path, body=body)
        except ApiError as error:
            if error.status not in (404, 409):
                raise

    def emit_event(self, workflow: Body, type_: str, reason: str, message: str, *, kind: str = "Workflow") -> None:
        """A core/v1 Event on the Workflow (or on another dagwright `kind`); failing to post one is logged, never
        fatal."""
        meta = workflow["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": names.API_VERSION,
                "kind": kind,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "dagwright"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": "dagwright.io/operator",
            "reportingInstance": "dagwright",
        }
        _count("POST", "events")
        try:
            self._request("POST", f"/api/v1/namespaces/{_q(meta['namespace'])}/events", body=event)
        except ApiError as error:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], error.reason)

    # -- CronWorkflows and the Workflows they start (dagwright.k8s.cron)

    def list_workflows(self, namespace: str, selector: str) -> list[Body]:
        _count("LIST", "workflows")
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{names.PLURAL}"
        items: list[Body] = self._request("GET", path, query={"labelSelector": selector}).get("items") or []
        return items

    def create_workflow(self, namespace: str, body: Body) -> Body | None:
        """The created Workflow, or None when one of that name exists (the same run, created before)."""
        _count("POST", "workflows")
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{names.PLURAL}"
        try:
            return self._request("POST", path, body=body)
        except ApiError as error:
            if error.status != 409:
                raise
        return None

    def patch_workflow(self, namespace: str, name: str, patch: Body) -> None:
        """A merge patch of a Workflow (its spec: `stopped`); gone already counts as done."""
        _count("PATCH", "workflows")
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{names.PLURAL}/{_q(name)}"
        try:
            self._request("PATCH", path, body=patch, content_type="application/merge-patch+json")
        except ApiError as error:
            if error.status != 404:
                raise

    def patch_cron_status(self, namespace: str, name: str, patch: Body) -> None:
        _count("PATCH", "cronworkflows/status")
        plural = names.CRON_PLURAL
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{plural}/{_q(name)}/status"
        try:
            self._request("PATCH", path, body=patch, content_type="application/merge-patch+json")
        except ApiError as error:
            if error.status != 404:
                raise

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Body | None = None,
        content_type: str = "application/json",
    ) -> Body:
        """One call through the connection's pool (a read timeout of 30 s: a request through a connection that
        died silently fails the pass, retried with backoff, instead of holding a worker forever); the response's
        JSON, or ApiError."""
        return self.connection.request(method, path, query=query, body=body, content_type=content_type)


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _count(verb: str, resource: str) -> None:
    metrics.API_REQUESTS.labels(verb, resource).inc()


def _owner_uids(job: Body) -> set[str]:
    return {ref.get("uid", "") for ref in job.get("metadata", {}).get("ownerReferences") or []}
