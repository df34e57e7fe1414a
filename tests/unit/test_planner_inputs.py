"""Outputs held only in Redis: the planner hands their templates to node-runner instead of rendering them."""

from __future__ import annotations

from typing import Any

from builders import Driver, node, ok, workflow

from dagwright import nodeio
from dagwright.planner import Launch
from dagwright.status import NodePhase, WorkflowPhase, to_wire

KEY = nodeio.outputs_key("uid-1", "a")


def _reader(**fields: Any) -> dict[str, Any]:
    return node(
        "b",
        "a",
        command=["load", "--day={{ params.day }}"],
        args=["{{ nodes.a.outputs.blob }}", "{{ node.name }}#{{ node.attempt }}"],
        env=[
            {"name": "BLOB", "value": "{{ nodes.a.outputs.blob }}"},
            {"name": "DAY", "value": "{{ params.day }}"},
        ],
        **fields,
    )


def _launch_after_large_outputs(reader: dict[str, Any], **spec: Any) -> tuple[Driver, list[Launch]]:
    run = Driver(workflow([node("a", nodeRunner=True), reader], parameters={"day": "2026-11-26"}, **spec))
    run.step()
    return run, run.step(ok("a", outputs_ref=KEY)).launches


def test_the_redis_key_of_outputs_is_recorded_in_status() -> None:
    run, _ = _launch_after_large_outputs(_reader(nodeRunner=True))
    assert to_wire(run.current)["nodes"]["a"]["outputsRef"] == KEY
    assert "outputs" not in to_wire(run.current)["nodes"]["a"]


def test_templates_reading_outputs_only_redis_holds_go_to_node_runner_unrendered() -> None:
    _, (launch,) = _launch_after_large_outputs(_reader(nodeRunner=True))
    assert launch.inputs is not None
    assert (launch.command, launch.args) == ((), ())
    assert launch.inputs.command == ("load", "--day={{ params.day }}")
    assert launch.inputs.args == ("{{ nodes.a.outputs.blob }}", "{{ node.name }}#{{ node.attempt }}")
    assert launch.inputs.env == (("BLOB", "{{ nodes.a.outputs.blob }}"),)
    assert launch.env == (("DAY", "2026-11-26"),)  # reads nothing from Redis: rendered here, as always
    assert dict(launch.inputs.outputs) == {"a": KEY}
    assert dict(launch.inputs.values) == {"params.day": "2026-11-26", "node.name": "b", "node.attempt": "1"}


def test_node_runner_renders_the_deferred_templates_into_what_an_eager_render_gives() -> None:
    _, (launch,) = _launch_after_large_outputs(_reader(nodeRunner=True))
    assert launch.inputs is not None
    command, args, env = launch.inputs.render({"a": {"blob": "x" * 5000}})
    assert command == ["load", "--day=2026-11-26"]
    assert args == ["x" * 5000, "b#1"]
    assert env == {"BLOB": "x" * 5000}


def test_a_parameter_that_looks_like_a_template_stays_literal_after_node_runner_renders() -> None:
    reader = node("b", "a", nodeRunner=True, command=["echo", "{{ params.p }}", "{{ nodes.a.outputs.k }}"])
    run = Driver(workflow([node("a", nodeRunner=True), reader], parameters={"p": "{{ nodes.a.outputs.k }}"}))
    run.step()
    (launch,) = run.step(ok("a", outputs_ref=KEY)).launches
    assert launch.inputs is not None
    command, _, _ = launch.inputs.render({"a": {"k": "from-redis"}})
    assert command == ["echo", "{{ nodes.a.outputs.k }}", "from-redis"]


def test_outputs_mirrored_in_status_are_rendered_by_the_planner_even_with_a_redis_key() -> None:
    run = Driver(workflow([node("a", nodeRunner=True), _reader(nodeRunner=True)], parameters={"day": "d"}))
    run.step()
    (launch,) = run.step(ok("a", outputs={"blob": "small"}, outputs_ref=KEY)).launches
    assert launch.inputs is None
    assert launch.args == ("small", "b#1")


def test_a_node_that_does_not_read_the_large_outputs_launches_as_usual() -> None:
    run = Driver(
        workflow([node("a", nodeRunner=True), node("b", "a", args=["{{ params.day }}"])], parameters={"day": "d"})
    )
    run.step()
    (launch,) = run.step(ok("a", outputs_ref=KEY)).launches
    assert launch.inputs is None and launch.args == ("d",)


def test_without_node_runner_the_reader_fails_for_good_with_a_reason_that_says_what_to_set() -> None:
    reader = _reader(retry={"limit": 3, "policy": "AnyFailure"})
    run, launches = _launch_after_large_outputs(reader)
    assert launches == []
    b = run.current.nodes["b"]
    assert (b.phase, b.reason, b.attempts) == (NodePhase.FAILED, "InputsUnavailable", 0)
    assert b.message is not None and "outputs of node a are stored in Redis" in b.message
    assert "set nodeRunner: true on node b" in b.message
    assert run.current.phase is WorkflowPhase.FAILED
    assert run.step(after=3600).launches == []  # its retry policy does not apply: nothing would change


def test_downstream_of_a_node_without_its_inputs_is_skipped_and_other_branches_go_on() -> None:
    wf = workflow(
        [node("a", nodeRunner=True), _reader(), node("c", "b"), node("d", "a")],
        parameters={"day": "d"},
        failFast=False,
    )
    run = Driver(wf)
    run.step()
    decision = run.step(ok("a", outputs_ref=KEY))
    assert [launch.node for launch in decision.launches] == ["d"]
    assert (run.phase("b"), run.phase("c")) == (NodePhase.FAILED, NodePhase.SKIPPED)


def test_with_fail_fast_nothing_launches_after_a_node_fails_for_want_of_its_inputs() -> None:
    run = Driver(workflow([node("a", nodeRunner=True), _reader(), node("d", "a")], parameters={"day": "d"}))
    run.step()
    assert run.step(ok("a", outputs_ref=KEY)).launches == []
    assert (run.phase("d"), run.current.nodes["d"].reason) == (NodePhase.SKIPPED, "FailFast")
    assert run.current.phase is WorkflowPhase.FAILED


def test_inputs_survive_their_json_form() -> None:
    _, (launch,) = _launch_after_large_outputs(_reader(nodeRunner=True))
    assert launch.inputs is not None
    assert nodeio.Inputs.from_json(launch.inputs.to_json()) == launch.inputs
