"""The few Kubernetes API calls the operator makes, as plain dicts in and out.

The official client's generated models are slow to build for large objects, so every call asks for the raw
JSON (`_preload_content=False`). Idempotency lives here too: creating a Job that exists and deleting one that
is gone both count as success. This is the seam unit tests replace; e2e tests use the real API server.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

import kubernetes
from kubernetes.client.exceptions import ApiException

from dagwright.k8s import metrics, names

log = logging.getLogger("dagwright.k8s")

Body = dict[str, Any]


class JobConflict(Exception):
    """A Job name the operator needs is taken by a Job another Workflow owns."""


class Api(Protocol):
    def create_job(self, namespace: str, job: Body) -> Body | None: ...
    def delete_job(self, namespace: str, name: str) -> None: ...
    def get_job(self, namespace: str, name: str) -> Body | None: ...
    def set_job_suspended(
        self, namespace: str, name: str, suspend: bool, active_deadline_seconds: int | None = None
    ) -> None: ...
    def list_pods(self, namespace: str, job_name: str) -> list[Body]: ...
    def patch_status(self, namespace: str, name: str, patch: Body) -> Body | None: ...
    def delete_workflow(self, namespace: str, name: str, uid: str) -> None: ...
    def emit_event(self, workflow: Body, type_: str, reason: str, message: str) -> None: ...


def load_config() -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 32
    return kubernetes.client.ApiClient(configuration)


class KubeApi:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        # Typed as Any on purpose: we pass and receive plain dicts, which the client accepts at run time.
        self.batch: Any = kubernetes.client.BatchV1Api(api_client)
        self.core: Any = kubernetes.client.CoreV1Api(api_client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(api_client)

    def create_job(self, namespace: str, job: Body) -> Body | None:
        """The created Job, or None when it already existed (an earlier launch of the same attempt).

        A Job of that name owned by another Workflow (a deleted one of the same name, whose Jobs the garbage
        collector has not removed yet) is not ours to adopt: JobConflict, so the pass is retried later.
        """
        _count("POST", "jobs")
        try:
            return _json(self.batch.create_namespaced_job(namespace, job, _preload_content=False))
        except ApiException as error:
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
            self.batch.delete_namespaced_job(name, namespace, body=body, _preload_content=False)
        except ApiException as error:
            if error.status != 404:
                raise

    def get_job(self, namespace: str, name: str) -> Body | None:
        _count("GET", "jobs")
        try:
            return _json(self.batch.read_namespaced_job(name, namespace, _preload_content=False))
        except ApiException as error:
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
            self.batch.patch_namespaced_job(name, namespace, {"spec": spec}, _preload_content=False)
        except ApiException as error:
            if error.status != 404:
                raise

    def list_pods(self, namespace: str, job_name: str) -> list[Body]:
        selector = f"batch.kubernetes.io/job-name={job_name}"
        _count("LIST", "pods")
        response = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        items: list[Body] = _json(response).get("items") or []
        return items

    def patch_status(self, namespace: str, name: str, patch: Body) -> Body | None:
        """The updated Workflow, or None when it no longer exists."""
        _count("PATCH", "workflows/status")
        try:
            response = self.custom.patch_namespaced_custom_object_status(
                names.GROUP,
                names.VERSION,
                namespace,
                names.PLURAL,
                name,
                patch,
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
            return _json(response)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def delete_workflow(self, namespace: str, name: str, uid: str) -> None:
        body = {"propagationPolicy": "Background", "preconditions": {"uid": uid}}
        _count("DELETE", "workflows")
        try:
            self.custom.delete_namespaced_custom_object(
                names.GROUP, names.VERSION, namespace, names.PLURAL, name, body=body, _preload_content=False
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    def emit_event(self, workflow: Body, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the Workflow; failing to post one is logged, never fatal."""
        meta = workflow["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": names.API_VERSION,
                "kind": "Workflow",
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
            self.core.create_namespaced_event(meta["namespace"], event, _preload_content=False)
        except ApiException as error:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], error.reason)


def _count(verb: str, resource: str) -> None:
    metrics.API_REQUESTS.labels(verb, resource).inc()


def _owner_uids(job: Body) -> set[str]:
    return {ref.get("uid", "") for ref in job.get("metadata", {}).get("ownerReferences") or []}


def _json(response: Any) -> Body:
    data: Body = json.loads(response.data)
    return data
