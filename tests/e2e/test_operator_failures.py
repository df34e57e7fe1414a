"""Failed attempts, retries and deadlines as the operator handles them on a real cluster.

Why: retry decisions are the planner's, but the inputs come from Kubernetes: a pod's exit code and reason
(OOMKilled), a Job's DeadlineExceeded, a Job deleted under a running attempt. These tests play those fates out
with kwok and check from the Jobs which attempts ran, when, and how many times.
"""

from __future__ import annotations

from typing import Any

import pytest

from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import (
    OperatorProcess,
    Recorder,
    apply,
    condition,
    events_of,
    list_jobs,
    node,
    retry,
    wait_phase,
    workflow,
)

pytestmark = pytest.mark.e2e


def test_a_node_failing_twice_then_succeeding_is_retried_after_its_backoff(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    # Backoff 1 s then 2 s (factor 2, no jitter); attempts 1 and 2 fail with exit code 3.
    flaky = node("flaky", fail_attempts=2, fail_exit_code=3, retry=retry(3, initial=1, factor=2))
    apply(kube, namespace, workflow("flaky", [flaky, node("after", "flaky")]))

    status = wait_phase(kube, namespace, "flaky", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded", status
    assert status["nodes"]["flaky"]["attempts"] == 3
    attempts = recorder.jobs_of("flaky", "flaky")
    assert [(r.attempt, r.outcome) for r in attempts] == [(1, "Failed"), (2, "Failed"), (3, "Succeeded")]
    for previous, following, backoff in ((attempts[0], attempts[1], 1), (attempts[1], attempts[2], 2)):
        # Timestamps are whole seconds; the backoff counts from the failed Job's condition time.
        assert previous.finish_time is not None
        gap = (following.created - previous.finish_time).total_seconds()
        assert backoff <= gap <= backoff + 5, f"attempt {following.attempt} created {gap}s after the failure"
        assert following.added_at - previous.finished_at >= backoff - 1  # type: ignore[operator]
    recorder.assert_one_job_per_attempt("flaky")
    retrying = [e for e in events_of(kube, namespace, "flaky") if e["reason"] == "NodeRetrying"]
    assert len(retrying) == 2 and "exit code 3" in retrying[0]["message"]


def two_branches() -> list[dict[str, Any]]:
    """A branch that fails at once, and an independent one still running when it does."""
    return [node("bad", exit_code=1), node("slow", duration="2s"), node("after-slow", "slow"), node("after-bad", "bad")]


def test_fail_fast_stops_launching_and_skips_the_rest(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = two_branches()
    apply(kube, namespace, workflow("ff", nodes, failFast=True))

    status = wait_phase(kube, namespace, "ff", "Failed", "Succeeded")

    assert status["phase"] == "Failed"
    assert "node bad failed" in status["message"]
    phases = {name: n["phase"] for name, n in status["nodes"].items()}
    assert phases == {"bad": "Failed", "slow": "Succeeded", "after-slow": "Skipped", "after-bad": "Skipped"}
    assert status["nodes"]["after-slow"]["reason"] == "FailFast"
    assert sorted(r.node for r in recorder.jobs_of("ff")) == ["bad", "slow"]
    assert condition(status, "Succeeded")["reason"] == "NodeFailed"


def test_without_fail_fast_the_independent_branch_completes(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = two_branches()
    apply(kube, namespace, workflow("noff", nodes, failFast=False))

    status = wait_phase(kube, namespace, "noff", "Failed", "Succeeded")

    assert status["phase"] == "Failed"
    phases = {name: n["phase"] for name, n in status["nodes"].items()}
    assert phases == {"bad": "Failed", "slow": "Succeeded", "after-slow": "Succeeded", "after-bad": "Skipped"}
    assert status["nodes"]["after-bad"]["reason"] == "UpstreamFailed"
    assert sorted(r.node for r in recorder.jobs_of("noff")) == ["after-slow", "bad", "slow"]
    assert status["progress"] == "2/4"


def test_timeout_seconds_fails_the_attempt_and_it_is_retried(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    stuck = node("stuck", never_finish=True, timeoutSeconds=2, retry=retry(1, initial=1, policy="Transient"))
    apply(kube, namespace, workflow("slow", [stuck]))

    status = wait_phase(kube, namespace, "slow", "Failed", "Succeeded", timeout=60)

    stuck_status = status["nodes"]["stuck"]
    assert stuck_status["attempts"] == 2
    assert stuck_status["reason"] == "Timeout"  # whether the Job's deadline or the operator ended it
    jobs = recorder.jobs_of("slow", "stuck")
    assert [r.attempt for r in jobs] == [1, 2]
    assert all(r.last["spec"]["activeDeadlineSeconds"] == 2 for r in jobs)
    for record in jobs:  # each attempt ran about its 2 s and was ended, by the Job deadline or the operator
        ended = record.finished_at or record.deleted_at
        assert ended is not None and 1.0 <= ended - record.added_at <= 10
    retrying = [e["message"] for e in events_of(kube, namespace, "slow") if e["reason"] == "NodeRetrying"]
    assert len(retrying) == 1 and "Timeout" in retrying[0]


def test_oom_killed_and_exit_75_are_transient_and_retried_but_exit_1_is_not(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    transient_only = retry(2, initial=1, policy="Transient")
    nodes = [
        node("oom", fail_attempts=1, fail_reason="OOMKilled", fail_exit_code=137, retry=transient_only),
        node("crash", fail_attempts=1, fail_exit_code=1, retry=transient_only),
        node("tempfail", fail_attempts=1, fail_exit_code=75, retry=transient_only),  # EX_TEMPFAIL: transient
    ]
    apply(kube, namespace, workflow("mem", nodes, failFast=False))

    status = wait_phase(kube, namespace, "mem", "Failed", "Succeeded")

    assert status["nodes"]["oom"]["phase"] == "Succeeded"
    assert status["nodes"]["oom"]["attempts"] == 2
    assert status["nodes"]["crash"]["phase"] == "Failed"
    assert status["nodes"]["crash"]["attempts"] == 1
    assert status["nodes"]["crash"]["exitCode"] == 1
    assert [(r.attempt, r.outcome) for r in recorder.jobs_of("mem", "oom")] == [(1, "Failed"), (2, "Succeeded")]
    assert [r.attempt for r in recorder.jobs_of("mem", "crash")] == [1]
    assert status["nodes"]["tempfail"]["phase"] == "Succeeded"
    assert [r.attempt for r in recorder.jobs_of("mem", "tempfail")] == [1, 2]
    retrying = sorted(e["message"] for e in events_of(kube, namespace, "mem") if e["reason"] == "NodeRetrying")
    assert len(retrying) == 2
    assert "OOMKilled (exit code 137)" in retrying[0] and "exit code 75" in retrying[1]


def test_deleting_a_running_attempts_job_fails_it_as_job_deleted_and_retries(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(kube, namespace, workflow("del", [node("victim", duration="3s", retry=retry(1, initial=1))]))
    first = wait_for("the first attempt's Job", lambda: recorder.jobs_of("del", "victim"), timeout=30)[0]

    kube.kubectl("delete", "job", first.name, "-n", namespace, "--wait=false")

    status = wait_phase(kube, namespace, "del", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded"
    assert status["nodes"]["victim"]["attempts"] == 2
    jobs = recorder.jobs_of("del", "victim")
    assert [r.attempt for r in jobs] == [1, 2]
    assert jobs[0].deleted_seq is not None and jobs[0].deleted_seq < jobs[1].added_seq
    retrying = [e["message"] for e in events_of(kube, namespace, "del") if e["reason"] == "NodeRetrying"]
    assert len(retrying) == 1 and "JobDeleted" in retrying[0]


def test_a_deleted_job_without_retries_fails_the_node(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(kube, namespace, workflow("del", [node("victim", never_finish=True)]))
    first = wait_for("the attempt's Job", lambda: recorder.jobs_of("del", "victim"), timeout=30)[0]

    kube.kubectl("delete", "job", first.name, "-n", namespace, "--wait=false")

    status = wait_phase(kube, namespace, "del", "Failed", "Succeeded", timeout=60)
    assert status["nodes"]["victim"]["reason"] == "JobDeleted"
    assert len(recorder.jobs_of("del")) == 1


def test_active_deadline_seconds_fails_the_workflow(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [node("forever", never_finish=True), node("after", "forever")]
    apply(kube, namespace, workflow("late", nodes, activeDeadlineSeconds=3))

    status = wait_phase(kube, namespace, "late", "Failed", "Succeeded", timeout=60)

    assert condition(status, "Succeeded")["reason"] == "DeadlineExceeded"
    assert "activeDeadlineSeconds" in status["message"]
    assert status["nodes"]["forever"]["phase"] == "Failed"
    assert status["nodes"]["after"]["phase"] == "Skipped"
    wait_for("the running Job deleted", lambda: not list_jobs(kube, namespace, "late"), timeout=30)
    forever = recorder.jobs_of("late", "forever")
    assert len(forever) == 1 and forever[0].deleted_at is not None
    assert 2.0 <= forever[0].deleted_at - forever[0].added_at <= 10
