"""The planner's rules, one behaviour at a time, as a backend would observe them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from builders import T0, Driver, fail, launched, names, node, ok, running, stopped, workflow

from dagwright import failures
from dagwright.planner import AttemptState, Observation, plan, retry_failed
from dagwright.spec import Backoff
from dagwright.status import NodePhase, WorkflowPhase

# -- the ready set, order and parallelism


def test_first_call_launches_roots_in_declaration_order() -> None:
    run = Driver(workflow([node("c"), node("a"), node("b", "a"), node("d")]))
    decision = run.step()
    assert launched(decision) == [("c", 1), ("a", 1), ("d", 1)]
    assert run.phase("b") is NodePhase.PENDING
    assert decision.status.phase is WorkflowPhase.RUNNING
    assert decision.status.progress == "0/4"


def test_node_launches_only_after_every_dependency_succeeded() -> None:
    run = Driver(workflow([node("a"), node("b"), node("c", "a", "b")]))
    run.step()
    assert launched(run.step(ok("a"))) == []
    assert run.phase("c") is NodePhase.PENDING
    decision = run.step(ok("b"))
    assert launched(decision) == [("c", 1)]
    assert decision.status.progress == "2/3"


def test_parallelism_caps_running_attempts_and_keeps_declaration_order() -> None:
    run = Driver(workflow([node(f"n{i}") for i in range(5)], parallelism=2))
    assert launched(run.step()) == [("n0", 1), ("n1", 1)]
    assert launched(run.step()) == []
    assert launched(run.step(ok("n1"))) == [("n2", 1)]
    assert launched(run.step(ok("n0"), ok("n2"))) == [("n3", 1), ("n4", 1)]


def test_capacity_limits_launches_of_one_call() -> None:
    run = Driver(workflow([node(f"n{i}") for i in range(4)]))
    assert launched(run.step(capacity=1)) == [("n0", 1)]
    assert launched(run.step(capacity=0)) == []
    assert launched(run.step(capacity=10)) == [("n1", 1), ("n2", 1), ("n3", 1)]


def test_launch_renders_templates_literally() -> None:
    wf = workflow(
        [node("a", command=["echo", "{{ params.x }}", "{{ node.name }}#{{ node.attempt }}@{{ workflow.name }}"])],
        parameters={"x": "$(rm -rf /) {{ params.x }}; `id`"},
    )
    (launch,) = Driver(wf).step().launches
    assert launch.command == ("echo", "$(rm -rf /) {{ params.x }}; `id`", "a#1@wf")


def test_outputs_of_upstream_nodes_reach_templates() -> None:
    run = Driver(workflow([node("a"), node("b", "a", args=["{{ nodes.a.outputs.count }}"])]))
    run.step()
    (launch,) = run.step(ok("a", outputs={"count": 3})).launches
    assert launch.args == ("3",)


def test_success_finishes_workflow_with_conditions() -> None:
    run = Driver(workflow([node("a"), node("b", "a")]))
    run.step()
    run.step(ok("a"))
    decision = run.step(ok("b"))
    status = decision.status
    assert status.phase is WorkflowPhase.SUCCEEDED
    assert status.progress == "2/2"
    assert status.finished_at == run.now
    assert decision.wake_at is None
    conditions = {c.type: c for c in status.conditions}
    assert conditions["Succeeded"].status == "True"
    assert conditions["Paused"].status == "False"
    assert status.observed_generation == 1


def test_conditions_unknown_while_running_and_transition_time_kept() -> None:
    run = Driver(workflow([node("a"), node("b", "a")]))
    first = run.step()
    (succeeded,) = [c for c in first.status.conditions if c.type == "Succeeded"]
    assert succeeded.status == "Unknown"
    second = run.step(ok("a"), after=5)
    (again,) = [c for c in second.status.conditions if c.type == "Succeeded"]
    assert again.last_transition_time == succeeded.last_transition_time == T0


def test_nothing_new_reports_no_change() -> None:
    run = Driver(workflow([node("a")]))
    run.step()
    decision = run.step(running("a"), after=1)
    assert not decision.changed
    assert decision.launches == [] and decision.stops == []


def test_running_progress_is_recorded() -> None:
    run = Driver(workflow([node("a")]))
    run.step()
    decision = run.step(running("a", progress="40/100"))
    assert decision.changed
    assert decision.status.nodes["a"].progress == "40/100"


def test_observed_generation_follows_the_spec() -> None:
    run = Driver(workflow([node("a")]))
    run.step()
    run.respec(parallelism=3)
    assert run.step().status.observed_generation == 2


def test_observed_generation_updates_on_a_finished_workflow() -> None:
    run = Driver(workflow([node("a")]))
    run.step()
    run.step(ok("a"))
    run.respec(parallelism=3)
    decision = run.step()
    assert decision.changed and decision.status.observed_generation == 2
    assert decision.status.phase is WorkflowPhase.SUCCEEDED


# -- observations that are late, repeated or ahead of the status


def test_repeated_and_stale_observations_are_ignored() -> None:
    run = Driver(workflow([node("a", retry={"limit": 2, "backoff": {"initialSeconds": 0}})]))
    run.step()
    assert launched(run.step(fail("a", 1))) == [("a", 2)]  # no backoff: the retry starts in the same call
    decision = run.step(fail("a", 1), ok("a", 1))  # attempt 1 again: already decided
    assert run.phase("a") is NodePhase.RUNNING
    assert launched(decision) == []


def test_adopts_an_attempt_the_status_does_not_know() -> None:
    """A launch happened but its status write was lost: the next call adopts it instead of launching again."""
    run = Driver(workflow([node("a"), node("b", "a")]))
    run.step()
    lost_write = run.status
    assert lost_write is not None
    run.step(ok("a"))  # launches b attempt 1 ...
    run.status = lost_write.model_copy(
        update={
            "nodes": {**lost_write.nodes, "a": lost_write.nodes["a"].model_copy(update={"phase": NodePhase.SUCCEEDED})}
        }
    )  # ... but only a's success was saved
    decision = run.step(running("b", 1))
    assert launched(decision) == []
    assert run.current.nodes["b"].attempts == 1
    assert run.phase("b") is NodePhase.RUNNING
    decision = run.step(ok("b", 1))
    assert decision.status.phase is WorkflowPhase.SUCCEEDED


def test_an_adopted_attempt_started_when_the_backend_says_it_was_launched() -> None:
    """A backend that left a launch's status write to a later call knows when it launched: the adopted
    attempt's start (and its timeout) count from then, as the status it did not write said."""
    wf = workflow([node("a", timeoutSeconds=60)])
    launched_at = T0 - timedelta(seconds=1)
    decision = plan(wf, None, [Observation("a", 1, AttemptState.RUNNING, started_at=launched_at)], T0)
    a = decision.status.nodes["a"]
    assert launched(decision) == []
    assert (a.attempts, a.started_at, a.attempt_started_at) == (1, launched_at, launched_at)
    assert decision.wake_at == launched_at + timedelta(seconds=60)

    items = workflow([{"name": "each", "forEach": {"items": [1, 2]}, "command": ["w"]}])
    seen = [Observation("each", 1, AttemptState.RUNNING, item=i, started_at=launched_at) for i in (0, 1)]
    detail = plan(items, None, seen, T0).status.nodes["each"].items
    assert detail is not None
    assert [detail.detail[key].attempt_started_at for key in ("0", "1")] == [launched_at, launched_at]


def test_adopted_attempt_that_already_finished_counts() -> None:
    run = Driver(workflow([node("a", retry={"limit": 5})]))
    run.step()
    decision = run.step(fail("a", 3))
    assert run.current.nodes["a"].attempts == 3
    assert run.phase("a") is NodePhase.RETRYING
    assert launched(decision) == []


def test_observation_for_unknown_node_is_ignored() -> None:
    run = Driver(workflow([node("a")]))
    run.step()
    decision = run.step(ok("ghost"))
    assert "ghost" not in decision.status.nodes
    assert run.phase("a") is NodePhase.RUNNING


# -- pause


def test_pause_launches_nothing_new_and_running_ones_continue() -> None:
    run = Driver(workflow([node("a"), node("b", "a"), node("c")], parallelism=1))
    run.step()
    run.respec(paused=True)
    decision = run.step()
    assert decision.stops == []
    assert decision.status.phase is WorkflowPhase.PAUSED
    assert any(e.reason == "Paused" for e in decision.events)
    assert {c.type: c.status for c in decision.status.conditions}["Paused"] == "True"
    decision = run.step(ok("a"))
    assert launched(decision) == []
    assert decision.status.phase is WorkflowPhase.PAUSED
    run.respec(paused=False)
    decision = run.step()
    assert launched(decision) == [("b", 1)]
    assert decision.status.phase is WorkflowPhase.RUNNING
    assert any(e.reason == "Resumed" for e in decision.events)


def test_paused_from_the_start_launches_nothing() -> None:
    decision = Driver(workflow([node("a")], paused=True)).step()
    assert decision.launches == []
    assert decision.status.phase is WorkflowPhase.PAUSED


# -- stop


def test_stop_stops_running_attempts_and_marks_unfinished_nodes() -> None:
    run = Driver(workflow([node("a"), node("b"), node("c", "a"), node("d", "b")]))
    run.step()
    run.step(ok("a"))  # c launches
    run.respec(stopped=True)
    decision = run.step()
    assert sorted(stopped(decision)) == [("b", 1, "Stopped"), ("c", 1, "Stopped")]
    assert run.phases() == {"a": "Succeeded", "b": "Stopped", "c": "Stopped", "d": "Stopped"}
    assert decision.status.phase is WorkflowPhase.STOPPED
    assert {c.type: c.status for c in decision.status.conditions}["Succeeded"] == "False"
    assert decision.launches == []


def test_late_completion_after_stop_is_ignored_and_running_stray_is_stopped() -> None:
    run = Driver(workflow([node("a"), node("b", "a")]))
    run.step()
    run.respec(stopped=True)
    run.step()
    decision = run.step(ok("a"))
    assert run.phase("a") is NodePhase.STOPPED
    assert decision.launches == []
    assert decision.status.phase is WorkflowPhase.STOPPED
    decision = run.step(running("a"))
    assert stopped(decision) == [("a", 1, "WorkflowFinished")]


def test_stop_while_retrying_ends_the_retry() -> None:
    run = Driver(workflow([node("a", retry={"limit": 3, "backoff": {"initialSeconds": 60}})]))
    run.step()
    run.step(fail("a"))
    run.respec(stopped=True)
    decision = run.step(after=120)
    assert decision.launches == [] and decision.stops == []
    assert run.phase("a") is NodePhase.STOPPED
    assert run.current.nodes["a"].next_attempt_at is None


# -- failures: failFast, skipping downstream


def test_fail_fast_launches_nothing_new_then_skips_pending() -> None:
    run = Driver(workflow([node("a"), node("b"), node("c", "b"), node("d")], parallelism=2))
    run.step()  # a, b
    decision = run.step(fail("a"))
    assert launched(decision) == []  # d would fit, but a failed for good
    assert run.phase("b") is NodePhase.RUNNING
    decision = run.step(ok("b"))
    assert decision.launches == []
    assert run.phases() == {"a": "Failed", "b": "Succeeded", "c": "Skipped", "d": "Skipped"}
    assert run.current.nodes["d"].reason == "FailFast"
    assert decision.status.phase is WorkflowPhase.FAILED
    assert decision.status.message.startswith("node a failed")
    assert {c.type: c.status for c in decision.status.conditions}["Succeeded"] == "False"


def test_without_fail_fast_other_branches_continue_and_downstream_is_skipped() -> None:
    run = Driver(workflow([node("a"), node("b"), node("c", "a"), node("d", "c"), node("e", "b")], failFast=False))
    run.step()
    decision = run.step(fail("a"))
    assert run.phase("c") is NodePhase.SKIPPED and run.phase("d") is NodePhase.SKIPPED
    assert run.current.nodes["c"].reason == "UpstreamFailed"
    assert run.current.nodes["d"].reason == "UpstreamFailed"
    assert decision.status.phase is WorkflowPhase.RUNNING
    assert launched(run.step(ok("b"))) == [("e", 1)]
    decision = run.step(ok("e"))
    assert decision.status.phase is WorkflowPhase.FAILED
    assert decision.status.progress == "2/5"


def test_fail_fast_does_not_retry_pending_retries() -> None:
    run = Driver(workflow([node("a"), node("b", retry={"limit": 2, "backoff": {"initialSeconds": 10}})], parallelism=2))
    run.step()
    run.step(fail("b"))
    assert run.phase("b") is NodePhase.RETRYING
    decision = run.step(fail("a"), after=20)
    assert decision.launches == []
    assert run.phase("b") is NodePhase.FAILED
    assert decision.status.phase is WorkflowPhase.FAILED


# -- retries and backoff


def test_retry_waits_for_backoff_then_launches_next_attempt() -> None:
    policy = {"limit": 2, "backoff": {"initialSeconds": 10, "factor": 3, "jitter": 0}}
    run = Driver(workflow([node("a", retry=policy)]))
    run.step()
    decision = run.step(fail("a"))
    status = decision.status.nodes["a"]
    assert status.phase is NodePhase.RETRYING
    assert status.next_attempt_at == run.now + timedelta(seconds=10)
    assert decision.wake_at == status.next_attempt_at
    assert launched(run.step(after=9.9)) == []
    assert launched(run.step(after=0.1)) == [("a", 2)]
    decision = run.step(fail("a", 2))
    assert decision.status.nodes["a"].next_attempt_at == run.now + timedelta(seconds=30)
    run.step(after=30)
    decision = run.step(fail("a", 3))
    assert run.phase("a") is NodePhase.FAILED
    assert decision.status.phase is WorkflowPhase.FAILED
    assert decision.status.nodes["a"].attempts == 3


def test_backoff_is_capped_and_jittered_deterministically() -> None:
    backoff = Backoff(initial_seconds=10, factor=2, max_seconds=60, jitter=0.5)
    delays = [failures.backoff_seconds(backoff, n, f"seed-{n}") for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        base = min(60, 10 * 2 ** (n - 1))
        assert base * 0.5 <= delay <= base * 1.5
    assert delays == [failures.backoff_seconds(backoff, n, f"seed-{n}") for n in range(1, 12)]
    assert len({failures.backoff_seconds(backoff, 1, f"node-{i}") for i in range(20)}) > 1
    assert failures.backoff_seconds(Backoff(factor=100, max_seconds=5), 1000, "x") <= 5 * 1.1


@pytest.mark.parametrize(
    ("code", "reason", "retried"),
    [
        (75, None, True),
        (1, None, False),
        (None, "Timeout", True),
        (None, "OOMKilled", True),
        (None, "Evicted", True),
        (None, "JobDeleted", True),
        (137, "Error", False),
        (75, "ImagePullFailed", False),
    ],
)
def test_retry_on_transient_only_retries_transient_failures(
    code: int | None, reason: str | None, retried: bool
) -> None:
    run = Driver(workflow([node("a", retry={"limit": 3, "policy": "Transient"})]))
    run.step()
    run.step(fail("a", code=code, reason=reason))
    assert run.phase("a") is (NodePhase.RETRYING if retried else NodePhase.FAILED)


def test_transient_exit_codes_are_configurable() -> None:
    run = Driver(workflow([node("a", retry={"limit": 1, "policy": "Transient", "transientExitCodes": [42]})]))
    run.step()
    run.step(fail("a", code=75))
    assert run.phase("a") is NodePhase.FAILED
    run = Driver(workflow([node("a", retry={"limit": 1, "policy": "Transient", "transientExitCodes": [42]})]))
    run.step()
    run.step(fail("a", code=42))
    assert run.phase("a") is NodePhase.RETRYING


def test_lost_attempt_is_a_transient_job_deleted_failure() -> None:
    run = Driver(workflow([node("a", retry={"limit": 1, "policy": "Transient"})]))
    run.step()
    run.step(Observation("a", 1, AttemptState.LOST))
    assert run.phase("a") is NodePhase.RETRYING
    assert run.current.nodes["a"].reason == "JobDeleted"


def test_defaults_retry_applies_to_nodes_without_their_own() -> None:
    wf = workflow([node("a"), node("b", retry={"limit": 0})], defaults={"retry": {"limit": 1}}, failFast=False)
    run = Driver(wf)
    run.step()
    run.step(fail("a"), fail("b"))
    assert run.phases() == {"a": "Retrying", "b": "Failed"}


# -- timeouts and the workflow deadline


def test_attempt_timeout_stops_it_and_fails_with_reason_timeout() -> None:
    run = Driver(workflow([node("a", timeoutSeconds=30)]))
    decision = run.step()
    assert decision.wake_at == T0 + timedelta(seconds=30)
    assert run.step(after=29).stops == []
    decision = run.step(after=1)
    assert stopped(decision) == [("a", 1, "Timeout")]
    assert run.current.nodes["a"].reason == "Timeout"
    assert decision.status.phase is WorkflowPhase.FAILED


def test_timed_out_attempt_is_retried_as_transient() -> None:
    run = Driver(workflow([node("a", timeoutSeconds=5, retry={"limit": 1, "policy": "Transient"})]))
    run.step()
    decision = run.step(after=5)
    assert stopped(decision) == [("a", 1, "Timeout")]
    assert run.phase("a") is NodePhase.RETRYING
    decision = run.step(ok("a", 1), after=60)  # the stopped attempt's late success does not count
    assert launched(decision) == [("a", 2)]


def test_active_deadline_fails_running_and_skips_the_rest() -> None:
    run = Driver(workflow([node("a"), node("b"), node("c", "a")], activeDeadlineSeconds=100))
    decision = run.step()
    assert decision.wake_at == T0 + timedelta(seconds=100)
    run.step(ok("a"), after=10)
    decision = run.step(after=90)
    assert sorted(stopped(decision)) == [("b", 1, "DeadlineExceeded"), ("c", 1, "DeadlineExceeded")]
    assert run.phases() == {"a": "Succeeded", "b": "Failed", "c": "Failed"}
    assert decision.status.phase is WorkflowPhase.FAILED
    assert "activeDeadlineSeconds" in decision.status.message


def test_active_deadline_skips_pending_and_retrying_nodes() -> None:
    run = Driver(
        workflow(
            [node("a", retry={"limit": 3, "backoff": {"initialSeconds": 50}}), node("b", "a")], activeDeadlineSeconds=30
        )
    )
    run.step()
    run.step(fail("a"), after=1)
    decision = run.step(after=40)
    assert decision.launches == []
    assert run.phases() == {"a": "Skipped", "b": "Skipped"}
    assert decision.status.phase is WorkflowPhase.FAILED


# -- retrying a finished workflow


def _failed_run() -> Driver:
    run = Driver(workflow([node("a"), node("b"), node("c", "b"), node("d", "a")], failFast=False))
    run.step()
    run.step(ok("a"))
    run.step(fail("b"))
    run.step(ok("d"))
    assert run.status is not None and run.status.phase is WorkflowPhase.FAILED
    return run


def test_retry_token_reruns_failed_and_skipped_nodes_only() -> None:
    run = _failed_run()
    run.respec(retry_token="again")
    decision = run.step(after=5)
    assert launched(decision) == [("b", 2)]
    assert run.phases() == {"a": "Succeeded", "b": "Running", "c": "Pending", "d": "Succeeded"}
    assert decision.status.phase is WorkflowPhase.RUNNING
    assert decision.status.retry_token == "again"
    run.step(ok("b", 2))
    assert launched(run.last) == [("c", 1)]  # type: ignore[arg-type]
    assert run.step(ok("c", 1)).status.phase is WorkflowPhase.SUCCEEDED


def test_retry_token_gives_a_fresh_retry_budget() -> None:
    run = Driver(workflow([node("a", retry={"limit": 1, "backoff": {"initialSeconds": 0}})]))
    run.step()
    assert launched(run.step(fail("a", 1))) == [("a", 2)]
    run.step(fail("a", 2))
    assert run.status is not None and run.status.phase is WorkflowPhase.FAILED
    run.respec(retry_token="1")
    assert launched(run.step()) == [("a", 3)]
    assert launched(run.step(fail("a", 3))) == [("a", 4)]  # one more retry, as the policy says
    run.step(fail("a", 4))
    assert run.phase("a") is NodePhase.FAILED


def test_same_retry_token_or_succeeded_workflow_does_nothing() -> None:
    run = _failed_run()
    assert run.step(after=5).launches == []
    run = Driver(workflow([node("a")]))
    run.step()
    run.step(ok("a"))
    run.respec(retry_token="x")
    decision = run.step()
    assert decision.launches == [] and decision.status.phase is WorkflowPhase.SUCCEEDED


def test_retry_token_on_a_stopped_workflow_reruns_stopped_nodes() -> None:
    run = Driver(workflow([node("a"), node("b")]))
    run.step()
    run.step(ok("a"))
    run.respec(stopped=True)
    run.step()
    run.respec(stopped=False, retry_token="go")
    assert launched(run.step()) == [("b", 2)]


def test_retry_failed_keeps_succeeded_and_numbers_keep_growing() -> None:
    run = _failed_run()
    assert run.status is not None
    status = retry_failed(run.status)
    assert status.phase is WorkflowPhase.PENDING
    assert status.nodes["a"] == run.current.nodes["a"]
    assert status.nodes["b"].phase is NodePhase.PENDING
    assert status.nodes["b"].attempts == 1 and status.nodes["b"].retry_budget_from == 2
    decision = plan(run.workflow, status, [], run.now)
    assert launched(decision) == [("b", 2)]


# -- approval nodes


def test_approval_node_waits_then_approve_lets_downstream_run() -> None:
    run = Driver(
        workflow([node("build"), {"name": "gate", "dependsOn": ["build"], "approval": {}}, node("ship", "gate")])
    )
    run.step()
    decision = run.step(ok("build"))
    assert decision.launches == []
    assert run.phase("gate") is NodePhase.AWAITING_APPROVAL
    assert any(e.reason == "AwaitingApproval" for e in decision.events)
    assert decision.status.phase is WorkflowPhase.RUNNING
    assert run.step(after=3600).launches == []
    decision = run.step(ok("gate"))
    assert launched(decision) == [("ship", 1)]


def test_rejected_approval_fails_the_workflow_without_retry() -> None:
    wf = workflow([{"name": "gate", "approval": {"message": "ship it?"}, "retry": {"limit": 3}}, node("ship", "gate")])
    run = Driver(wf)
    run.step()
    decision = run.step(fail("gate", code=None, reason="Rejected"))
    assert run.phases() == {"gate": "Failed", "ship": "Skipped"}
    assert decision.status.phase is WorkflowPhase.FAILED


def test_approval_nodes_do_not_take_parallelism_slots() -> None:
    wf = workflow([{"name": "gate", "approval": {}}, node("a"), node("b")], parallelism=1)
    decision = Driver(wf).step()
    assert launched(decision) == [("a", 1)]
    assert decision.status.nodes["gate"].phase is NodePhase.AWAITING_APPROVAL


# -- purity


def test_plan_does_not_modify_its_inputs_and_is_deterministic() -> None:
    wf = workflow([node("a", retry={"limit": 2}), node("b", "a")])
    first = plan(wf, None, [], T0)
    before = first.status.model_dump()
    one = plan(wf, first.status, [fail("a")], T0 + timedelta(seconds=1))
    two = plan(wf, first.status, [fail("a")], T0 + timedelta(seconds=1))
    assert first.status.model_dump() == before
    assert one == two
    assert names(launched(first)) == ["a"]


def test_fast_node_status_copy_is_model_copy() -> None:
    """The planner copies node statuses without pydantic's model_copy, for speed; the result must not differ."""
    from dagwright.planner import _updated
    from dagwright.status import NodeStatus

    node = NodeStatus(phase=NodePhase.RUNNING, attempts=2, started_at=T0, outputs={"k": [1]})
    update = {"phase": NodePhase.FAILED, "exit_code": 3, "finished_at": T0 + timedelta(seconds=1)}
    fast, slow = _updated(node, update), node.model_copy(update=update)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_fields_set == slow.model_fields_set
    assert node.phase is NodePhase.RUNNING  # the original is untouched


def test_retry_failed_after_a_crash_reruns_running_and_retrying_nodes_with_new_attempt_numbers() -> None:
    """A state file saved mid-run (the runner was killed): its Running attempt is gone and must run again."""
    run = Driver(workflow([node("a"), node("b", retry={"limit": 2, "backoff": {"initialSeconds": 60}}), node("c")]))
    run.step()
    run.step(ok("c"), fail("b"))
    crashed = run.current
    assert (crashed.phase, crashed.nodes["a"].phase, crashed.nodes["b"].phase) == (
        WorkflowPhase.RUNNING,
        NodePhase.RUNNING,
        NodePhase.RETRYING,
    )
    decision = plan(run.workflow, retry_failed(crashed), [], run.now)
    assert launched(decision) == [("a", 2), ("b", 2)]
    assert decision.status.nodes["c"] == crashed.nodes["c"]
