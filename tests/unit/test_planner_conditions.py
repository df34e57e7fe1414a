"""`when` conditions (rule 7 in planner.py, dagwright/conditions.py): evaluated when a node's turn comes, over
`params` and the upstream nodes' phases and outputs; false skips the node without blocking its dependents."""

from __future__ import annotations

from typing import Any

import pytest
from builders import Driver, fail, launched, manifest, names, node, ok, running, workflow

from dagwright import conditions
from dagwright.errors import SpecError
from dagwright.planner import EventReason
from dagwright.status import NodePhase, WorkflowPhase
from dagwright.validation import compile_manifest


def when(expression: str, name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return node(name, *deps, when=expression, **fields)


# -- true and false


def test_true_condition_launches_the_node() -> None:
    run = Driver(workflow([node("a"), when("nodes.a.outputs.count > 2", "b", "a")]))
    run.step()
    assert launched(run.step(ok("a", outputs={"count": 3}))) == [("b", 1)]


def test_false_condition_skips_the_node_and_never_launches_it() -> None:
    run = Driver(workflow([node("a"), when("nodes.a.outputs.count > 2", "b", "a")]))
    run.step()
    decision = run.step(ok("a", outputs={"count": 1}))
    assert launched(decision) == []
    b = decision.status.nodes["b"]
    assert (b.phase, b.reason, b.attempts) == (NodePhase.SKIPPED, "ConditionFalse", 0)
    assert b.message == "when is false: nodes.a.outputs.count > 2"
    assert decision.status.phase is WorkflowPhase.SUCCEEDED
    assert decision.status.message == "1 nodes succeeded, 1 skipped by when"


def test_roots_and_params_conditions_are_decided_on_the_first_call() -> None:
    wf = workflow(
        [when("params.mode == 'full'", "full"), when("params.mode != 'full'", "quick")],
        parameters={"mode": "quick"},
    )
    run = Driver(wf)
    assert launched(run.step()) == [("quick", 1)]
    assert run.phase("full") is NodePhase.SKIPPED


def test_parameter_values_are_data_never_expression_text() -> None:
    wf = workflow([when("params.x == 'a'", "n")], parameters={"x": "b' || true || 'a"})
    run = Driver(wf)
    assert launched(run.step()) == []
    assert run.phase("n") is NodePhase.SKIPPED


def test_phase_of_upstream_nodes_is_readable_and_hyphenated_names_use_brackets() -> None:
    run = Driver(workflow([node("up-stream"), when("nodes['up-stream'].phase == 'Succeeded'", "b", "up-stream")]))
    run.step()
    assert launched(run.step(ok("up-stream"))) == [("b", 1)]


def test_an_ancestor_named_in_the_expression_is_readable() -> None:
    wf = workflow([node("a"), node("b", "a"), when("nodes.a.outputs.go == true", "c", "b")])
    run = Driver(wf)
    run.step()
    run.step(ok("a", outputs={"go": True}))
    assert launched(run.step(ok("b"))) == [("c", 1)]


# -- dependents of a skipped node


def test_dependents_of_a_skipped_node_still_run() -> None:
    run = Driver(workflow([node("a"), when("false", "b", "a"), node("c", "b"), node("d", "c")]))
    run.step()
    assert launched(run.step(ok("a"))) == [("c", 1)]
    assert run.phase("b") is NodePhase.SKIPPED
    decision = run.step(ok("c"))
    assert launched(decision) == [("d", 1)]
    assert run.step(ok("d")).status.phase is WorkflowPhase.SUCCEEDED


def test_dependents_reading_outputs_of_a_skipped_node_are_skipped_too_and_do_not_block() -> None:
    run = Driver(
        workflow(
            [
                node("a"),
                when("false", "b", "a"),
                node("reads", "b", args=["{{ nodes.b.outputs.k }}"]),
                node("ignores", "b"),
                node("after", "reads"),
            ]
        )
    )
    run.step()
    decision = run.step(ok("a"))
    assert sorted(names(launched(decision))) == ["after", "ignores"]
    reads = decision.status.nodes["reads"]
    assert (reads.phase, reads.reason) == (NodePhase.SKIPPED, "UpstreamSkipped")
    assert reads.message == "reads outputs of node b, which was skipped (ConditionFalse)"


def test_a_skip_unblocks_nodes_declared_before_it_in_the_same_call() -> None:
    run = Driver(workflow([node("c", "b"), when("false", "b", "a"), node("a")]))
    run.step()
    assert launched(run.step(ok("a"))) == [("c", 1)]


def test_skips_respect_parallelism_and_a_false_node_takes_no_slot() -> None:
    wf = workflow([when("false", "s1"), when("false", "s2"), node("x"), node("y")], parallelism=1)
    run = Driver(wf)
    assert launched(run.step()) == [("x", 1)]
    assert run.phases() == {"s1": "Skipped", "s2": "Skipped", "x": "Running", "y": "Pending"}


def test_failure_upstream_still_skips_dependents_as_upstream_failed() -> None:
    run = Driver(workflow([node("a"), when("true", "b", "a"), node("c", "b")]))
    run.step()
    decision = run.step(fail("a"))
    assert decision.status.nodes["b"].reason == "UpstreamFailed"
    assert decision.status.nodes["c"].reason == "UpstreamFailed"
    assert decision.status.phase is WorkflowPhase.FAILED


def test_retrying_a_finished_workflow_evaluates_conditions_again() -> None:
    run = Driver(workflow([node("a"), when("nodes.a.outputs.ok", "b", "a"), node("c", "a")]))
    run.step()
    run.step(ok("a", outputs={"ok": False}))
    assert run.step(fail("c")).status.phase is WorkflowPhase.FAILED
    run.respec(retry_token="again")
    run.step()
    assert run.phase("b") is NodePhase.SKIPPED  # a succeeded: its outputs are the same, so is the verdict
    assert run.phase("c") is NodePhase.RUNNING


# -- errors at run time


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({}, 'Key not found in map : "count"'),
        ({"count": "three"}, "No matching overloads found : _>_(string, int64)"),
    ],
)
def test_runtime_error_fails_the_node_with_the_cel_message(outputs: dict[str, Any], message: str) -> None:
    run = Driver(workflow([node("a"), when("nodes.a.outputs.count > 2", "b", "a", retry={"limit": 3}), node("c", "b")]))
    run.step()
    decision = run.step(ok("a", outputs=outputs))
    assert launched(decision) == []
    b = decision.status.nodes["b"]
    assert (b.phase, b.reason, b.message, b.attempts) == (NodePhase.FAILED, "ConditionError", message, 0)
    assert decision.status.nodes["c"].reason == "UpstreamFailed"
    assert decision.status.phase is WorkflowPhase.FAILED
    assert [e.reason for e in decision.events if e.node == "b"] == [EventReason.NODE_FAILED]


def test_a_when_failing_on_outputs_of_a_skipped_node_skips_its_node_as_a_template_reading_them_would() -> None:
    run = Driver(
        workflow(
            [
                node("a"),
                when("false", "b", "a"),
                when("nodes.b.outputs.count > 2", "c", "b"),
                when("nodes.b.phase == 'Skipped'", "d", "b"),
                node("e", "c"),
            ]
        )
    )
    run.step()
    decision = run.step(ok("a"))
    c = decision.status.nodes["c"]
    assert (c.phase, c.reason) == (NodePhase.SKIPPED, "UpstreamSkipped")
    assert c.message == 'when reads node b, which was skipped (ConditionFalse): Key not found in map : "count"'
    assert sorted(names(launched(decision))) == ["d", "e"]  # a when that can read a skipped node still decides
    assert run.step(ok("d"), ok("e")).status.phase is WorkflowPhase.SUCCEEDED


def test_a_dynamic_result_that_is_not_a_boolean_fails_the_node() -> None:
    run = Driver(workflow([node("a"), when("nodes.a.outputs.flag", "b", "a")]))
    run.step()
    b = run.step(ok("a", outputs={"flag": "yes"})).status.nodes["b"]
    assert (b.phase, b.message) == (NodePhase.FAILED, "gave 'yes' (string), not a boolean")


def test_outputs_only_redis_holds_are_named_in_the_error() -> None:
    run = Driver(workflow([node("a"), when("nodes.a.outputs.k == 'v'", "b", "a")]))
    run.step()
    b = run.step(ok("a", outputs_ref="dagwright:u:a:outputs")).status.nodes["b"]
    assert b.reason == "ConditionError"
    assert "outputs of a are too large for status" in (b.message or "")


def test_with_fail_fast_off_other_branches_go_on_after_a_condition_error() -> None:
    run = Driver(workflow([node("a"), when("nodes.a.outputs.x", "b", "a"), node("c", "a")], failFast=False))
    run.step()
    assert launched(run.step(ok("a"))) == [("c", 1)]


# -- validation: compile errors name the field


def problems(document: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        compile_manifest(document)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("nodes.a.outputs.n >", "invalid CEL expression: 1:20: Syntax error: "),
        (
            "params.x > 2",
            "invalid CEL expression: 1:10: found no matching overload for '_>_' applied to '(string, int)'",
        ),
        ("params.nope == 'a' || missing", "invalid CEL expression: 1:23: undeclared reference to 'missing'"),
        ("params.x", "must be a boolean expression, but it gives string"),
        ("nodes.my-a.phase == 'Succeeded'", "(a node name with '-' is written nodes['my-node'], not nodes.my-node)"),
        ("nodes.zz.phase == 'Failed'", "names node 'zz', which is not in this workflow"),
        ("nodes['c'].phase == 'Failed'", "reads node 'c', which is not upstream of 'b' (add it to dependsOn)"),
        ("nodes.b.phase == 'Failed'", "reads node 'b', which is not upstream of 'b' (add it to dependsOn)"),
    ],
)
def test_invalid_conditions_are_validation_problems_naming_the_field(expression: str, expected: str) -> None:
    document = manifest([node("a"), when(expression, "b", "a"), node("c")], parameters={"x": "1"})
    (problem,) = problems(document)
    assert problem.startswith("spec.nodes[1].when: ")
    assert expected in problem


def test_a_quoted_node_name_is_not_a_reference() -> None:
    compile_manifest(manifest([node("a"), when("params.x == 'nodes.c'", "b", "a"), node("c")], parameters={"x": ""}))


def test_empty_and_long_expressions_are_refused_by_the_schema() -> None:
    (empty,) = problems(manifest([when("", "a")]))
    assert empty.startswith("spec.nodes[0].when: ")
    (long,) = problems(manifest([when("true && " * 600 + "true", "a")]))
    assert long.startswith("spec.nodes[0].when: ") and "4096" in long


def test_conditions_compile_once_per_expression() -> None:
    conditions.compile_condition.cache_clear()
    nodes = [when("params.x == 'a'", f"n{i}") for i in range(50)]
    first = compile_manifest(manifest(nodes, parameters={"x": "a"}))
    again = compile_manifest(manifest(nodes, parameters={"x": "a"}))
    assert len({id(c) for c in first.conditions + again.conditions}) == 1
    info = conditions.compile_condition.cache_info()
    assert info.misses == 1


def test_nodes_unblocked_by_a_skip_get_the_room_the_first_look_left() -> None:
    wf = workflow([node("late", "skipped"), node("a"), when("false", "skipped"), node("b"), node("c")], parallelism=4)
    assert sorted(names(launched(Driver(wf).step()))) == ["a", "b", "c", "late"]


def test_a_lost_status_write_does_not_launch_a_skipped_nodes_dependent_again() -> None:
    wf = workflow([when("false", "a"), node("b", "a", args=["{{ nodes.a.outputs.k }}"]), node("c", "b")])
    first = Driver(wf).step()
    assert launched(first) == [("c", 1)]
    again = Driver(wf)  # the status write was lost: the planner starts from nothing and sees c's attempt
    decision = again.step(running("c"))
    assert launched(decision) == []
    assert again.phases() == {"a": "Skipped", "b": "Skipped", "c": "Running"}
