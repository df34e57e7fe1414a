"""The Reconciler driven through a fake of our own API seam (`client.Api`) and the real watch cache.

Each test plays the cluster: it submits a Workflow, lets Jobs finish or vanish the way watch events would
report them, runs passes, and checks what a user would see: which Jobs exist, what the status says, which
Workflows were deleted or passed again. The e2e suite runs the same reconciler against a real API server.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from dagwright.k8s import names, reconcile, statuswire
from dagwright.k8s.cache import Body, Cache, Key
from dagwright.k8s.reconcile import Reconciler, Settings

IMAGE = "busybox:1.36"


class FakeApi:
    """The API server as the reconciler's seam sees it: Jobs, pods and Workflows in dicts, calls recorded."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], Body] = {}
        self.pods: dict[tuple[str, str], Body] = {}  # by (namespace, job name)
        self.workflows: dict[Key, Body] = {}
        self.templates: dict[Key, Body] = {}
        self.template_reads: list[str] = []
        self.created: list[str] = []
        self.deleted_jobs: list[str] = []
        self.deleted_workflows: list[str] = []
        self.status_patches: list[Body] = []
        self.events: list[tuple[str, str]] = []
        self.messages: list[str] = []  # of the events
        self._versions = itertools.count(100)

    def version(self) -> str:
        return str(next(self._versions))

    def create_job(self, namespace: str, job: Body) -> Body | None:
        name = job["metadata"]["name"]
        if (namespace, name) in self.jobs:
            return None
        body = copy.deepcopy(job)
        body["metadata"].update(uid=f"job-{name}", resourceVersion=self.version())
        body["status"] = {}
        self.jobs[(namespace, name)] = body
        self.created.append(name)
        return copy.deepcopy(body)

    def delete_job(self, namespace: str, name: str) -> None:
        self.deleted_jobs.append(name)
        self.jobs.pop((namespace, name), None)

    def get_job(self, namespace: str, name: str) -> Body | None:
        job = self.jobs.get((namespace, name))
        return copy.deepcopy(job) if job is not None else None

    def set_job_suspended(
        self, namespace: str, name: str, suspend: bool, active_deadline_seconds: int | None = None
    ) -> None:
        self.jobs[(namespace, name)]["spec"]["suspend"] = suspend

    def list_pods(self, namespace: str, job_name: str) -> list[Body]:
        pod = self.pods.get((namespace, job_name))
        return [copy.deepcopy(pod)] if pod is not None else []

    def patch_status(self, namespace: str, name: str, patch: Body) -> Body | None:
        workflow = self.workflows.get((namespace, name))
        if workflow is None:
            return None
        self.status_patches.append(patch)
        workflow["status"] = _merged(workflow.get("status") or {}, patch["status"])
        workflow["metadata"]["resourceVersion"] = self.version()
        return copy.deepcopy(workflow)

    def get_workflow_template(self, namespace: str, name: str) -> Body | None:
        self.template_reads.append(name)
        template = self.templates.get((namespace, name))
        return copy.deepcopy(template) if template is not None else None

    def delete_workflow(self, namespace: str, name: str, uid: str) -> None:
        self.deleted_workflows.append(name)
        self.workflows.pop((namespace, name), None)

    def emit_event(self, workflow: Body, type_: str, reason: str, message: str) -> None:
        self.events.append((workflow["metadata"]["name"], reason))
        self.messages.append(message)


def _merged(target: Body, patch: Body) -> Body:
    """RFC 7386 merge patch."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


class Cluster:
    """The fake API, the real cache fed the way watch events feed it, and a reconciler over both."""

    def __init__(
        self,
        *,
        max_running_nodes: int | None = None,
        is_leader: Callable[[], bool] = lambda: True,
        api: FakeApi | None = None,
        status_interval: float = 0.0,
    ) -> None:
        self.api = api or FakeApi()
        self.cache = Cache()
        self.requeued: list[Key] = []
        self.delays: list[float] = []
        # One True per pass that should find another event queued behind it (`queued_again`), in order.
        self.more: list[bool] = []
        self.reconciler = Reconciler(
            api=self.api,
            cache=self.cache,
            settings=Settings(max_running_nodes=max_running_nodes, status_interval=status_interval),
            is_leader=is_leader,
            identity="replica-1",
            requeue=lambda key, delay: (self.requeued.append(key), self.delays.append(delay)),
            queued_again=lambda key: bool(self.more) and self.more.pop(),
            progress=None,
        )

    def submit(self, name: str, nodes: list[Body] | None, **spec: Any) -> Key:
        """A Workflow with these nodes, or (None) without: a template-based one (spec holds templateRef)."""
        body = {
            "apiVersion": names.API_VERSION,
            "kind": "Workflow",
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": self.api.version(),
                "creationTimestamp": "2026-11-29T00:00:00Z",
            },
            "spec": {**({"nodes": nodes} if nodes is not None else {}), **spec},
        }
        self.api.workflows[("ns", name)] = body
        self.cache.put_workflow(copy.deepcopy(body))
        return ("ns", name)

    def template(self, name: str, nodes: list[Body], **spec: Any) -> None:
        """Create or replace a WorkflowTemplate."""
        metadata = {"name": name, "namespace": "ns", "resourceVersion": self.api.version()}
        body = {"apiVersion": names.API_VERSION, "kind": "WorkflowTemplate", "metadata": metadata}
        self.api.templates[("ns", name)] = {**body, "spec": {"nodes": nodes, **spec}}

    def edit(self, key: Key, **spec: Any) -> None:
        """A user changes the Workflow's spec: a new generation, as the API server would count it."""
        body = self.api.workflows[key]
        body["spec"].update(spec)
        body["metadata"]["generation"] += 1
        body["metadata"]["resourceVersion"] = self.api.version()
        self.cache.put_workflow(copy.deepcopy(body))

    def reconcile(self, key: Key) -> float | None:
        return self.reconciler.reconcile(key)

    def restarted(self) -> Cluster:
        """A new operator process on the same API server: its cache filled by its first lists."""
        new = Cluster(api=self.api)
        for body in self.api.workflows.values():
            new.cache.put_workflow(copy.deepcopy(body))
        for job in self.api.jobs.values():
            new.cache.put_job(copy.deepcopy(job))
        for pod in self.api.pods.values():
            new.cache.put_pod(copy.deepcopy(pod))
        return new

    def finish(self, job_name: str, exit_code: int = 0) -> None:
        """The Job ends, and the watch brings its pod and then the Job."""
        job = self.api.jobs[("ns", job_name)]
        kind = "Complete" if exit_code == 0 else "Failed"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        job["status"] = {"conditions": [{"type": kind, "status": "True", "lastTransitionTime": now}]}
        job["metadata"]["resourceVersion"] = self.api.version()
        terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
        self.pod(job_name, {"phase": "Succeeded" if exit_code == 0 else "Failed"}, terminated=terminated)
        self.cache.put_job(copy.deepcopy(job))

    def pod(self, job_name: str, status: Body, *, terminated: Body | None = None, age: float = 0.0) -> None:
        created = datetime.now(UTC) - timedelta(seconds=age)
        state = {"terminated": terminated} if terminated is not None else status.pop("state", {})
        pod = {
            "metadata": {
                "name": f"{job_name}-pod",
                "namespace": "ns",
                "uid": f"pod-{job_name}",
                "resourceVersion": self.api.version(),
                "labels": {"batch.kubernetes.io/job-name": job_name},
                "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "status": {**status, "containerStatuses": [{"name": names.CONTAINER, "state": state}]},
        }
        self.api.pods[("ns", job_name)] = pod
        self.cache.put_pod(copy.deepcopy(pod))

    def pod_ends(self, job_name: str, exit_code: int = 0, message: str | None = None) -> Key | None:
        """The Job's own pod ends (its watch event arrives); the Job's condition has not come yet. Returns what
        the pod event queues."""
        terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
        if message is not None:
            terminated["message"] = message
        self.pod(job_name, {"phase": "Succeeded" if exit_code == 0 else "Failed"}, terminated=terminated)
        pod = self.api.pods[("ns", job_name)]
        pod["metadata"]["ownerReferences"] = [{"kind": "Job", "uid": f"job-{job_name}", "controller": True}]
        pod["metadata"]["resourceVersion"] = self.api.version()
        return self.cache.put_pod(copy.deepcopy(pod))

    def condition_arrives(self, job_name: str) -> Key | None:
        """The Job controller writes the condition the ended pod implies; returns what the Job event queues."""
        job = self.api.jobs[("ns", job_name)]
        kind = "Complete" if self.api.pods[("ns", job_name)]["status"]["phase"] == "Succeeded" else "Failed"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        job["status"] = {"conditions": [{"type": kind, "status": "True", "lastTransitionTime": now}]}
        job["metadata"]["resourceVersion"] = self.api.version()
        return self.cache.put_job(copy.deepcopy(job))

    def vanish(self, job_name: str) -> None:
        """Someone deletes the Job before it ends, and the watch reports it."""
        job = self.api.jobs.pop(("ns", job_name))
        self.cache.drop_job(job)

    def status(self, key: Key) -> Body:
        status: Body = self.api.workflows[key].get("status") or {}
        return status

    def phases(self, key: Key) -> dict[str, str]:
        return {name: node["phase"] for name, node in self.status(key).get("nodes", {}).items()}


def node(name: str, *deps: str, **fields: Any) -> Body:
    return {"name": name, "image": IMAGE, "command": ["true"], "dependsOn": list(deps), **fields}


DIAMOND = [node("a"), node("b", "a"), node("c", "a"), node("d", "b", "c")]


def test_ready_nodes_get_jobs_and_the_status_records_them() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", DIAMOND)
    cluster.reconcile(key)
    assert cluster.api.created == ["wf-a-1"]
    job = cluster.api.jobs[("ns", "wf-a-1")]
    assert job["metadata"]["annotations"][names.ANNOTATION_CREATED_BY] == "replica-1"
    assert cluster.status(key)["phase"] == "Running"
    assert cluster.phases(key) == {"a": "Running", "b": "Pending", "c": "Pending", "d": "Pending"}

    cluster.reconcile(key)  # nothing new: nothing created, nothing written
    assert cluster.api.created == ["wf-a-1"] and len(cluster.api.status_patches) == 1

    cluster.finish("wf-a-1")
    cluster.reconcile(key)
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1", "wf-c-1"]
    assert cluster.phases(key)["a"] == "Succeeded"
    for job_name in ("wf-b-1", "wf-c-1"):
        cluster.finish(job_name)
    cluster.reconcile(key)
    cluster.finish("wf-d-1")
    cluster.reconcile(key)
    assert cluster.status(key)["phase"] == "Succeeded"
    assert ("wf", "Succeeded") in cluster.api.events


def test_an_ended_pod_launches_the_dependents_before_its_jobs_condition_which_then_costs_no_pass() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a"), node("b", "a"), node("c", "a")])
    cluster.reconcile(key)
    assert cluster.pod_ends("wf-a-1", message='{"rows": 42}') == key
    cluster.reconcile(key)
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1", "wf-c-1"]
    recorded = cluster.status(key)["nodes"]["a"]
    assert (recorded["phase"], recorded["outputs"]) == ("Succeeded", {"rows": 42})

    patches = len(cluster.api.status_patches)
    assert cluster.condition_arrives("wf-a-1") is None  # the Job's condition: the status already says it
    cluster.reconcile(key)
    assert len(cluster.api.status_patches) == patches and cluster.status(key)["nodes"]["a"] == recorded

    assert cluster.pod_ends("wf-b-1", exit_code=1) == key  # a failure reads the same way
    cluster.reconcile(key)
    assert cluster.status(key)["nodes"]["b"]["phase"] == "Failed"
    assert cluster.status(key)["nodes"]["b"]["exitCode"] == 1
    assert cluster.condition_arrives("wf-b-1") is None


def _may_wait(cluster: Cluster, key: Key, job_name: str, node_name: str, exit_code: int = 0) -> bool:
    """The Job's pod ends, labelled as the Job controller labels it; whether its pass may wait (`may_wait`)."""
    cluster.pod_ends(job_name, exit_code)
    pod = copy.deepcopy(cluster.api.pods[("ns", job_name)])
    pod["metadata"]["labels"].update({names.LABEL_NODE: node_name, names.LABEL_ATTEMPT: "1"})
    return cluster.reconciler.may_wait(key, pod)


def test_a_success_that_starts_nothing_may_wait_for_the_next_pass_and_one_that_does_may_not() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a"), node("b"), node("c"), node("d", "a", "b")])
    cluster.reconcile(key)
    assert _may_wait(cluster, key, "wf-a-1", "a") is True  # d still waits for b
    assert _may_wait(cluster, key, "wf-b-1", "b") is False  # d can start
    cluster.reconcile(key)
    assert "wf-d-1" in cluster.api.created
    assert cluster.phases(key)["a"] == cluster.phases(key)["b"] == "Succeeded"  # the one that waited is recorded
    assert _may_wait(cluster, key, "wf-c-1", "c", exit_code=1) is False  # a failure never waits

    limited = Cluster(max_running_nodes=10)  # an end may free room for another workflow: never waits
    other = limited.submit("wf", [node("a"), node("b"), node("c", "a", "b")])
    limited.reconcile(other)
    assert _may_wait(limited, other, "wf-a-1", "a") is False


def test_passes_while_more_events_are_queued_leave_the_status_write_to_the_last() -> None:
    """Both sides of a diamond finishing together: one status patch records them both."""
    cluster = Cluster()
    key = cluster.submit("wf", DIAMOND)
    cluster.reconcile(key)
    cluster.finish("wf-a-1")
    cluster.reconcile(key)
    patches = len(cluster.api.status_patches)

    cluster.finish("wf-b-1")
    cluster.more.append(True)  # c's Job event is already queued behind this pass
    cluster.reconcile(key)
    assert len(cluster.api.status_patches) == patches  # not written: the next pass will
    assert cluster.phases(key)["b"] == "Running"

    cluster.finish("wf-c-1")
    cluster.reconcile(key)
    assert len(cluster.api.status_patches) == patches + 1
    assert cluster.phases(key) == {"a": "Succeeded", "b": "Succeeded", "c": "Succeeded", "d": "Running"}
    assert "wf-d-1" in cluster.api.created


def test_a_pass_that_loses_the_leadership_creates_nothing_more_and_writes_nothing() -> None:
    answers = iter([True])  # leader when the pass starts, not by the time it creates Jobs
    cluster = Cluster(is_leader=lambda: next(answers, False))
    key = cluster.submit("wf", [node("a"), node("b"), node("c")])
    assert cluster.reconcile(key) is None
    assert cluster.api.created == []
    assert cluster.api.status_patches == []
    assert cluster.reconcile(key) is None  # a follower does not even look
    assert cluster.api.created == []


def test_a_follower_does_nothing() -> None:
    cluster = Cluster(is_leader=lambda: False)
    key = cluster.submit("wf", DIAMOND)
    assert cluster.reconcile(key) is None
    assert cluster.api.created == [] and cluster.api.status_patches == [] and cluster.api.events == []


@pytest.mark.parametrize("watched", [True, False], ids=["deletion-watched", "deletion-missed"])
def test_a_job_deleted_before_it_ended_is_a_lost_attempt_and_retried(watched: bool) -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a", retry={"limit": 1, "backoff": {"initialSeconds": 0}})])
    cluster.reconcile(key)
    if watched:
        cluster.vanish("wf-a-1")
    else:  # the operator missed the event (a restart): the cache no longer has the Job, the API server neither
        cluster.api.jobs.pop(("ns", "wf-a-1"))
        cluster.cache = cluster.reconciler.cache = Cache()
        cluster.cache.put_workflow(copy.deepcopy(cluster.api.workflows[key]))
    cluster.reconcile(key)  # no backoff: the retry starts in the same pass
    assert cluster.api.created == ["wf-a-1", "wf-a-2"]
    a = cluster.status(key)["nodes"]["a"]
    assert (a["phase"], a["attempts"]) == ("Running", 2)
    assert ("wf", "NodeRetrying") in cluster.api.events
    assert any("JobDeleted" in message for message in cluster.api.messages)


def test_a_job_deleted_without_retries_fails_the_workflow() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a"), node("b", "a")])
    cluster.reconcile(key)
    cluster.vanish("wf-a-1")
    cluster.reconcile(key)
    assert cluster.status(key)["phase"] == "Failed"
    assert cluster.phases(key) == {"a": "Failed", "b": "Skipped"}
    assert cluster.status(key)["nodes"]["a"]["reason"] == "JobDeleted"


def test_a_pod_stuck_on_its_image_fails_the_attempt_and_its_job_is_deleted() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a")])
    cluster.reconcile(key)
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}
    cluster.pod("wf-a-1", {"phase": "Pending", "state": waiting}, age=60)
    cluster.reconcile(key)
    assert cluster.api.deleted_jobs == []  # not stuck for long yet
    assert cluster.phases(key) == {"a": "Running"}

    cluster.pod("wf-a-1", {"phase": "Pending", "state": waiting}, age=600)
    cluster.reconcile(key)
    assert cluster.api.deleted_jobs == ["wf-a-1"]
    a = cluster.status(key)["nodes"]["a"]
    assert (a["phase"], a["reason"]) == ("Failed", "ImagePullFailed")
    assert "no such image" in a["message"]


def test_a_finished_workflow_is_deleted_when_its_ttl_passes() -> None:
    cluster = Cluster()
    keep = cluster.submit("keep", [node("a")], ttlSecondsAfterFinished=3600)
    drop = cluster.submit("drop", [node("a")], ttlSecondsAfterFinished=0)
    for key in (keep, drop):
        cluster.reconcile(key)
        cluster.finish(f"{key[1]}-a-1")
    delay = cluster.reconcile(keep)
    assert delay is not None and 3500 < delay <= 3600  # the next pass is due when the TTL runs out
    cluster.reconcile(drop)
    assert cluster.api.deleted_workflows == ["drop"]


def test_the_operator_wide_limit_holds_and_freed_room_goes_to_waiting_workflows() -> None:
    cluster = Cluster(max_running_nodes=2)
    first = cluster.submit("first", [node("a"), node("b")])
    second = cluster.submit("second", [node("a"), node("b")])
    cluster.reconcile(first)
    cluster.reconcile(second)
    assert sorted(cluster.api.created) == ["first-a-1", "first-b-1"]  # second got no room
    assert cluster.phases(second) == {"a": "Pending", "b": "Pending"}

    cluster.finish("first-a-1")
    cluster.reconcile(first)
    assert second in cluster.requeued  # room came free: the waiting workflow is passed again
    cluster.reconcile(second)
    assert sorted(cluster.api.created) == ["first-a-1", "first-b-1", "second-a-1"]
    assert cluster.reconciler.waiting_total() == 1


def test_room_a_higher_priority_workflow_waits_for_is_not_given_to_a_lower_one() -> None:
    cluster = Cluster(max_running_nodes=2)
    low = cluster.submit("low", [node(f"n{i}") for i in range(4)])
    cluster.reconcile(low)
    high = cluster.submit("high", [node("a"), node("b")], priority=5)
    cluster.reconcile(high)
    assert sorted(cluster.api.created) == ["low-n0-1", "low-n1-1"]

    cluster.finish("low-n0-1")
    cluster.reconcile(low)  # its pass runs first, but the freed slot is reserved for `high`
    assert sorted(cluster.api.created) == ["low-n0-1", "low-n1-1"]
    assert high in cluster.requeued
    cluster.reconcile(high)
    assert sorted(cluster.api.created) == ["high-a-1", "low-n0-1", "low-n1-1"]


def test_an_invalid_spec_is_recorded_once_and_runs_nothing() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a", "b"), node("b", "a")])
    cluster.reconcile(key)
    cluster.reconcile(key)
    status = cluster.status(key)
    assert status["phase"] == "Failed" and "dependency cycle" in status["message"]
    assert cluster.api.created == [] and len(cluster.api.status_patches) == 1
    assert cluster.api.events == [("wf", "InvalidSpec")]


def test_a_manifest_with_the_old_retry_key_is_refused_naming_the_new_one() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a"), node("b"), node("c", retry={"true": "Transient"})])
    cluster.reconcile(key)
    assert cluster.api.created == []
    assert "spec.nodes[2].retry.on: renamed to retry.policy" in cluster.status(key)["message"]


def test_a_template_based_workflow_runs_the_template_as_it_was_when_it_started() -> None:
    cluster = Cluster()
    cluster.template(
        "etl", [node("extract", args=["{{ params.date }}"]), node("load", "extract")], parameters={"date": "x"}
    )
    key = cluster.submit("etl-1", None, templateRef={"name": "etl"}, parameters={"date": "2026-11-29"})
    cluster.reconcile(key)
    assert cluster.api.created == ["etl-1-extract-1"]
    assert cluster.api.jobs[("ns", "etl-1-extract-1")]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "2026-11-29"
    ]
    snapshot = cluster.status(key)["template"]
    assert snapshot["name"] == "etl" and [n["name"] for n in snapshot["spec"]["nodes"]] == ["extract", "load"]

    # The template changes, the operator restarts (nothing cached) and the Workflow is edited (a new generation):
    # the run keeps the template it started with, and never reads it again.
    cluster.template("etl", [node("other")], parameters={"date": "x"})
    cluster.reconciler = Cluster().reconciler
    cluster.reconciler.api = cluster.api
    cluster.reconciler.cache = cluster.cache
    cluster.edit(key, priority=5)
    cluster.finish("etl-1-extract-1")
    cluster.reconcile(key)
    assert cluster.api.created == ["etl-1-extract-1", "etl-1-load-1"]
    assert cluster.api.template_reads == ["etl"]
    assert cluster.status(key)["template"] == snapshot


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"templateRef": {"name": "nope"}}, "spec.templateRef.name: WorkflowTemplate 'nope' not found in ns"),
        (
            {"templateRef": {"name": "etl"}, "parameters": {"dat": "1"}},
            "spec.parameters.dat: WorkflowTemplate 'etl' declares no parameter 'dat' (it declares: date)",
        ),
    ],
    ids=["missing-template", "undeclared-parameter"],
)
def test_a_template_problem_ends_the_workflow_invalid_naming_the_field(spec: Body, message: str) -> None:
    cluster = Cluster()
    cluster.template("etl", [node("extract")], parameters={"date": "x"})
    key = cluster.submit("etl-1", None, **spec)
    cluster.reconcile(key)
    status = cluster.status(key)
    assert status["phase"] == "Failed" and status["message"] == f"invalid spec: {message}"
    assert status["conditions"][0]["reason"] == "InvalidSpec" and "template" not in status
    assert cluster.api.created == [] and cluster.api.events == [("etl-1", "InvalidSpec")]


def test_the_template_of_a_started_workflow_cannot_be_swapped() -> None:
    cluster = Cluster()
    cluster.template("etl", [node("extract")])
    cluster.template("other", [node("x")])
    key = cluster.submit("etl-1", None, templateRef={"name": "etl"})
    cluster.reconcile(key)
    cluster.edit(key, templateRef={"name": "other"})
    cluster.reconcile(key)
    assert "spec.templateRef.name: cannot change once the Workflow started" in cluster.status(key)["message"]
    assert cluster.api.created == ["etl-1-extract-1"]


@pytest.fixture(autouse=True)
def _no_coalescing_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Coalescing is bounded in time; these passes run far faster than that bound, so it never cuts in."""
    monkeypatch.setattr(reconcile, "_COALESCE_MAX", 60.0)
    yield


def test_a_foreach_pass_with_nothing_new_writes_nothing_and_job_updates_queue_no_pass() -> None:
    """What kept a forEach workflow's passes several times more frequent than plain nodes': each running Job's
    status updates (active, ready) queued a pass; a pass with nothing new must also write nothing."""
    cluster = Cluster()
    key = cluster.submit("wf", [node("each", forEach={"items": [1, 2, 3]})])
    cluster.reconcile(key)
    assert len(cluster.api.created) == 3 and len(cluster.api.status_patches) == 1
    cluster.reconcile(key)
    assert len(cluster.api.status_patches) == 1

    job = cluster.api.jobs[("ns", cluster.api.created[0])]
    job["status"] = {"active": 1, "ready": 1}
    job["metadata"]["resourceVersion"] = cluster.api.version()
    assert cluster.cache.put_job(copy.deepcopy(job)) is None  # stored, but no pass queued

    cluster.finish(cluster.api.created[0])
    cluster.reconcile(key)
    assert cluster.status(key)["nodes"]["each"]["progress"] == "1/3"
    patches = len(cluster.api.status_patches)
    cluster.reconcile(key)
    cluster.reconcile(key)
    assert len(cluster.api.status_patches) == patches


# -- the parsed status kept between passes


def _written_elsewhere(cluster: Cluster, key: Key, **nodes: Body) -> None:
    """Another writer (a replica that led before us, a user's `kubectl patch`) changes the stored status: a new
    resourceVersion, which the watch brings."""
    body = cluster.api.workflows[key]
    status = copy.deepcopy(body["status"])
    if "compressedNodes" in status:
        stored = statuswire.decode(status["compressedNodes"])
        stored.update(nodes)
        status["compressedNodes"] = statuswire.encode(stored)
    else:
        status["nodes"].update(nodes)
    body["status"] = status
    body["metadata"]["resourceVersion"] = cluster.api.version()
    cluster.cache.put_workflow(copy.deepcopy(body))


SUCCEEDED_A = {"phase": "Succeeded", "attempts": 1, "exitCode": 0, "finishedAt": "2026-11-29T00:00:01Z"}


def test_a_status_written_by_someone_else_is_read_not_the_one_this_replica_remembers() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", DIAMOND)
    cluster.reconcile(key)  # a runs; this replica remembers the status it wrote
    _written_elsewhere(cluster, key, a=SUCCEEDED_A)  # a's Job is still running as far as our cache knows
    cluster.reconcile(key)
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1", "wf-c-1"]
    assert cluster.phases(key) == {"a": "Succeeded", "b": "Running", "c": "Running", "d": "Pending"}


def test_a_workflow_recreated_under_the_same_name_starts_afresh_whatever_its_resource_version() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", DIAMOND)
    cluster.reconcile(key)
    cluster.finish("wf-a-1")
    cluster.reconcile(key)
    assert cluster.phases(key)["a"] == "Succeeded"
    old = cluster.api.workflows[key]
    cluster.cache.drop_workflow(copy.deepcopy(old))
    new = copy.deepcopy(old)
    del new["status"]
    new["metadata"]["uid"] = "uid-wf-2"  # the same resourceVersion string, as a fake can make it: still not ours
    cluster.api.workflows[key] = new
    cluster.cache.put_workflow(copy.deepcopy(new))
    cluster.reconcile(key)
    assert cluster.phases(key) == {"a": "Running", "b": "Pending", "c": "Pending", "d": "Pending"}


def _chain(length: int) -> list[Body]:
    return [node(f"n{i:04d}", *([f"n{i - 1:04d}"] if i else [])) for i in range(length)]


def test_a_large_workflow_stores_its_nodes_compressed_and_reads_changes_made_by_others() -> None:
    cluster = Cluster()
    key = cluster.submit("big", _chain(statuswire.COMPRESS_ABOVE + 1))
    cluster.reconcile(key)
    for attempt in range(3):
        cluster.finish(f"big-n{attempt:04d}-1")
        cluster.reconcile(key)
    stored = cluster.status(key)
    assert "nodes" not in stored and stored["progress"] == "3/1001"
    nodes = statuswire.decode(stored["compressedNodes"])
    assert [nodes[f"n{i:04d}"]["phase"] for i in range(5)] == ["Succeeded"] * 3 + ["Running", "Pending"]

    _written_elsewhere(cluster, key, n0003={**SUCCEEDED_A, "attempts": 1})
    cluster.reconcile(key)
    assert "big-n0004-1" in cluster.api.created
    nodes = statuswire.decode(cluster.status(key)["compressedNodes"])
    assert (nodes["n0003"]["phase"], nodes["n0004"]["phase"]) == ("Succeeded", "Running")


def test_a_spec_edit_the_status_write_brings_back_before_its_watch_event_is_not_lost() -> None:
    """The status patch's response is the whole Workflow: at a new generation its spec is the one kept."""
    cluster = Cluster()
    key = cluster.submit("wf", [node("a"), node("b", "a")])
    cluster.reconcile(key)
    body = cluster.api.workflows[key]  # a user adds a node; the watch event has not arrived yet
    body["spec"]["nodes"] = [*body["spec"]["nodes"], node("c", "b")]
    body["metadata"]["generation"] += 1
    body["metadata"]["resourceVersion"] = cluster.api.version()
    cluster.finish("wf-a-1")
    cluster.reconcile(key)  # compiled from the cached (old) spec; its status write returns the new one
    cluster.reconcile(key)
    assert cluster.phases(key) == {"a": "Succeeded", "b": "Running", "c": "Pending"}


# -- passes skip settled Jobs: nothing a pass must see is skipped


class _Clock(datetime):
    """`datetime` as the reconciler reads it, moved forward by `ahead` (time passing with no watch event)."""

    ahead = timedelta(0)

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + cls.ahead


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> type[_Clock]:
    monkeypatch.setattr(_Clock, "ahead", timedelta(0))
    monkeypatch.setattr(reconcile, "datetime", _Clock)
    return _Clock


def _settled_first(cluster: Cluster, key: Key) -> None:
    """Run `first` to its end and record it, so later passes have a settled Job to skip."""
    cluster.reconcile(key)
    cluster.finish("wf-first-1")
    cluster.reconcile(key)
    assert "wf-first-1" in cluster.cache.jobs("uid-wf").settled


def test_a_running_node_times_out_with_no_job_event_at_all(clock: type[_Clock]) -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("first"), node("a", "first", timeoutSeconds=30)])
    _settled_first(cluster, key)
    assert cluster.phases(key)["a"] == "Running"

    clock.ahead = timedelta(seconds=31)  # no watch event: only time passed
    cluster.reconcile(key)
    a = cluster.status(key)["nodes"]["a"]
    assert (a["phase"], a["reason"]) == ("Failed", "Timeout")
    assert "wf-a-1" in cluster.api.deleted_jobs


def test_a_pod_that_gets_stuck_with_no_further_event_fails_the_attempt(clock: type[_Clock]) -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("first"), node("a", "first")])
    _settled_first(cluster, key)
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}
    cluster.pod("wf-a-1", {"phase": "Pending", "state": waiting}, age=60)
    cluster.reconcile(key)
    assert cluster.phases(key)["a"] == "Running"

    clock.ahead = timedelta(minutes=10)  # the pod's last event was its ImagePullBackOff, long ago
    cluster.reconcile(key)
    a = cluster.status(key)["nodes"]["a"]
    assert (a["phase"], a["reason"]) == ("Failed", "ImagePullFailed")
    assert cluster.api.deleted_jobs == ["wf-a-1"]


def test_a_job_that_ended_during_a_coalesced_pass_is_recorded_by_the_next_pass_without_a_new_event() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("first"), node("a", "first"), node("b", "first"), node("c", "a", "b")])
    _settled_first(cluster, key)
    cluster.finish("wf-a-1")
    cluster.more.append(True)
    cluster.reconcile(key)  # coalesced: nothing written
    assert cluster.phases(key)["a"] == "Running"

    cluster.reconcile(key)  # the queued pass: no event about a's Job since
    assert cluster.phases(key)["a"] == "Succeeded"


def test_a_job_that_ended_before_a_pass_raised_is_recorded_by_the_next_pass() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("first"), node("a", "first"), node("b", "first"), node("c", "a")])
    _settled_first(cluster, key)
    cluster.finish("wf-a-1")
    create = cluster.api.create_job

    def refused(namespace: str, job: Body) -> Body | None:
        raise RuntimeError("API server unavailable")

    cluster.api.create_job = refused  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        cluster.reconcile(key)  # c's create fails: nothing written
    assert cluster.phases(key)["a"] == "Running"

    cluster.api.create_job = create  # type: ignore[method-assign]
    cluster.reconcile(key)
    assert cluster.phases(key)["a"] == "Succeeded" and "wf-c-1" in cluster.api.created


def test_a_status_someone_else_rewrote_without_an_outcome_gets_it_back_from_the_settled_job() -> None:
    """A settled Job is skipped only while the stored status is the operator's own write, which records it."""
    cluster = Cluster()
    key = cluster.submit("wf", [node("first"), node("a", "first")])
    _settled_first(cluster, key)
    body = cluster.api.workflows[key]
    body["status"]["nodes"]["first"] = {"phase": "Running", "attempts": 1}  # e.g. restored from an old backup
    body["metadata"]["resourceVersion"] = cluster.api.version()
    cluster.cache.put_workflow(copy.deepcopy(body))

    cluster.reconcile(key)
    assert cluster.phases(key)["first"] == "Succeeded"
    assert cluster.api.created.count("wf-first-1") == 1


def test_a_running_pod_that_ends_is_read_again_though_its_job_did_not_change() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a"), node("b", "a")])
    cluster.reconcile(key)
    cluster.pod("wf-a-1", {"phase": "Running", "state": {"running": {}}})
    cluster.reconcile(key)  # read as running, and remembered so
    cluster.reconcile(key)
    assert cluster.phases(key) == {"a": "Running", "b": "Pending"}

    cluster.pod_ends("wf-a-1")
    cluster.reconcile(key)
    assert cluster.phases(key) == {"a": "Succeeded", "b": "Running"}


# -- passes that launch leave their status write to the queued pass too


def _started() -> float:
    return REGISTRY.get_sample_value("dagwright_attempts_started_total") or 0.0


def test_a_launching_pass_with_a_pass_queued_leaves_the_write_to_it_which_adopts_the_jobs() -> None:
    """A layer's completions arrive together: the pass that launches the dependents of the first ones does not
    write; the queued pass records those Jobs as running attempts (adopted from the cache) in one patch."""
    cluster = Cluster()
    key = cluster.submit("wf", DIAMOND)
    started = _started()
    cluster.reconcile(key)
    patches = len(cluster.api.status_patches)

    cluster.finish("wf-a-1")
    cluster.more.append(True)  # another event is already queued behind this pass
    cluster.reconcile(key)
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1", "wf-c-1"]
    assert len(cluster.api.status_patches) == patches  # not written: the queued pass will
    assert cluster.phases(key) == {"a": "Running", "b": "Pending", "c": "Pending", "d": "Pending"}

    cluster.reconcile(key)
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1", "wf-c-1"]  # adopted, not created again
    assert len(cluster.api.status_patches) == patches + 1
    assert cluster.phases(key) == {"a": "Succeeded", "b": "Running", "c": "Running", "d": "Pending"}
    assert [cluster.status(key)["nodes"][name]["attempts"] for name in ("b", "c")] == [1, 1]
    assert _started() - started == 3  # a, b and c: each launch counted once


def test_a_retry_launched_by_a_coalesced_pass_is_told_and_counted_once() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a", retry={"limit": 2, "backoff": {"initialSeconds": 0}}), node("b", "a")])
    cluster.reconcile(key)
    started = _started()
    retries = REGISTRY.get_sample_value("dagwright_retries_total") or 0.0
    patches, events = len(cluster.api.status_patches), len(cluster.api.events)

    cluster.finish("wf-a-1", exit_code=1)
    cluster.more.append(True)
    cluster.reconcile(key)  # attempt 2 launched at once (no backoff), nothing written or told yet
    assert cluster.api.created == ["wf-a-1", "wf-a-2"]
    assert (len(cluster.api.status_patches), len(cluster.api.events)) == (patches, events)

    cluster.reconcile(key)
    cluster.reconcile(key)
    assert cluster.api.created == ["wf-a-1", "wf-a-2"]
    assert len(cluster.api.status_patches) == patches + 1
    a = cluster.status(key)["nodes"]["a"]
    assert (a["phase"], a["attempts"]) == ("Running", 2)
    assert cluster.api.events[events:] == [("wf", "NodeRetrying")]
    assert _started() - started == 1
    assert (REGISTRY.get_sample_value("dagwright_retries_total") or 0.0) - retries == 1


def test_a_launching_pass_with_nothing_queued_writes_at_once() -> None:
    cluster = Cluster()  # nothing queued behind any pass
    key = cluster.submit("wf", DIAMOND)
    cluster.reconcile(key)
    cluster.finish("wf-a-1")
    cluster.reconcile(key)
    assert len(cluster.api.status_patches) == 2
    assert cluster.phases(key) == {"a": "Succeeded", "b": "Running", "c": "Running", "d": "Pending"}


def test_attempts_a_coalesced_pass_launched_hold_their_room_under_the_operator_wide_limit() -> None:
    cluster = Cluster(max_running_nodes=2)
    key = cluster.submit("wf", [node("a"), node("b"), node("c", "a")])
    other = cluster.submit("other", [node("x")])
    cluster.more.append(True)
    cluster.reconcile(key)  # a and b launched, not written yet
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1"] and not cluster.api.status_patches
    cluster.reconcile(other)
    assert "other-x-1" not in cluster.api.created
    assert cluster.reconciler.waiting_total() == 1


def test_an_operator_restarted_before_a_coalesced_write_adopts_the_jobs_it_launched() -> None:
    """The process that launched b and c died before the queued pass wrote their status: the next one finds
    their Jobs in its first list and records them as running attempts; nothing runs twice."""
    cluster = Cluster()
    key = cluster.submit("wf", DIAMOND)
    cluster.reconcile(key)
    cluster.finish("wf-a-1")
    cluster.more.append(True)
    cluster.reconcile(key)
    assert cluster.phases(key)["b"] == "Pending" and "wf-b-1" in cluster.api.created

    restarted = cluster.restarted()
    restarted.reconcile(key)
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1", "wf-c-1"]
    assert restarted.phases(key) == {"a": "Succeeded", "b": "Running", "c": "Running", "d": "Pending"}
    for job_name in ("wf-b-1", "wf-c-1"):
        restarted.finish(job_name)
    restarted.reconcile(key)
    restarted.finish("wf-d-1")
    restarted.reconcile(key)
    assert restarted.status(key)["phase"] == "Succeeded"
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1", "wf-c-1", "wf-d-1"]


def test_fan_out_items_a_coalesced_pass_launched_are_adopted_within_max_parallel() -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("each", forEach={"items": [1, 2, 3, 4], "maxParallel": 2})])
    cluster.more.append(True)
    cluster.reconcile(key)
    first_two = list(cluster.api.created)
    assert len(first_two) == 2 and not cluster.api.status_patches

    cluster.finish(first_two[0])
    cluster.more.append(True)
    cluster.reconcile(key)  # the third item launched, still nothing written
    assert len(cluster.api.created) == 3 and not cluster.api.status_patches

    cluster.reconcile(key)
    cluster.reconcile(key)
    assert len(cluster.api.created) == 3  # adopted, not created again, and no fourth beside the two running
    assert len(cluster.api.status_patches) == 1
    assert cluster.status(key)["nodes"]["each"]["items"]["states"] == "SRRP"


def test_attempts_a_coalesced_pass_launched_are_recorded_as_started_when_they_were(clock: type[_Clock]) -> None:
    cluster = Cluster()
    key = cluster.submit("wf", DIAMOND)
    cluster.reconcile(key)
    cluster.finish("wf-a-1")
    cluster.more.append(True)
    launched = datetime.now(UTC)
    cluster.reconcile(key)  # b and c launched now, not written
    clock.ahead = timedelta(seconds=30)  # the queued pass runs later (here far later than it would)
    cluster.reconcile(key)
    for name in ("b", "c"):
        started = datetime.fromisoformat(cluster.status(key)["nodes"][name]["startedAt"])  # its first attempt's
        assert abs(started - launched) < timedelta(seconds=5)


def test_within_the_status_interval_a_pass_leaves_its_write_to_a_pass_queued_for_when_the_interval_ends() -> None:
    """--status-interval: Jobs are created at once, the status catches up once the interval since the last
    write has passed, in one patch; the write that ends the workflow is not held back."""
    cluster = Cluster(status_interval=0.3)
    key = cluster.submit("wf", DIAMOND)
    cluster.reconcile(key)  # nothing written yet: writes at once
    patches = len(cluster.api.status_patches)
    assert patches == 1

    cluster.finish("wf-a-1")
    cluster.reconcile(key)
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1", "wf-c-1"]  # launched at once
    assert len(cluster.api.status_patches) == patches  # written later
    assert cluster.requeued == [key] and 0 < cluster.delays[0] <= 0.3
    time.sleep(0.35)
    cluster.reconcile(key)  # the pass queued for the interval's end
    assert sorted(cluster.api.created) == ["wf-a-1", "wf-b-1", "wf-c-1"]  # adopted, not created again
    assert len(cluster.api.status_patches) == patches + 1
    assert cluster.phases(key) == {"a": "Succeeded", "b": "Running", "c": "Running", "d": "Pending"}

    cluster.finish("wf-b-1")
    cluster.finish("wf-c-1")
    cluster.reconcile(key)  # launches d, within the interval: not written
    assert len(cluster.api.status_patches) == patches + 1
    cluster.finish("wf-d-1")
    cluster.reconcile(key)  # the workflow ends: written at once, within the interval or not
    assert len(cluster.api.status_patches) == patches + 2
    assert cluster.status(key)["phase"] == "Succeeded"
    assert cluster.phases(key) == dict.fromkeys("abcd", "Succeeded")


def _waiting_job(cluster: Cluster, job_name: str, *, ready: int) -> None:
    """The Job controller's view of a Job created now whose one pod is active, ready or not."""
    job = cluster.api.jobs[("ns", job_name)]
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    job["metadata"].update(creationTimestamp=created, resourceVersion=cluster.api.version())
    job["status"] = {"active": 1, "ready": ready}
    cluster.cache.put_job(copy.deepcopy(job))


def _unwatched_pod(cluster: Cluster, job_name: str, state: Body) -> None:
    """A pod still waiting to start: the API server has it, the operator's watch (ended pods only) does not."""
    cluster.pod(job_name, {"phase": "Pending", "state": state})
    cluster.cache.drop_pod(copy.deepcopy(cluster.api.pods[("ns", job_name)]))


def test_a_pod_that_never_starts_is_asked_for_when_it_would_count_as_stuck(clock: type[_Clock]) -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a")])
    cluster.reconcile(key)
    _waiting_job(cluster, "wf-a-1", ready=0)
    _unwatched_pod(cluster, "wf-a-1", {"waiting": {"reason": "ContainerCreating"}})
    delay = cluster.reconcile(key)
    assert delay is not None and 280 < delay <= 300  # a pass of its own when the pod would count as stuck
    assert cluster.reconcile(key) == pytest.approx(delay, abs=1)  # a pass reusing that reading keeps the time
    assert cluster.phases(key) == {"a": "Running"}

    clock.ahead = timedelta(seconds=delay + 1)
    assert cluster.reconcile(key) == pytest.approx(30, abs=1)  # still creating, not stuck: asked again later
    assert cluster.phases(key) == {"a": "Running"}

    _unwatched_pod(cluster, "wf-a-1", {"waiting": {"reason": "ErrImagePull", "message": "no such image"}})
    clock.ahead += timedelta(seconds=31)
    cluster.reconcile(key)
    a = cluster.status(key)["nodes"]["a"]
    assert (a["phase"], a["reason"]) == ("Failed", "ImagePullFailed")
    assert cluster.api.deleted_jobs == ["wf-a-1"]


def test_a_job_with_its_pod_ready_is_not_asked_about_its_pod(clock: type[_Clock]) -> None:
    cluster = Cluster()
    key = cluster.submit("wf", [node("a")])
    cluster.reconcile(key)
    _waiting_job(cluster, "wf-a-1", ready=1)
    # A stale Pending pod in the API: read, it would count as stuck; a ready Job says its pod runs.
    _unwatched_pod(cluster, "wf-a-1", {"waiting": {"reason": "ErrImagePull", "message": "no such image"}})
    assert cluster.reconcile(key) is None
    clock.ahead = timedelta(minutes=10)
    cluster.reconcile(key)
    assert cluster.phases(key) == {"a": "Running"}
    assert cluster.api.deleted_jobs == []
