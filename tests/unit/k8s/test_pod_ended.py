"""Reading an attempt's end from its pod, before the Job controller writes the Job's condition.

The rules a user relies on: the end read from the pod is the one the Job's condition would give a second later
(same state, reason, exit code, message, outputs), and a pod killed by something else than its own run (a suspended
or deleted Job, a pod being deleted) is never read as the attempt's failure.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from dagwright.k8s import names, outcomes
from dagwright.k8s.cache import Cache
from dagwright.planner import AttemptState, Observation

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
ENDED_AT = "2026-11-30T11:59:58Z"
COMPLETE = [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-30T11:59:59Z"}]
FAILED = [
    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": "2026-11-30T11:59:59Z"}
]


def _job(conditions: list[dict[str, Any]] | None = None, rv: str = "1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "wf-a-1",
            "namespace": "ns",
            "resourceVersion": rv,
            "uid": "job-uid",
            "labels": {names.LABEL_NODE: "a", names.LABEL_ATTEMPT: "1"},
            "ownerReferences": [{"apiVersion": "dagwright.io/v1alpha1", "kind": "Workflow", "uid": "wf-uid"}],
        },
        "spec": {"backoffLimit": 0, "suspend": False, **spec},
        "status": {"conditions": conditions or []},
    }


def _pod(phase: str, terminated: dict[str, Any] | None = None, rv: str = "5", **status: Any) -> dict[str, Any]:
    state = {"terminated": {"finishedAt": ENDED_AT, **terminated}} if terminated is not None else {}
    return {
        "metadata": {
            "name": "wf-a-1-xyz",
            "namespace": "ns",
            "uid": "pod-uid",
            "resourceVersion": rv,
            "labels": {"batch.kubernetes.io/job-name": "wf-a-1"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "uid": "job-uid", "controller": True}],
            "creationTimestamp": "2026-11-30T11:59:50Z",
        },
        "status": {"phase": phase, "containerStatuses": [{"name": names.CONTAINER, "state": state}], **status},
    }


def _same_end(early: Observation | None, late: Observation | None) -> bool:
    """The same outcome, whichever path read it (the times differ: the pod's own end, the Job's condition)."""
    assert early is not None and late is not None
    return dataclasses.replace(early, finished_at=None) == dataclasses.replace(late, finished_at=None)


def test_a_succeeded_pod_ends_the_attempt_with_its_outputs_before_the_job_completes() -> None:
    pod = _pod("Succeeded", {"exitCode": 0, "reason": "Completed", "message": '{"rows": 42}'})
    early = outcomes.observe(_job(), pod, NOW)
    assert early is not None and early.state is AttemptState.SUCCEEDED
    assert (early.exit_code, early.outputs) == (0, {"rows": 42})
    assert early.finished_at == datetime(2026, 11, 30, 11, 59, 58, tzinfo=UTC)  # the container's own end
    assert _same_end(early, outcomes.observe(_job(COMPLETE), pod, NOW))


@pytest.mark.parametrize(
    ("terminated", "status", "reason", "exit_code"),
    [
        ({"exitCode": 137, "reason": "OOMKilled"}, {}, "OOMKilled", 137),
        ({"exitCode": 3, "reason": "Error", "message": "no such table"}, {}, "Error", 3),
        (None, {"reason": "Evicted", "message": "node low on memory"}, "Evicted", None),
    ],
)
def test_a_failed_pod_ends_the_attempt_with_the_reason_the_failed_job_would_give(
    terminated: dict[str, Any] | None, status: dict[str, Any], reason: str, exit_code: int | None
) -> None:
    pod = _pod("Failed", terminated, **status)
    early = outcomes.observe(_job(), pod, NOW)
    assert early is not None and early.state is AttemptState.FAILED
    assert (early.reason, early.exit_code) == (reason, exit_code)
    assert _same_end(early, outcomes.observe(_job(FAILED), pod, NOW))


def test_a_suspended_jobs_killed_pod_is_not_a_failure() -> None:
    pod = _pod("Failed", {"exitCode": 137, "reason": "Error"})
    seen = outcomes.observe(_job(suspend=True), pod, NOW)
    assert seen is not None and seen.state is AttemptState.RUNNING


def test_a_pod_being_deleted_or_of_a_job_being_deleted_is_not_an_end() -> None:
    deleting = _pod("Failed", {"exitCode": 143, "reason": "Error"})
    deleting["metadata"]["deletionTimestamp"] = "2026-11-30T11:59:57Z"
    seen = outcomes.observe(_job(), deleting, NOW)
    assert seen is not None and seen.state is AttemptState.RUNNING
    job = _job()
    job["metadata"]["deletionTimestamp"] = "2026-11-30T11:59:57Z"
    seen = outcomes.observe(job, _pod("Succeeded", {"exitCode": 0}), NOW)
    assert seen is not None and seen.state is AttemptState.RUNNING


def test_only_the_jobs_own_final_pod_ends_it() -> None:
    other = _pod("Succeeded", {"exitCode": 0})
    other["metadata"]["ownerReferences"][0]["uid"] = "an-earlier-job-of-that-name"
    never_ran = _pod("Failed", None)  # failed before its container ran: the Job's condition will say why
    retrying = _job(backoffLimit=2)  # not a Job of ours: another pod may follow
    for job, pod in [(_job(), other), (_job(), never_ran), (retrying, _pod("Failed", {"exitCode": 1}))]:
        seen = outcomes.observe(job, pod, NOW)
        assert seen is not None and seen.state is AttemptState.RUNNING


def test_a_job_recorded_from_its_pod_is_settled_when_its_condition_arrives_without_a_pass() -> None:
    cache = Cache()
    cache.put_workflow({"metadata": {"name": "wf", "namespace": "ns", "uid": "wf-uid", "resourceVersion": "10"}})
    assert cache.put_job(_job(rv="3")) == ("ns", "wf")
    assert cache.put_pod(_pod("Succeeded", {"exitCode": 0}, rv="6")) == ("ns", "wf")
    assert cache.finished_seen("ns", "wf-a-1") is not None  # when its dependents became ready

    cache.settle_jobs("wf-uid", "ns", ["wf-a-1"])  # a pass recorded the end the pod showed
    assert cache.pod("ns", "wf-a-1") is None
    assert cache.put_pod(_pod("Succeeded", {"exitCode": 0}, rv="7")) is None  # later pod updates: no pass
    assert cache.put_job(_job(COMPLETE, rv="8")) is None  # the Job's condition: settled here, no pass
    settled = cache.jobs("wf-uid").live["wf-a-1"]
    assert "spec" not in settled and outcomes.job_finished(settled)
