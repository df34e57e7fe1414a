"""`dagwright pause|resume|stop|retry|approve|reject` against a running operator.

Why: these commands only patch the Workflow's spec; what matters is what the operator then does with Jobs.
Each test checks it from the Jobs the API server holds: nothing created while paused or after a stop, running
Jobs suspended or deleted, succeeded nodes never rerun, retried nodes getting new, higher attempt numbers.
"""

from __future__ import annotations

import json
import time

import pytest

from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import (
    OperatorProcess,
    Recorder,
    apply,
    condition,
    dagwright,
    get_workflow,
    hold,
    list_jobs,
    node,
    node_status,
    retry,
    wait_node,
    wait_phase,
    workflow,
)

pytestmark = pytest.mark.e2e


def test_pause_then_resume(kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess) -> None:
    # 10 s: the pause (a CLI process started under whatever load the machine has) must land while it runs.
    nodes = [node("first", duration="10s"), node("second", "first"), node("third", "second")]
    apply(kube, namespace, workflow("chain", nodes))
    wait_for("the first Job", lambda: recorder.jobs_of("chain", "first"), timeout=30)

    dagwright(kube, "pause", "chain", "-n", namespace)
    paused_at = time.monotonic()
    status = wait_phase(kube, namespace, "chain", "Paused")
    assert condition(status, "Paused")["status"] == "True"
    # The running node finishes while paused; its dependent must not start.
    first = wait_for("the first Job to complete", lambda: recorder.jobs_of("chain", "first")[0].finished_at, timeout=60)
    wait_node(kube, namespace, "chain", "first", "Succeeded", timeout=30)
    hold(2)
    assert [r.node for r in recorder.jobs_of("chain")] == ["first"], "a Job was created while paused"
    assert status_phase(kube, namespace, "chain") == "Paused"
    assert kube.kubectl("get", "dwf", "chain", "-n", namespace).stdout.splitlines()[1].split()[:2] == [
        "chain",
        "Paused",
    ]

    resumed_at = time.monotonic()
    dagwright(kube, "resume", "chain", "-n", namespace)
    status = wait_phase(kube, namespace, "chain", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded" and status["progress"] == "3/3"
    assert condition(status, "Paused")["status"] == "False"
    records = recorder.jobs_of("chain")
    assert [(r.node, r.attempt) for r in records] == [("first", 1), ("second", 1), ("third", 1)]
    assert paused_at < first < resumed_at
    assert all(r.added_at > resumed_at for r in records[1:]), "a Job was created before the resume"
    assert recorder.phases("chain")[-3:] == ["Paused", "Running", "Succeeded"]


def status_phase(kube: Kube, namespace: str, name: str) -> str:
    body = get_workflow(kube, namespace, name) or {}
    return str((body.get("status") or {}).get("phase"))


def test_pause_mode_suspend_suspends_and_resumes_running_jobs(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [node("long", duration="3s"), node("after", "long")]
    apply(kube, namespace, workflow("susp", nodes, pauseMode="Suspend"))
    wait_for("the Job of long", lambda: recorder.jobs_of("susp", "long"), timeout=30)

    dagwright(kube, "pause", "susp", "-n", namespace)

    wait_for("the running Job suspended", lambda: list_jobs(kube, namespace, "susp")[0]["spec"]["suspend"], timeout=30)
    wait_phase(kube, namespace, "susp", "Paused")
    core_pods = lambda: kube.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.split()  # noqa: E731
    wait_for("the suspended Job's pod to be removed", lambda: not core_pods(), timeout=30)
    hold(1)
    assert node_status(kube, namespace, "susp", "long")["phase"] == "Running"  # suspended is not failed
    assert [r.node for r in recorder.jobs_of("susp")] == ["long"]

    dagwright(kube, "resume", "susp", "-n", namespace)

    wait_for("the Job resumed", lambda: list_jobs(kube, namespace, "susp")[0]["spec"]["suspend"] is False, timeout=30)
    status = wait_phase(kube, namespace, "susp", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded", status
    long_job = recorder.jobs_of("susp", "long")
    assert len(long_job) == 1 and long_job[0].suspend_seen == [False, True, False]
    assert long_job[0].outcome == "Succeeded"
    assert node_status(kube, namespace, "susp", "long")["attempts"] == 1


def test_stop_deletes_running_jobs_and_launches_nothing_more(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [
        node("forever", never_finish=True),
        node("flaky", fail_attempts=1, retry=retry(1, initial=8)),  # the stop lands in the backoff, even under load
        node("after-forever", "forever"),
    ]
    apply(kube, namespace, workflow("halt", nodes))
    wait_node(kube, namespace, "halt", "flaky", "Retrying", timeout=30)

    dagwright(kube, "stop", "halt", "-n", namespace)
    stopped_at = time.monotonic()

    status = wait_phase(kube, namespace, "halt", "Stopped")
    assert condition(status, "Succeeded")["status"] == "False"
    assert {name: n["phase"] for name, n in status["nodes"].items()} == {
        "forever": "Stopped",
        "flaky": "Stopped",
        "after-forever": "Stopped",
    }
    remaining = lambda: [j["metadata"]["labels"]["dagwright.io/node"] for j in list_jobs(kube, namespace, "halt")]  # noqa: E731
    wait_for("the running Job deleted", lambda: remaining() == ["flaky"], timeout=30)
    hold(9)  # past flaky's 8 s backoff: a retry would have launched by now
    records = recorder.jobs_of("halt")
    assert sorted((r.node, r.attempt) for r in records) == [("flaky", 1), ("forever", 1)]
    assert all(r.added_at < stopped_at for r in records)
    assert recorder.jobs_of("halt", "forever")[0].deleted_seq is not None
    assert status_phase(kube, namespace, "halt") == "Stopped"


def test_retry_after_failure_reruns_only_failed_and_skipped_nodes(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [
        node("good"),
        node("bad", fail_attempts=1),  # attempt 1 fails, any later attempt succeeds
        node("after-bad", "bad"),
        node("after-good", "good", duration="1s"),
    ]
    apply(kube, namespace, workflow("again", nodes, failFast=False))
    status = wait_phase(kube, namespace, "again", "Failed", "Succeeded")
    assert status["phase"] == "Failed"
    assert status["nodes"]["bad"]["phase"] == "Failed"
    assert status["nodes"]["after-bad"]["phase"] == "Skipped"
    before = {(r.node, r.attempt) for r in recorder.jobs_of("again")}
    assert before == {("good", 1), ("bad", 1), ("after-good", 1)}
    retry_from = time.monotonic()

    dagwright(kube, "retry", "again", "-n", namespace)

    status = wait_phase(kube, namespace, "again", "Succeeded", timeout=60)
    assert status["progress"] == "4/4"
    new = [(r.node, r.attempt) for r in recorder.jobs_of("again") if r.added_at > retry_from]
    assert sorted(new) == [("after-bad", 1), ("bad", 2)]
    assert status["nodes"]["bad"]["attempts"] == 2
    assert status["nodes"]["good"]["attempts"] == 1
    phases = recorder.phases("again")
    assert phases[phases.index("Failed") :][:3] == ["Failed", "Running", "Succeeded"]
    recorder.assert_one_job_per_attempt("again")


def test_approve_runs_downstream_and_reject_skips_it(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [node("build"), node("gate", "build", approval={"message": "ship it?"}), node("deploy", "gate")]
    apply(kube, namespace, workflow("yes", nodes))
    apply(kube, namespace, workflow("no", nodes))
    for name in ("yes", "no"):
        wait_node(kube, namespace, name, "gate", "AwaitingApproval", timeout=30)
    hold(1)
    for name in ("yes", "no"):
        assert [r.node for r in recorder.jobs_of(name)] == ["build"]  # an approval node runs no Job
        assert status_phase(kube, namespace, name) == "Running"

    dagwright(kube, "approve", "yes", "gate", "-n", namespace)
    dagwright(kube, "reject", "no", "gate", "--message", "not today", "-n", namespace)

    approved = wait_phase(kube, namespace, "yes", "Succeeded", "Failed")
    assert approved["phase"] == "Succeeded" and approved["progress"] == "3/3"
    assert [r.node for r in recorder.jobs_of("yes")] == ["build", "deploy"]
    rejected = wait_phase(kube, namespace, "no", "Failed", "Succeeded")
    assert rejected["phase"] == "Failed"
    assert rejected["nodes"]["gate"]["phase"] == "Failed"
    assert rejected["nodes"]["gate"]["reason"] == "Rejected"
    assert "not today" in rejected["nodes"]["gate"]["message"]
    assert rejected["nodes"]["deploy"]["phase"] == "Skipped"
    assert [r.node for r in recorder.jobs_of("no")] == ["build"]


def test_retry_after_stop_reruns_the_stopped_nodes(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    # `long` never finishes, so it is stopped mid-run; its retried attempt runs 300 ms.
    nodes = [node("first"), node("long", "first", never_finish=True), node("last", "long")]
    apply(kube, namespace, workflow("resumable", nodes))
    wait_for("long's Job", lambda: recorder.jobs_of("resumable", "long"), timeout=30)
    dagwright(kube, "stop", "resumable", "-n", namespace)
    wait_phase(kube, namespace, "resumable", "Stopped")
    # Let the retried attempt finish: the never-finish fate was the stopped attempt's.
    unstick = {"spec": {"nodes": [node("first"), node("long", "first", duration="300ms"), node("last", "long")]}}
    kube.kubectl("patch", "dwf", "resumable", "-n", namespace, "--type=merge", "-p", json.dumps(unstick))
    retry_from = time.monotonic()

    dagwright(kube, "retry", "resumable", "-n", namespace)

    status = wait_phase(kube, namespace, "resumable", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded", status
    assert [(r.node, r.attempt) for r in recorder.jobs_of("resumable") if r.added_at > retry_from] == [
        ("long", 2),
        ("last", 1),
    ]
    assert [r.attempt for r in recorder.jobs_of("resumable", "first")] == [1]
    assert recorder.jobs_of("resumable", "long")[0].deleted_seq is not None


def test_stop_while_suspended_deletes_the_suspended_job(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(
        kube, namespace, workflow("frozen", [node("long", duration="30s"), node("after", "long")], pauseMode="Suspend")
    )
    wait_for("long's Job", lambda: recorder.jobs_of("frozen", "long"), timeout=30)
    dagwright(kube, "pause", "frozen", "-n", namespace)
    wait_for("the Job suspended", lambda: recorder.jobs_of("frozen", "long")[0].suspend_seen[-1], timeout=30)

    dagwright(kube, "stop", "frozen", "-n", namespace)

    status = wait_phase(kube, namespace, "frozen", "Stopped")
    assert status["nodes"]["long"]["phase"] == "Stopped"
    wait_for("the suspended Job deleted", lambda: not list_jobs(kube, namespace, "frozen"), timeout=30)
    assert [r.node for r in recorder.jobs_of("frozen")] == ["long"]


def test_a_node_added_to_a_running_workflow_runs(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(kube, namespace, workflow("growing", [node("a", duration="2s")]))
    wait_for("a's Job", lambda: recorder.jobs_of("growing", "a"), timeout=30)

    apply(kube, namespace, workflow("growing", [node("a", duration="2s"), node("b", "a")]))

    status = wait_phase(kube, namespace, "growing", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded" and status["progress"] == "2/2"
    assert [(r.node, r.attempt) for r in recorder.jobs_of("growing")] == [("a", 1), ("b", 1)]


def test_an_approval_given_in_advance_lets_the_node_pass_once_its_dependencies_succeed(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    # build runs long enough for the approval (a CLI process, seconds on a busy machine) to land while it runs:
    # its end is read from its pod, the moment the pod ends.
    nodes = [node("build", duration="10s"), node("gate", "build", approval={}), node("deploy", "gate")]
    apply(kube, namespace, workflow("early", nodes))
    wait_for("build's Job", lambda: recorder.jobs_of("early", "build"), timeout=30)

    dagwright(kube, "approve", "early", "gate", "-n", namespace)

    hold(0.5)
    assert node_status(kube, namespace, "early", "gate").get("phase") == "Pending"  # build has not finished
    status = wait_phase(kube, namespace, "early", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded"
    build, deploy = recorder.jobs_of("early", "build")[0], recorder.jobs_of("early", "deploy")[0]
    assert build.finished_before(deploy)


def test_time_suspended_does_not_count_against_timeout_seconds(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    # 6 s of work within a 16 s timeout, with a 17 s Suspend pause in the middle: Kubernetes restarts a Job's
    # activeDeadlineSeconds on resume, and the attempt must not be failed for the time it spent suspended. The
    # work is long enough for the pause (a CLI process, seconds on a busy machine) to land while its pod runs: a
    # pod that already ended is the attempt's end, and its Job is not suspended any more.
    long = node("work", duration="6s", timeoutSeconds=16)
    apply(kube, namespace, workflow("pausy", [long], pauseMode="Suspend"))
    wait_for("the Job", lambda: recorder.jobs_of("pausy", "work"), timeout=30)
    dagwright(kube, "pause", "pausy", "-n", namespace)
    wait_for("the Job suspended", lambda: recorder.jobs_of("pausy", "work")[0].suspend_seen[-1], timeout=30)
    hold(17)

    dagwright(kube, "resume", "pausy", "-n", namespace)

    status = wait_phase(kube, namespace, "pausy", "Succeeded", "Failed", timeout=60)
    jobs = recorder.jobs_of("pausy")
    assert status["phase"] == "Succeeded", (status["nodes"]["work"], jobs[0].suspend_seen, jobs[0].last["status"])
    assert [r.attempt for r in jobs] == [1]
