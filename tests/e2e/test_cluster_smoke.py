"""Smoke tests proving the e2e control plane is a real one.

Why: every later e2e test trusts that this plane validates CRDs, runs the Job controller
and the garbage collector, and lets kwok play out each pod's fate as its annotations say.
These tests check exactly those promises, on the plane or on any cluster in KUBECONFIG.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .cluster.helpers import condition, get_or_none, wait_for
from .conftest import Kube

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "dagwright.io", "v1alpha1", "workflows"


def workflow(name: str, nodes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    nodes = [{"name": "extract"}, {"name": "load", "dependsOn": ["extract"]}] if nodes is None else nodes
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"nodes": nodes},
    }


def job(name: str, annotations: dict[str, str] | None = None, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-pod Job that is never retried; annotations go on its pod template."""
    metadata: dict[str, Any] = {"name": name}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                },
            },
        },
    }


def job_pods(kube: Kube, namespace: str, job_name: str) -> list[client.V1Pod]:
    v1 = client.CoreV1Api(kube.api_client)
    return v1.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items


def wait_job(kube: Kube, namespace: str, name: str, kind: str, timeout: float = 60) -> client.V1Job:
    batch = client.BatchV1Api(kube.api_client)
    return wait_for(
        f"Job {name} {kind}",
        lambda: (j := batch.read_namespaced_job_status(name, namespace)) and condition(j, kind) and j,
        timeout=timeout,
    )


def terminated(pod: client.V1Pod) -> client.V1ContainerStateTerminated:
    statuses = pod.status.container_statuses or []
    assert len(statuses) == 1, statuses
    state = statuses[0].state.terminated
    assert state is not None, statuses[0].state
    return state


def test_workflow_crd_is_served_with_printer_columns(kube: Kube, namespace: str, workflow_crd: object) -> None:
    api = client.CustomObjectsApi(kube.api_client)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, workflow("etl"))

    out = kube.kubectl("get", "workflows", "-n", namespace).stdout
    header = out.splitlines()[0].split()
    assert header[0] == "NAME"
    for column in ("PHASE", "PROGRESS", "AGE"):
        assert column in header, out
    assert "etl" in out
    assert "etl" in kube.kubectl("get", "dwf", "-n", namespace, "-o", "name").stdout


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param([], id="no-nodes"),
        pytest.param([{"name": "Not_A_Label"}], id="bad-node-name"),
        pytest.param([{"dependsOn": []}], id="node-without-name"),
    ],
)
def test_invalid_workflow_is_rejected_by_the_api_server(
    kube: Kube, namespace: str, workflow_crd: object, nodes: list[dict[str, Any]]
) -> None:
    api = client.CustomObjectsApi(kube.api_client)
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, workflow("bad", nodes))
    assert err.value.status == 422, err.value.body
    assert "spec.nodes" in err.value.body


def test_workflow_without_nodes_is_rejected(kube: Kube, namespace: str, workflow_crd: object) -> None:
    api = client.CustomObjectsApi(kube.api_client)
    body = workflow("empty")
    del body["spec"]["nodes"]
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert err.value.status == 422
    assert "spec.nodes" in err.value.body


def test_job_without_annotations_completes(kube: Kube, namespace: str) -> None:
    client.BatchV1Api(kube.api_client).create_namespaced_job(namespace, job("plain"))
    wait_job(kube, namespace, "plain", "Complete")
    (pod,) = job_pods(kube, namespace, "plain")
    assert pod.status.phase == "Succeeded"
    assert terminated(pod).exit_code == 0
    assert terminated(pod).reason == "Completed"


def test_job_annotated_exit_0_completes(kube: Kube, namespace: str) -> None:
    annotations = {"kwok.dagwright.io/exit-code": "0", "kwok.dagwright.io/message": "all good"}
    client.BatchV1Api(kube.api_client).create_namespaced_job(namespace, job("ok", annotations))
    done = wait_job(kube, namespace, "ok", "Complete")
    assert done.status.succeeded == 1
    (pod,) = job_pods(kube, namespace, "ok")
    assert terminated(pod).exit_code == 0
    assert terminated(pod).message == "all good"


def test_job_annotated_exit_3_fails_with_that_exit_code(kube: Kube, namespace: str) -> None:
    annotations = {
        "kwok.dagwright.io/exit-code": "3",
        "kwok.dagwright.io/reason": "OOMKilled",
        "kwok.dagwright.io/message": "out of memory: killed",
    }
    client.BatchV1Api(kube.api_client).create_namespaced_job(namespace, job("boom", annotations))
    failed = wait_job(kube, namespace, "boom", "Failed")
    assert failed.status.failed == 1
    assert not condition(failed, "Complete")
    (pod,) = job_pods(kube, namespace, "boom")
    assert pod.status.phase == "Failed"
    state = terminated(pod)
    assert (state.exit_code, state.reason, state.message) == (3, "OOMKilled", "out of memory: killed")
    shown = kube.kubectl(
        "get", "pod", pod.metadata.name, "-n", namespace,
        "-o", "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}",
    ).stdout  # fmt: skip
    assert shown == "3"


def test_duration_and_never_finish(kube: Kube, namespace: str) -> None:
    batch = client.BatchV1Api(kube.api_client)
    batch.create_namespaced_job(namespace, job("slow", {"kwok.dagwright.io/duration": "3s"}))
    batch.create_namespaced_job(namespace, job("forever", {"kwok.dagwright.io/never-finish": "true"}))
    wait_for(
        "pod of slow Running", lambda: [p for p in job_pods(kube, namespace, "slow") if p.status.phase == "Running"]
    )
    assert not condition(batch.read_namespaced_job_status("slow", namespace), "Complete")
    done = wait_job(kube, namespace, "slow", "Complete", timeout=30)
    pod = job_pods(kube, namespace, "slow")[0]
    state = terminated(pod)
    assert (state.finished_at - state.started_at).total_seconds() >= 2.5
    assert done.status.succeeded == 1
    (forever,) = job_pods(kube, namespace, "forever")
    assert forever.status.phase == "Running"
    assert not condition(batch.read_namespaced_job_status("forever", namespace), "Complete")


def test_deleting_a_running_job_pod_removes_it_despite_the_job_finalizer(kube: Kube, namespace: str) -> None:
    v1 = client.CoreV1Api(kube.api_client)
    client.BatchV1Api(kube.api_client).create_namespaced_job(
        namespace, job("stuck", {"kwok.dagwright.io/never-finish": "true"})
    )
    pod = wait_for(
        "running pod of Job stuck",
        lambda: next((p for p in job_pods(kube, namespace, "stuck") if p.status.phase == "Running"), None),
    )
    assert "batch.kubernetes.io/job-tracking" in (pod.metadata.finalizers or [])
    v1.delete_namespaced_pod(pod.metadata.name, namespace)
    wait_for(
        "the deleted pod to be gone",
        lambda: get_or_none(lambda: v1.read_namespaced_pod(pod.metadata.name, namespace)) is None,
    )
    failed = wait_job(kube, namespace, "stuck", "Failed")
    assert failed.status.failed == 1


def test_deleting_an_owner_deletes_its_jobs(kube: Kube, namespace: str, workflow_crd: object) -> None:
    custom = client.CustomObjectsApi(kube.api_client)
    batch = client.BatchV1Api(kube.api_client)
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, workflow("owner"))
    ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for name in ("owned-a", "owned-b"):
        batch.create_namespaced_job(namespace, job(name, {"kwok.dagwright.io/never-finish": "true"}, owner=ref))
    wait_for(
        "pods of the owned Jobs",
        lambda: len(job_pods(kube, namespace, "owned-a") + job_pods(kube, namespace, "owned-b")) == 2,
    )

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "owner")

    wait_for("owned Jobs to be garbage-collected", lambda: not batch.list_namespaced_job(namespace).items, timeout=60)
    wait_for(
        "their pods to be gone",
        lambda: not client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace).items,
        timeout=60,
    )


def test_apiserver_metrics_count_write_requests(kube: Kube) -> None:
    metrics = kube.kubectl("get", "--raw", "/metrics").stdout
    assert any(line.startswith("apiserver_request_total{") and 'verb="POST"' in line for line in metrics.splitlines())
