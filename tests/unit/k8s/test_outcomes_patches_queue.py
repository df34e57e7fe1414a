"""Reading outcomes from Jobs and pods, the status merge patch, the work queue and the watch cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagwright import failures, nodeio
from dagwright.k8s import names, outcomes
from dagwright.k8s.cache import Cache
from dagwright.k8s.patches import merge_patch
from dagwright.k8s.queue import WorkQueue
from dagwright.planner import AttemptState
from dagwright.spec import RetryPolicy

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _job(conditions: list[dict[str, Any]] | None = None, rv: str = "1", uid: str = "wf-uid") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "wf-a-1",
            "namespace": "ns",
            "resourceVersion": rv,
            "uid": "job-uid",
            "labels": {names.LABEL_NODE: "a", names.LABEL_ATTEMPT: "1"},
            "ownerReferences": [{"apiVersion": "dagwright.io/v1alpha1", "kind": "Workflow", "uid": uid}],
        },
        "status": {"conditions": conditions or []},
    }


def _pod(terminated: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    containers = [{"name": "main", "state": {"terminated": terminated}}] if terminated else []
    return {
        "metadata": {
            "name": "wf-a-1-xyz",
            "namespace": "ns",
            "uid": "pod-uid",
            "resourceVersion": "5",
            "labels": {"batch.kubernetes.io/job-name": "wf-a-1"},
            "creationTimestamp": "2026-11-26T11:00:00Z",
        },
        "status": {"containerStatuses": containers, **status},
    }


FAILED = [
    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": "2026-11-26T12:00:00Z"}
]


def test_a_complete_job_is_a_success_and_an_active_one_is_running() -> None:
    done = outcomes.observe(_job([{"type": "Complete", "status": "True"}]), None, NOW)
    assert done is not None and done.state is AttemptState.SUCCEEDED and (done.node, done.attempt) == ("a", 1)
    running = outcomes.observe(_job(), None, NOW)
    assert running is not None and running.state is AttemptState.RUNNING


def test_a_failed_job_reports_the_containers_exit_code_and_termination_message() -> None:
    pod = _pod({"exitCode": 3, "reason": "Error", "message": "no such table: orders"})
    seen = outcomes.observe(_job(FAILED), pod, NOW)
    assert seen is not None
    assert (seen.state, seen.exit_code, seen.reason, seen.message) == (
        AttemptState.FAILED,
        3,
        "Error",
        "no such table: orders",
    )


COMPLETE = [{"type": "Complete", "status": "True"}]


def test_outputs_arrive_in_the_termination_message_of_a_completed_job() -> None:
    seen = outcomes.observe(_job(COMPLETE), _pod({"exitCode": 0, "message": '{"rows": 42, "key": "s3://b/k"}'}), NOW)
    assert seen is not None and seen.state is AttemptState.SUCCEEDED
    assert seen.outputs == {"rows": 42, "key": "s3://b/k"}


def test_outputs_that_are_not_a_json_object_fail_the_attempt_for_good() -> None:
    seen = outcomes.observe(_job(COMPLETE), _pod({"exitCode": 0, "message": "[1, 2]"}), NOW)
    assert seen is not None and (seen.state, seen.reason) == (AttemptState.FAILED, "InvalidOutputs")
    huge = "x" * 4096  # what the kubelet keeps of a message that was too long
    seen = outcomes.observe(_job(COMPLETE), _pod({"exitCode": 0, "message": huge}), NOW)
    assert seen is not None and seen.reason == "OutputsTooLarge"
    assert seen.message is not None and "Redis" in seen.message and "3 KiB" in seen.message


def test_node_runner_reporting_redis_unreachable_is_a_transient_failure_reason() -> None:
    envelope = nodeio.envelope(error=("RunnerUnavailable", "redis at 10.0.0.1:6379 unreachable after 5 tries"))
    pod = _pod({"exitCode": nodeio.EXIT_RUNNER_UNAVAILABLE, "message": envelope})
    seen = outcomes.observe(_job(FAILED), pod, NOW)
    assert seen is not None and seen.reason == "RunnerUnavailable"
    assert failures.is_transient(RetryPolicy(), seen.exit_code, seen.reason)


def test_outputs_node_runner_kept_only_in_redis_arrive_as_their_key() -> None:
    key = nodeio.outputs_key("wf-uid", "a")
    pod = _pod({"exitCode": 0, "message": nodeio.envelope(reference=key)})
    seen = outcomes.observe(_job(COMPLETE), pod, NOW)
    assert seen is not None and seen.state is AttemptState.SUCCEEDED
    assert (seen.outputs, seen.outputs_ref) == (None, key)


def test_node_runner_finding_an_upstreams_outputs_gone_from_redis_is_a_permanent_failure() -> None:
    envelope = nodeio.envelope(error=("InputsUnavailable", "the outputs of node a are no longer in Redis"))
    pod = _pod({"exitCode": nodeio.EXIT_INPUTS_UNAVAILABLE, "message": envelope})
    seen = outcomes.observe(_job(FAILED), pod, NOW)
    assert seen is not None and seen.reason == "InputsUnavailable"
    assert not failures.may_retry(RetryPolicy(limit=3), 0, True, seen.reason)


def test_oom_and_eviction_keep_their_reasons_and_a_job_deadline_is_a_timeout() -> None:
    oom = outcomes.observe(_job(FAILED), _pod({"exitCode": 137, "reason": "OOMKilled"}), NOW)
    assert oom is not None and oom.reason == "OOMKilled"
    evicted = outcomes.observe(_job(FAILED), _pod(reason="Evicted", message="node low on memory"), NOW)
    assert evicted is not None and evicted.reason == "Evicted" and evicted.message == "node low on memory"
    deadline = [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]
    late = outcomes.observe(_job(deadline), None, NOW)
    assert late is not None and late.reason == "Timeout"  # the planner's (and `dagwright run`'s) reason


@pytest.mark.parametrize(
    ("waiting", "reason"),
    [
        ("ImagePullBackOff", "ImagePullFailed"),
        # e.g. the Redis password Secret missing from the workflow's namespace: the pod would wait forever
        ("CreateContainerConfigError", "ContainerConfigError"),
    ],
)
def test_a_pod_that_cannot_start_fails_only_after_the_threshold(waiting: str, reason: str) -> None:
    pod = _pod(phase="Pending")
    message = 'secret "dagwright-redis" not found'
    state = {"waiting": {"reason": waiting, "message": message}}
    pod["status"]["containerStatuses"] = [{"name": "main", "state": state}]
    early = outcomes.observe(_job(), pod, NOW, stuck_after=timedelta(hours=2))
    assert early is not None and early.state is AttemptState.RUNNING
    late = outcomes.observe(_job(), pod, NOW, stuck_after=timedelta(minutes=5))
    assert late is not None and (late.state, late.reason) == (AttemptState.FAILED, reason)
    assert late.message == f"{waiting}: {message}"


def test_merge_patch_sends_only_changes_and_nulls_removed_fields() -> None:
    old = {
        "phase": "Running",
        "nodes": {"a": {"phase": "Running", "attempts": 1}, "b": {"phase": "Retrying", "nextAttemptAt": "t"}},
    }
    new = {"phase": "Running", "nodes": {"a": {"phase": "Succeeded", "attempts": 1}, "b": {"phase": "Running"}}}
    assert merge_patch(old, new) == {
        "nodes": {"a": {"phase": "Succeeded"}, "b": {"phase": "Running", "nextAttemptAt": None}}
    }
    assert merge_patch(new, new) == {}


def test_cache_keeps_the_newest_object_and_remembers_vanished_jobs() -> None:
    cache = Cache()
    workflow = {"metadata": {"name": "wf", "namespace": "ns", "uid": "wf-uid", "resourceVersion": "10"}}
    cache.put_workflow(workflow)
    stale = {"metadata": {**workflow["metadata"], "resourceVersion": "9"}}
    assert not cache.put_workflow(stale)
    assert cache.workflow(("ns", "wf")) is workflow

    assert cache.put_job(_job(rv="3")) == ("ns", "wf")
    cache.put_job(_job(rv="2"))
    assert cache.jobs("wf-uid").live["wf-a-1"]["metadata"]["resourceVersion"] == "3"
    assert cache.put_pod(_pod()) == ("ns", "wf")
    cache.drop_job(_job(rv="4"))
    jobs = cache.jobs("wf-uid")
    assert not jobs.live and "wf-a-1" in jobs.gone


def test_cached_workflows_leave_out_managed_fields_and_kubectls_copy_of_the_manifest() -> None:
    cache = Cache()
    meta = {
        "name": "wf",
        "namespace": "ns",
        "uid": "wf-uid",
        "resourceVersion": "10",
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "data"},
    }
    workflow = {"metadata": meta, "spec": {"nodes": []}, "status": {"phase": "Running"}}
    assert cache.put_workflow(workflow)
    stored = cache.workflow(("ns", "wf"))
    assert stored is not None and "managedFields" not in stored["metadata"]
    assert stored["metadata"]["annotations"] == {"team": "data"}
    assert stored["spec"] is workflow["spec"] and stored["status"] is workflow["status"]
    assert "managedFields" in meta  # the watch event's own object is left as it came


def test_a_settled_job_keeps_its_outcome_and_its_pod_is_dropped_and_ignored() -> None:
    cache = Cache()
    cache.put_workflow({"metadata": {"name": "wf", "namespace": "ns", "uid": "wf-uid", "resourceVersion": "10"}})
    running = _job(rv="3")
    cache.put_job(running)
    cache.settle_jobs("wf-uid", "ns", ["wf-a-1"])  # not finished: kept whole
    assert "ownerReferences" in cache.jobs("wf-uid").live["wf-a-1"]["metadata"]
    failed = _job(FAILED, rv="4")
    failed["status"]["startTime"] = "2026-11-26T11:59:00Z"
    cache.put_job(failed)
    cache.put_pod(_pod({"exitCode": 3}, phase="Failed"))
    before = outcomes.observe(cache.jobs("wf-uid").live["wf-a-1"], None, NOW)

    cache.settle_jobs("wf-uid", "ns", ["wf-a-1", "unknown"])
    settled = cache.jobs("wf-uid").live["wf-a-1"]
    assert settled == {
        "metadata": {key: failed["metadata"][key] for key in ("name", "namespace", "uid", "resourceVersion", "labels")},
        "status": {"conditions": FAILED},
    }
    assert outcomes.observe(settled, None, NOW) == before  # the same outcome, read from what is left
    assert cache.pod("ns", "wf-a-1") is None
    assert cache.put_pod(_pod({"exitCode": 3}, phase="Failed")) is None and cache.pod("ns", "wf-a-1") is None
    assert cache.put_job(_job(FAILED, rv="4")) is None  # an older or equal version is still ignored

    # A later condition of the same Job (Failed after FailureTarget) adds nothing: still settled, no pass.
    later = _job([{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}, *FAILED], rv="5")
    assert cache.put_job(later) is None
    assert cache.jobs("wf-uid", settled=False).live == {}
    assert cache.jobs("wf-uid").live["wf-a-1"]["metadata"]["resourceVersion"] == "5"

    recreated = _job(FAILED, rv="6")  # a Job of the same name made again is whole again, and so is its pod's place
    recreated["metadata"]["uid"] = "job-uid-2"
    cache.put_job(recreated)
    assert "ownerReferences" in cache.jobs("wf-uid").live["wf-a-1"]["metadata"]
    assert cache.put_pod(_pod({"exitCode": 3}, phase="Failed")) == ("ns", "wf")


def test_a_jobs_own_end_costs_no_pass_once_its_pod_showed_that_end() -> None:
    cache = Cache()
    cache.put_workflow({"metadata": {"name": "wf", "namespace": "ns", "uid": "wf-uid", "resourceVersion": "10"}})
    running = {**_job(rv="3"), "spec": {"backoffLimit": 0}}
    cache.put_job(running)
    pod = _pod({"exitCode": 0}, phase="Succeeded")
    pod["metadata"]["ownerReferences"] = [{"kind": "Job", "uid": "job-uid"}]
    assert cache.put_pod(pod) == ("ns", "wf")  # the pod's end queues the pass that acts on it

    complete = {**_job(COMPLETE, rv="4"), "spec": {"backoffLimit": 0}}
    assert cache.put_job(complete) is None  # what it says, that pass already read from the pod
    assert cache.jobs("wf-uid").live["wf-a-1"]["status"]["conditions"] == COMPLETE  # kept for the pass to read

    other = Cache()  # without the pod's end seen first, the Job's end is what queues the pass
    other.put_workflow({"metadata": {"name": "wf", "namespace": "ns", "uid": "wf-uid", "resourceVersion": "10"}})
    other.put_job(running)
    assert other.put_job(complete) == ("ns", "wf")


def test_queue_deduplicates_orders_by_priority_and_never_hands_out_a_key_twice_at_once() -> None:
    async def scenario() -> list[str]:
        priority = {"low": 0, "high": 5, "mid": 1}
        queue: WorkQueue[str] = WorkQueue(asyncio.get_running_loop(), lambda key: (-priority[key],))
        for key in ["low", "mid", "low", "high", "mid"]:
            queue.add(key)
        order = [await queue.get(), await queue.get(), await queue.get()]
        queue.add("high")  # while "high" is being processed: not handed out again until done
        assert len(queue) == 0
        queue.done("high")
        assert len(queue) == 1
        queue.done("mid")
        queue.done("low")
        queue.add("low", delay=0.05)
        queue.add("low", delay=5.0)  # a later wake-up does not replace the earlier one
        order.append(await queue.get())
        order.append(await asyncio.wait_for(queue.get(), timeout=1.0))
        return order

    assert asyncio.run(scenario()) == ["high", "mid", "low", "high", "low"]


def test_a_deferred_pass_comes_by_its_time_and_a_sooner_pass_takes_its_place() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        queue: WorkQueue[str] = WorkQueue(loop, lambda key: (0,))
        started = loop.time()
        queue.defer("a", 0.1)
        assert await asyncio.wait_for(queue.get(), timeout=2.0) == "a"
        assert loop.time() - started >= 0.09  # not before its time
        queue.done("a")
        queue.defer("a", 0.2)
        queue.add("a")  # an end that is due: the pass comes now, and stands for the deferred one
        assert await asyncio.wait_for(queue.get(), timeout=0.05) == "a"
        queue.done("a")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(queue.get(), timeout=0.4)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("kind", "finished"),
    [("Complete", True), ("SuccessCriteriaMet", True), ("Failed", True), ("FailureTarget", True), ("Suspended", False)],
)
def test_job_finished_reads_the_same_conditions_observe_does(kind: str, finished: bool) -> None:
    job = _job([{"type": kind, "status": "True"}])
    assert outcomes.job_finished(job) is finished
    seen = outcomes.observe(job, None, NOW)
    assert seen is not None and (seen.state is not AttemptState.RUNNING) is finished
    assert not outcomes.job_finished(_job([{"type": kind, "status": "False"}]))


def test_an_item_jobs_observation_carries_its_item() -> None:
    from dagwright.k8s import outcomes as item_outcomes

    labels = {"dagwright.io/node": "work", "dagwright.io/attempt": "2", "dagwright.io/item": "7"}
    job = {"metadata": {"labels": labels}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    seen = item_outcomes.observe(job, None, datetime(2026, 1, 1, tzinfo=UTC))
    assert seen is not None and (seen.node, seen.item, seen.attempt, seen.state.value) == ("work", 7, 2, "Succeeded")


def test_job_updates_that_change_no_outcome_queue_no_pass() -> None:
    """The Job controller's updates of a running Job (active, ready, startTime) change nothing a pass reads:
    each used to cost a pass (most of a forEach workflow's passes); a new Job, its end or `suspend` still do."""
    cache = Cache()
    cache.put_workflow({"metadata": {"name": "wf", "namespace": "ns", "uid": "wf-uid", "resourceVersion": "10"}})
    assert cache.put_job(_job(rv="3")) == ("ns", "wf")  # first sight: a pass may adopt it
    for rv, status in (("4", {"active": 1}), ("5", {"active": 1, "ready": 1, "startTime": "t"})):
        assert cache.put_job({**_job(rv=rv), "status": status}) is None
        assert cache.jobs("wf-uid").live["wf-a-1"]["metadata"]["resourceVersion"] == rv  # stored all the same
    assert cache.put_job({**_job(rv="6"), "spec": {"suspend": True}}) == ("ns", "wf")
    complete = [{"type": "Complete", "status": "True", "reason": "Completed"}]
    assert cache.put_job(_job(complete, rv="7")) == ("ns", "wf")
    assert cache.put_job({**_job(complete, rv="8"), "status": {"conditions": complete, "ready": 0}}) is None


def test_a_job_a_pass_is_creating_queues_no_pass_when_its_watch_event_beats_the_create_response() -> None:
    cache = Cache()
    cache.put_workflow({"metadata": {"name": "wf", "namespace": "ns", "uid": "wf-uid", "resourceVersion": "10"}})
    cache.expect_job("ns", "wf-a-1")
    assert cache.put_job(_job(rv="3")) is None  # the watch's ADDED, before the create returned: stored, no pass
    assert cache.put_job(_job(rv="3")) is None  # the create's response: the same version
    assert "wf-a-1" in cache.jobs("wf-uid").live
    complete = [{"type": "Complete", "status": "True", "reason": "Completed"}]
    assert cache.put_job(_job(complete, rv="4")) == ("ns", "wf")  # its end still queues one

    cache.expect_job("ns", "wf-b-1")
    cache.expect_job("ns", "wf-b-1", expected=False)  # the create failed: someone else's Job of that name
    other = _job(rv="5")
    other["metadata"]["name"] = "wf-b-1"
    assert cache.put_job(other) == ("ns", "wf")
