"""forEach: expansion, item scheduling, retries, failure, fan-in and restart safety (planner rule 9), its
validation and its templates."""

from __future__ import annotations

from typing import Any

import pytest
from builders import T0, Driver, manifest, ok, workflow

from dagwright.errors import SpecError
from dagwright.planner import AttemptState, Observation, plan
from dagwright.status import NodePhase, WorkflowPhase
from dagwright.validation import compile_manifest


def item_ok(name: str, item: int, attempt: int = 1, **outputs: Any) -> Observation:
    return Observation(name, attempt, AttemptState.SUCCEEDED, exit_code=0, outputs=outputs or None, item=item)


def item_fail(name: str, item: int, attempt: int = 1, code: int = 1) -> Observation:
    return Observation(name, attempt, AttemptState.FAILED, exit_code=code, item=item)


def map_reduce(**for_each: Any) -> list[dict[str, Any]]:
    return [
        {"name": "find", "command": ["find"]},
        {
            "name": "work",
            "dependsOn": ["find"],
            "forEach": {"fromJSON": "{{ nodes.find.outputs.shards }}", **for_each},
            "command": ["work", "{{ item }}", "{{ node.index }}"],
        },
        {"name": "sum", "dependsOn": ["work"], "command": ["sum"], "args": ["{{ nodes.work.outputs.n }}"]},
    ]


def units(decision: Any) -> list[tuple[str, int | None, int]]:
    return [(launch.node, launch.item, launch.attempt) for launch in decision.launches]


def test_items_launch_within_max_parallel_and_downstream_reads_every_items_value_in_order() -> None:
    run = Driver(workflow(map_reduce(maxParallel=2)))
    run.step()
    first = run.step(ok("find", outputs={"shards": [1, "two", {"k": 3}]}))
    assert units(first) == [("work", 0, 1), ("work", 1, 1)]
    assert [launch.command for launch in first.launches] == [("work", "1", "0"), ("work", "two", "1")]
    node = run.current.nodes["work"]
    assert (node.phase, node.progress, node.items and node.items.states) == (NodePhase.RUNNING, "0/3", "RRP")
    second = run.step(item_ok("work", 1, n=20))
    assert units(second) == [("work", 2, 1)]
    assert second.launches[0].command == ("work", '{"k": 3}', "2")
    third = run.step(item_ok("work", 0, n=10), item_ok("work", 2))
    assert run.current.nodes["work"].phase is NodePhase.SUCCEEDED
    assert run.current.nodes["work"].outputs == {"n": [10, 20, None]}
    assert third.launches[0].args == ("[10, 20, null]",)


def test_an_empty_list_succeeds_at_once_and_downstream_reads_empty_arrays() -> None:
    run = Driver(workflow(map_reduce()))
    run.step()
    decision = run.step(ok("find", outputs={"shards": []}))
    assert run.current.nodes["work"].phase is NodePhase.SUCCEEDED
    assert run.current.nodes["work"].progress == "0/0"
    assert decision.wake_at == run.now  # its dependents can start: plan again at once
    assert run.step().launches[0].args == ("[]",)


@pytest.mark.parametrize(
    ("shards", "why"),
    [({"a": 1}, "it is a JSON dict"), ("not json", "is not a JSON array"), (None, "is not a JSON array")],
)
def test_from_json_that_is_not_an_array_fails_the_node_with_a_message(shards: Any, why: str) -> None:
    run = Driver(workflow(map_reduce()))
    run.step()
    outputs = {"shards": shards} if shards is not None else {"other": 1}
    run.step(ok("find", outputs=outputs))
    node = run.current.nodes["work"]
    assert (node.phase, node.reason) == (NodePhase.FAILED, "InvalidItems")
    assert why in (node.message or "")
    assert run.current.nodes["sum"].phase is NodePhase.SKIPPED
    assert run.current.phase is WorkflowPhase.FAILED


def test_a_failed_item_is_retried_alone_then_fails_the_node_after_the_running_items_end() -> None:
    nodes = [
        {"name": "work", "forEach": {"items": ["a", "b", "c"]}, "command": ["w", "{{ item }}"], "retry": {"limit": 1}},
        {"name": "after", "dependsOn": ["work"], "command": ["true"]},
    ]
    run = Driver(workflow(nodes))
    assert units(run.step()) == [("work", 0, 1), ("work", 1, 1), ("work", 2, 1)]
    run.step(item_fail("work", 0))
    assert run.current.nodes["work"].items.states == "BRR"  # type: ignore[union-attr]
    retry = run.step(after=400)
    assert units(retry) == [("work", 0, 2)]
    run.step(item_fail("work", 0, attempt=2), item_ok("work", 1))
    assert run.current.nodes["work"].phase is NodePhase.RUNNING  # item 2 still runs
    run.step(item_ok("work", 2))
    node = run.current.nodes["work"]
    assert node.phase is NodePhase.FAILED
    assert node.message is not None and node.message.startswith("1 of 3 items failed; item 0:")
    assert run.current.nodes["after"].phase is NodePhase.SKIPPED
    assert node.attempts == 4


def test_with_fail_fast_no_new_item_starts_after_one_failed_for_good() -> None:
    nodes = [{"name": "work", "forEach": {"items": [1, 2, 3, 4], "maxParallel": 2}, "command": ["w"]}]
    run = Driver(workflow(nodes))
    run.step()
    decision = run.step(item_fail("work", 0))
    assert units(decision) == []
    run.step(item_ok("work", 1))
    node = run.current.nodes["work"]
    assert node.items is not None and node.items.states == "FSXX"
    assert node.phase is NodePhase.FAILED and run.current.phase is WorkflowPhase.FAILED


def test_a_failed_node_counts_its_succeeded_items_over_all_not_those_that_never_ran() -> None:
    nodes = [{"name": "work", "forEach": {"items": list(range(8)), "maxParallel": 5}, "command": ["w"]}]
    run = Driver(workflow(nodes))
    run.step()
    run.step(item_fail("work", 4))
    run.step(*(item_ok("work", i) for i in range(4)))
    node = run.current.nodes["work"]
    assert node.items is not None and node.items.states == "SSSSFXXX"
    assert (node.phase, node.progress) == (NodePhase.FAILED, "4/8")  # as Argo's N/M, never 8/8


def test_without_fail_fast_the_other_items_still_run() -> None:
    nodes = [{"name": "work", "forEach": {"items": [1, 2, 3], "maxParallel": 1}, "command": ["w"]}]
    run = Driver(workflow(nodes, failFast=False))
    run.step()
    assert units(run.step(item_fail("work", 0))) == [("work", 1, 1)]
    assert units(run.step(item_ok("work", 1))) == [("work", 2, 1)]
    run.step(item_ok("work", 2))
    assert run.current.nodes["work"].items.states == "FSS"  # type: ignore[union-attr]
    assert run.current.phase is WorkflowPhase.FAILED


def test_parallelism_and_capacity_count_items() -> None:
    nodes = [
        {"name": "work", "forEach": {"items": list(range(5))}, "command": ["w"]},
        {"name": "solo", "command": ["s"]},
    ]
    run = Driver(workflow(nodes, parallelism=3))
    first = run.step(capacity=2)
    assert units(first) == [("work", 0, 1), ("work", 1, 1)]
    assert first.running == 2 and first.waiting >= 1
    assert units(run.step()) == [("work", 2, 1)]


def test_timeouts_stop_an_item_and_stop_all_stops_every_running_item() -> None:
    nodes = [{"name": "work", "forEach": {"items": [1, 2]}, "command": ["w"], "timeoutSeconds": 5}]
    run = Driver(workflow(nodes))
    run.step()
    timed_out = run.step(after=6)
    assert sorted((stop.item, stop.reason) for stop in timed_out.stops) == [(0, "Timeout"), (1, "Timeout")]
    run = Driver(workflow(nodes))
    run.step()
    run.respec(stopped=True)
    stopped = run.step()
    assert sorted((stop.node, stop.item, stop.attempt) for stop in stopped.stops) == [("work", 0, 1), ("work", 1, 1)]
    assert not stopped.launches
    assert run.current.nodes["work"].items.states == "XX"  # type: ignore[union-attr]
    assert run.current.phase is WorkflowPhase.STOPPED


def test_item_attempts_launched_but_not_recorded_are_adopted_not_launched_again() -> None:
    wf = workflow([{"name": "work", "forEach": {"items": [1, 2, 3], "maxParallel": 2}, "command": ["w"]}])
    assert units(plan(wf, None, [], T0)) == [("work", 0, 1), ("work", 1, 1)]
    # The status write that recorded those launches was lost; the backend still sees their Jobs.
    seen = [Observation("work", 1, AttemptState.RUNNING, item=0), item_ok("work", 1)]
    decision = plan(wf, None, seen, T0)
    assert units(decision) == [("work", 2, 1)]
    assert decision.status.nodes["work"].items.states == "RSR"  # type: ignore[union-attr]


def test_a_dependent_launched_when_the_last_item_ended_is_adopted_after_a_lost_status_write() -> None:
    """Found by hypothesis: the write that recorded the fan-out's end and its dependent's launch was lost; the
    next call sees the items' ends and the dependent's running attempt together, and must adopt that attempt,
    not launch it a second time."""
    wf = workflow(
        [
            {"name": "fan", "forEach": {"items": [0, 1]}, "command": ["f"]},
            {"name": "after", "dependsOn": ["fan"], "command": ["a"]},
        ]
    )
    stored = plan(wf, None, [], T0).status
    ended = [item_ok("fan", 0), item_ok("fan", 1)]
    assert units(plan(wf, stored, ended, T0)) == [("after", None, 1)]
    again = plan(wf, stored, [*ended, Observation("after", 1, AttemptState.RUNNING)], T0)
    assert units(again) == []
    assert (again.status.nodes["fan"].phase, again.status.nodes["after"].phase) == (
        NodePhase.SUCCEEDED,
        NodePhase.RUNNING,
    )


def test_a_retried_workflow_reruns_only_the_items_that_did_not_succeed_with_new_attempt_numbers() -> None:
    run = Driver(workflow([{"name": "work", "forEach": {"items": [1, 2]}, "command": ["w"]}]))
    run.step()
    run.step(item_fail("work", 0), item_ok("work", 1, n=2))
    assert run.current.phase is WorkflowPhase.FAILED
    run.respec(retry_token="again")
    assert units(run.step()) == [("work", 0, 2)]
    run.step(item_ok("work", 0, attempt=2, n=1))
    assert run.current.nodes["work"].outputs == {"n": [1, 2]}
    assert run.current.phase is WorkflowPhase.SUCCEEDED


@pytest.mark.parametrize(
    ("for_each", "field", "text"),
    [
        ({"items": [1], "fromJSON": "[1]"}, "spec.nodes[0].forEach", "both given"),
        ({"maxParallel": 2}, "spec.nodes[0].forEach", "neither given"),
        ({"items": [1], "maxParallel": 0}, "spec.nodes[0].forEach.maxParallel", "greater than or equal to 1"),
        ({"items": list(range(10_001))}, "spec.nodes[0].forEach.items", "at most 10000"),
        ({"fromJSON": "{{ item }}"}, "spec.nodes[0].forEach.fromJSON", "only known in a forEach node"),
        ({"fromJSON": "{{ params.nope }}"}, "spec.nodes[0].forEach.fromJSON", "names parameter 'nope'"),
    ],
)
def test_for_each_problems_name_their_field(for_each: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(SpecError) as raised:
        compile_manifest(manifest([{"name": "a", "command": ["x"], "forEach": for_each}]))
    assert any(problem.field == field and text in problem.message for problem in raised.value.problems), str(
        raised.value
    )


def test_item_outside_a_for_each_node_and_approval_with_for_each_are_refused() -> None:
    with pytest.raises(SpecError) as raised:
        compile_manifest(
            manifest(
                [
                    {"name": "a", "command": ["echo", "{{ item.k }}", "{{ node.index }}"]},
                    {"name": "b", "approval": {}, "forEach": {"items": [1]}},
                ]
            )
        )
    fields = {(problem.field, problem.message.split(":")[0]) for problem in raised.value.problems}
    assert (
        "spec.nodes[0].command[1]",
        "'{{ item.k }}' is only known in a forEach node (add forEach to this node)",
    ) in {(problem.field, problem.message) for problem in raised.value.problems}
    assert any(field == "spec.nodes[0].command[2]" for field, _ in fields)
    assert any(field == "spec.nodes[1].forEach" for field, _ in fields)


def test_item_fields_render_from_object_items_and_stay_visible_when_missing() -> None:
    nodes = [{"name": "a", "forEach": {"items": [{"k": "v", "n": {"m": 2}}, "plain"]}, "command": ["{{ item.k }}"]}]
    nodes[0]["args"] = ["{{ item.n.m }}", "{{ item }}"]
    decision = plan(workflow(nodes), None, [], T0)
    assert [(launch.command, launch.args) for launch in decision.launches] == [
        (("v",), ("2", '{"k": "v", "n": {"m": 2}}')),
        (("{{ item.k }}",), ("{{ item.n.m }}", "plain")),
    ]


def test_when_is_evaluated_once_for_the_whole_node_and_reads_gathered_outputs() -> None:
    nodes = [
        {"name": "find", "command": ["find"]},
        {"name": "work", "dependsOn": ["find"], "when": "nodes.find.outputs.go", "forEach": {"items": [1, 2]}},
        {"name": "check", "dependsOn": ["work"], "when": "nodes.work.outputs.n.size() == 2", "command": ["c"]},
    ]
    nodes[1]["command"] = ["w"]
    run = Driver(workflow(nodes))
    run.step()
    assert units(run.step(ok("find", outputs={"go": True}))) == [("work", 0, 1), ("work", 1, 1)]
    assert units(run.step(item_ok("work", 0, n=1), item_ok("work", 1, n=2))) == [("check", None, 1)]
    skipped = Driver(workflow(nodes))
    skipped.step()
    assert units(skipped.step(ok("find", outputs={"go": False}))) == []
    work = skipped.current.nodes["work"]
    assert (work.phase, work.reason, work.items) == (NodePhase.SKIPPED, "ConditionFalse", None)


def test_finally_nodes_start_after_a_fan_out_ended_and_may_fan_out_themselves() -> None:
    nodes = [
        {"name": "work", "forEach": {"items": [1, 2, 3], "maxParallel": 1}, "command": ["w"]},
        {"name": "notify", "finally": True, "forEach": {"items": ["ops", "dev"]}, "command": ["tell", "{{ item }}"]},
    ]
    run = Driver(workflow(nodes))
    assert units(run.step()) == [("work", 0, 1)]
    notified = run.step(item_fail("work", 0))  # failFast: no more items of work, then the finally node's turn
    assert run.current.nodes["work"].items.states == "FXX"  # type: ignore[union-attr]
    assert [(launch.node, launch.item, launch.command) for launch in notified.launches] == [
        ("notify", 0, ("tell", "ops")),
        ("notify", 1, ("tell", "dev")),
    ]
    run.step(item_ok("notify", 0), item_ok("notify", 1))
    assert run.current.phase is WorkflowPhase.FAILED
    assert run.current.nodes["notify"].phase is NodePhase.SUCCEEDED


def test_the_deadline_stops_running_items_and_fails_the_node() -> None:
    nodes = [{"name": "work", "forEach": {"items": [1, 2, 3], "maxParallel": 2}, "command": ["w"]}]
    run = Driver(workflow(nodes, activeDeadlineSeconds=10))
    run.step()
    decision = run.step(after=11)
    assert sorted((stop.item, stop.reason) for stop in decision.stops) == [
        (0, "DeadlineExceeded"),
        (1, "DeadlineExceeded"),
    ]
    node = run.current.nodes["work"]
    assert (node.phase, node.items.states if node.items else None) == (NodePhase.FAILED, "FFX")
    assert run.current.phase is WorkflowPhase.FAILED
