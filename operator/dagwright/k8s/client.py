"""The few Kubernetes API calls the operator makes, as plain dicts in and out.

The official client's generated API classes are not used for these calls: they import a few hundred model
modules (~24 MB of the operator's memory for BatchV1Api and CoreV1Api in kubernetes 37, whose models are
pydantic classes) and validate every request body against its model (a whole V1Job per create), only for us
to send dicts and read the raw JSON back. Requests go through the ApiClient's own connection pool, TLS and
credentials (`configuration.auth_settings()`, which refreshes expiring tokens), and errors are the client's
ApiException as before. Idempotency lives here too: creating a Job that exists and deleting one that is gone
both count as success. This is the seam unit tests replace; e2e tests use the real API server.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import kubernetes
import orjson
import urllib3
from kubernetes.client.exceptions import ApiException

from dagwright.k8s import metrics, names

log = logging.getLogger("dagwright.k8s")

# A request through a connection that died silently must not hold a reconcile worker forever: the pass fails,
# and the worker retries it with backoff on a fresh connection.
_TIMEOUT = urllib3.Timeout(connect=10.0, read=30.0)

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
        self.api_client = api_client

    def create_job(self, namespace: str, job: Body) -> Body | None:
        """The created Job, or None when it already existed (an earlier launch of the same attempt).

        A Job of that name owned by another Workflow (a deleted one of the same name, whose Jobs the garbage
        collector has not removed yet) is not ours to adopt: JobConflict, so the pass is retried later.
        """
        _count("POST", "jobs")
        try:
            return self._request("POST", f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs", body=job)
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
            self._request("DELETE", f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}", body=body)
        except ApiException as error:
            if error.status != 404:
                raise

    def get_job(self, namespace: str, name: str) -> Body | None:
        _count("GET", "jobs")
        try:
            return self._request("GET", f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}")
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
            self._request(
                "PATCH",
                f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs/{_q(name)}",
                body={"spec": spec},
                content_type="application/strategic-merge-patch+json",
            )
        except ApiException as error:
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
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def get_workflow_template(self, namespace: str, name: str) -> Body | None:
        """The WorkflowTemplate, or None when there is none of that name."""
        _count("GET", names.TEMPLATE_PLURAL)
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{names.TEMPLATE_PLURAL}/{_q(name)}"
        try:
            return self._request("GET", path)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def delete_workflow(self, namespace: str, name: str, uid: str) -> None:
        body = {"propagationPolicy": "Background", "preconditions": {"uid": uid}}
        _count("DELETE", "workflows")
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{names.PLURAL}/{_q(name)}"
        try:
            self._request("DELETE", path, body=body)
        except ApiException as error:
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
        except ApiException as error:
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
        except ApiException as error:
            if error.status != 409:
                raise
        return None

    def patch_workflow(self, namespace: str, name: str, patch: Body) -> None:
        """A merge patch of a Workflow (its spec: `stopped`); gone already counts as done."""
        _count("PATCH", "workflows")
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{names.PLURAL}/{_q(name)}"
        try:
            self._request("PATCH", path, body=patch, content_type="application/merge-patch+json")
        except ApiException as error:
            if error.status != 404:
                raise

    def patch_cron_status(self, namespace: str, name: str, patch: Body) -> None:
        _count("PATCH", "cronworkflows/status")
        plural = names.CRON_PLURAL
        path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{_q(namespace)}/{plural}/{_q(name)}/status"
        try:
            self._request("PATCH", path, body=patch, content_type="application/merge-patch+json")
        except ApiException as error:
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
        """One call through the ApiClient's pool, with its credentials; the response's JSON, or ApiException."""
        configuration = self.api_client.configuration
        headers = {**self.api_client.default_headers, "Accept": "application/json", **auth_headers(self.api_client)}
        url = configuration.host + path + ("?" + urlencode(query) if query else "")
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = orjson.dumps(body)
        response = self.api_client.rest_client.pool_manager.request(
            method, url, body=data, headers=headers, preload_content=True, timeout=_TIMEOUT
        )
        if not 200 <= response.status <= 299:
            error = ApiException(status=response.status, reason=response.reason)
            error.body = response.data.decode("utf-8", errors="replace")
            error.headers = response.headers
            raise error
        result: Body = orjson.loads(response.data)
        return result


_AUTH_SECONDS = 30.0  # how long credentials read from the configuration are reused
_auth: dict[int, tuple[float, dict[str, str]]] = {}  # by id(ApiClient): (monotonic expiry, headers)


def auth_headers(api_client: kubernetes.client.ApiClient) -> dict[str, str]:
    """The credential headers of the ApiClient's configuration, read at most every 30 s.

    `configuration.auth_settings()` runs the configuration's refresh hook, which is what renews expiring tokens;
    for a kubeconfig that hook loads the whole kubeconfig again and re-derives the proxy settings from the
    environment: ~1-3 ms of CPU per request, a tenth of the operator's CPU per node before this cache. Tokens
    live far longer than 30 s (a projected service account token for an hour, refreshed by the kubelet well
    before it expires), so reading them twice a minute renews them in time."""
    now = time.monotonic()
    cached = _auth.get(id(api_client))
    if cached is not None and cached[0] > now:
        return cached[1]
    headers = {
        setting["key"]: setting["value"]
        for setting in api_client.configuration.auth_settings().values()
        if setting.get("in") == "header" and setting.get("value")
    }
    _auth[id(api_client)] = (now + _AUTH_SECONDS, headers)
    return headers


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _count(verb: str, resource: str) -> None:
    metrics.API_REQUESTS.labels(verb, resource).inc()


def _owner_uids(job: Body) -> set[str]:
    return {ref.get("uid", "") for ref in job.get("metadata", {}).get("ownerReferences") or []}
