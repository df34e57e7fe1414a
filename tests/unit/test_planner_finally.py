"""`finally: true` nodes (rule 9 in planner.py): they run once every regular node has ended, whatever happened,
read the outcome as `workflow.status` / `workflow.failedNodes`, and a failed one fails the workflow."""

from __future__ import annotations

from typing import Any

import pytest
from builders import Driver, fail, launched, node, ok, running, workflow

from dagwright.errors import SpecError
from dagwright.status import NodePhase, WorkflowPhase


def final(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return node(name, *deps, **{"finally": True, **fields})


def test_finally_node_waits_for_every_regular_node_then_runs() -> None:
    run = Driver(workflow([node("a"), node("b", "a"), final("cleanup")]))
    assert launched(run.step()) == [("a", 1)]
    assert launched(run.step(ok("a"))) == [("b", 1)]
    decision = run.step(ok("b"))
    assert launched(decision) == [("cleanup", 1)]
    assert decision.status.phase is WorkflowPhase.RUNNING
    decision = run.step(ok("cleanup"))
    assert decision.status.phase is WorkflowPhase.SUCCEEDED
    assert decision.status.progress == "3/3"


def test_finally_node_runs_after_a_failure_with_fail_fast_and_the_workflow_stays_failed() -> None:
    run = Driver(workflow([node("a"), node("b"), node("c", "a"), final("report")], parallelism=1))
    assert launched(run.step()) == [("a", 1)]
    decision = run.step(fail("a"))
    # b never starts (failFast), c is skipped downstream: every regular node has ended, so report starts now.
    assert launched(decision) == [("report", 1)]
    assert (run.phase("b"), run.phase("c")) == (NodePhase.SKIPPED, NodePhase.SKIPPED)
    assert decision.status.phase is WorkflowPhase.RUNNING
    decision = run.step(ok("report"))
    assert decision.status.phase is WorkflowPhase.FAILED
    assert decision.status.message.startswith("node a failed")


def test_finally_node_does_not_start_while_a_regular_node_runs_after_a_failure() -> None:
    run = Driver(workflow([node("a"), node("slow"), final("report")]))
    assert launched(run.step()) == [("a", 1), ("slow", 1)]
    assert launched(run.step(fail("a"), running("slow"))) == []
    assert launched(run.step(ok("slow"))) == [("report", 1)]


def test_when_reads_the_outcome_of_the_regular_nodes() -> None:
    nodes = [
        node("a"),
        node("b"),
        final("on-failure", when="workflow.status == 'Failed' && 'a' in workflow.failedNodes"),
        final("on-success", when="workflow.status == 'Succeeded'"),
    ]
    run = Driver(workflow(nodes, failFast=False))
    run.step()
    decision = run.step(fail("a"), ok("b"))
    assert launched(decision) == [("on-failure", 1)]
    assert decision.status.nodes["on-success"].reason == "ConditionFalse"
    assert run.step(ok("on-failure")).status.phase is WorkflowPhase.FAILED


def test_templates_render_the_outcome() -> None:
    wf = workflow(
        [node("a"), final("notify", args=["{{ workflow.status }}", "{{ workflow.failedNodes }}"])], failFast=False
    )
    run = Driver(wf)
    run.step()
    decision = run.step(fail("a"))
    assert [launch.args for launch in decision.launches] == [("Failed", '["a"]')]


def test_a_regular_node_skipped_by_its_condition_does_not_make_the_outcome_failed() -> None:
    nodes = [node("a", when="params.go == 'yes'"), node("b", "a"), final("f", args=["{{ workflow.status }}"])]
    run = Driver(workflow(nodes, parameters={"go": "no"}))
    decision = run.step()  # a skipped by its condition, b passes through and runs
    assert launched(decision) == [("b", 1)]
    assert [launch.args for launch in run.step(ok("b")).launches] == [("Succeeded",)]


def test_finally_nodes_may_depend_on_each_other_and_a_failed_one_skips_its_dependents_and_fails_the_run() -> None:
    run = Driver(workflow([node("a"), final("f1"), final("f2", "f1"), final("f3")]))
    run.step()
    assert launched(run.step(ok("a"))) == [("f1", 1), ("f3", 1)]
    decision = run.step(fail("f1"), ok("f3"))
    assert run.phase("f2") is NodePhase.SKIPPED
    assert decision.status.phase is WorkflowPhase.FAILED
    assert decision.status.message.startswith("node f1 failed")


def test_finally_nodes_run_after_the_workflow_deadline_under_their_own_timeout() -> None:
    run = Driver(workflow([node("a"), node("b", "a"), final("cleanup", timeoutSeconds=30)], activeDeadlineSeconds=60))
    run.step()
    decision = run.step(running("a"), after=61)
    assert [(stop.node, stop.reason) for stop in decision.stops] == [("a", "DeadlineExceeded")]
    assert launched(decision) == [("cleanup", 1)]
    assert decision.status.phase is WorkflowPhase.RUNNING
    assert (run.phase("a"), run.phase("b")) == (NodePhase.FAILED, NodePhase.SKIPPED)
    decision = run.step(running("cleanup"), after=10)  # still past the deadline: cleanup keeps running
    assert decision.stops == [] and run.phase("cleanup") is NodePhase.RUNNING
    decision = run.step(ok("cleanup"), after=5)
    assert decision.status.phase is WorkflowPhase.FAILED
    assert decision.status.conditions[0].reason == "DeadlineExceeded"


def test_a_stopped_workflow_never_runs_its_finally_nodes() -> None:
    run = Driver(workflow([node("a"), final("cleanup")]))
    run.step()
    run.respec(stopped=True)
    decision = run.step(running("a"))
    assert launched(decision) == []
    assert run.phase("cleanup") is NodePhase.STOPPED
    assert decision.status.phase is WorkflowPhase.STOPPED


def test_a_paused_workflow_holds_its_finally_nodes() -> None:
    run = Driver(workflow([node("a"), final("cleanup")]))
    run.step()
    run.respec(paused=True)
    assert launched(run.step(ok("a"))) == []
    run.respec(paused=False)
    assert launched(run.step()) == [("cleanup", 1)]


def test_only_finally_nodes_in_a_workflow_start_at_once() -> None:
    run = Driver(workflow([final("only")]))
    assert launched(run.step()) == [("only", 1)]


@pytest.mark.parametrize(
    ("nodes", "field", "words"),
    [
        ([final("f"), node("a", "f")], "spec.nodes[1].dependsOn[0]", "depends on finally node 'f'"),
        ([node("a"), final("f", "a")], "spec.nodes[1].dependsOn[0]", "may name only other finally nodes"),
        ([node("a", args=["{{ workflow.status }}"])], "spec.nodes[0].args[0]", "known only to finally nodes"),
        ([node("a", when="workflow.status == 'Failed'")], "spec.nodes[0].when", "for finally nodes only"),
    ],
)
def test_invalid_finally_specs_name_the_field(nodes: list[dict[str, Any]], field: str, words: str) -> None:
    with pytest.raises(SpecError) as error:
        workflow(nodes)
    problems = {problem.field: problem.message for problem in error.value.problems}
    assert field in problems, problems
    assert words in problems[field]


def test_finally_node_may_read_any_regular_node_without_depending_on_it() -> None:
    nodes = [
        node("build"),
        final("report", args=["{{ nodes.build.outputs.url }}"], when="nodes.build.phase == 'Succeeded'"),
    ]
    run = Driver(workflow(nodes))
    run.step()
    decision = run.step(ok("build", outputs={"url": "http://x"}))
    assert [launch.args for launch in decision.launches] == [("http://x",)]
