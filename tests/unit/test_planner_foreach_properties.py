"""Properties of forEach scheduling (planner rule 9) over random workflows and random outcomes, with hypothesis.

A simulated backend runs random workflows mixing plain and forEach nodes (0-6 items, with or without
`maxParallel`, retries, `parallelism`, failFast on or off): random subsets of running attempts end (success
with outputs, failure, lost Jobs), time jumps, the user stops the workflow. In the operator's style every
attempt seen is reported on every call and some status writes are lost (the next call starts from the older
status and must adopt, not relaunch). After every call: no item attempt launches twice, `maxParallel` and
`parallelism` hold, nothing launches once the workflow is stopped; every run finishes, and a Succeeded forEach
node's outputs are its items' outputs gathered in item order.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from builders import T0, manifest
from hypothesis import event, given
from hypothesis import strategies as st

from dagwright.planner import AttemptState, Observation, plan
from dagwright.status import NodePhase, WorkflowStatus, to_wire
from dagwright.validation import compile_manifest, compile_spec
from dagwright.workflows import Workflow

Unit = tuple[str, int | None, int]  # (node, item, attempt)


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    count = draw(st.integers(1, 5))
    nodes: list[dict[str, Any]] = []
    for i in range(count):
        deps = sorted(draw(st.sets(st.integers(0, i - 1), max_size=2))) if i else []
        body: dict[str, Any] = {"name": f"n{i}", "dependsOn": [f"n{d}" for d in deps], "command": ["true"]}
        if draw(st.booleans()):
            for_each: dict[str, Any] = {"items": list(range(draw(st.integers(0, 6))))}
            if draw(st.booleans()):
                for_each["maxParallel"] = draw(st.integers(1, 3))
            body["forEach"] = for_each
            body["args"] = ["{{ item }}", "{{ node.index }}"]
        if draw(st.booleans()):
            body["retry"] = {"limit": draw(st.integers(0, 2)), "backoff": {"initialSeconds": 1}}
        nodes.append(body)
    spec: dict[str, Any] = {"failFast": draw(st.booleans())}
    parallelism = draw(st.none() | st.integers(1, 4))
    if parallelism is not None:
        spec["parallelism"] = parallelism
    return compile_manifest(manifest(nodes, **spec))


def _respec(workflow: Workflow, **update: Any) -> Workflow:
    spec = workflow.spec.model_copy(update=update)
    return compile_spec(spec, name=workflow.name, namespace=workflow.namespace, uid=workflow.uid, generation=2)


def _stored(status: WorkflowStatus) -> WorkflowStatus:
    """The status as the operator writes it and reads it back."""
    return WorkflowStatus.model_validate(json.loads(json.dumps(to_wire(status))))


@given(workflow=workflows(), level=st.booleans(), data=st.data())
def test_items_never_launch_twice_within_their_limits_and_runs_finish(
    workflow: Workflow, level: bool, data: st.DataObject
) -> None:
    draw = data.draw
    status: WorkflowStatus | None = None
    now = T0
    running: dict[Unit, None] = {}
    ended: dict[Unit, Observation] = {}  # the operator style reports these on every call
    launched: set[Unit] = set()
    item_outputs: dict[tuple[str, int], Any] = {}
    stop_at = draw(st.none() | st.integers(0, 15))
    for step in range(200):
        if step == stop_at:
            workflow = _respec(workflow, stopped=True)
        drain = step > 30
        now += timedelta(seconds=400 if drain else draw(st.sampled_from([0, 1, 10])))
        fresh: list[Observation] = []
        for unit in sorted(running, key=str):
            if drain or draw(st.booleans()):
                del running[unit]
                fresh.append(_outcome(draw, unit, drain))
        seen = [*ended.values(), *fresh] if level else fresh
        seen += [Observation(node, attempt, AttemptState.RUNNING, item=item) for node, item, attempt in running]
        decision = plan(workflow, status, seen, now)
        for outcome in fresh:
            ended[(outcome.node, outcome.item, outcome.attempt)] = outcome
            if outcome.state is AttemptState.SUCCEEDED and outcome.item is not None:
                item_outputs[(outcome.node, outcome.item)] = outcome.outputs
        for stop in decision.stops:
            running.pop((stop.node, stop.item, stop.attempt), None)
        if workflow.spec.stopped:
            assert not decision.launches, "launched after the workflow was stopped"
        for launch in decision.launches:
            unit = (launch.node, launch.item, launch.attempt)
            assert unit not in launched, f"{unit} launched twice"
            assert unit not in ended, f"{unit} launched again after it ended"
            launched.add(unit)
            running[unit] = None
            if launch.item is not None:
                assert launch.args == (str(launch.item), str(launch.item))  # items are 0..n-1
        _check_limits(workflow, running)
        lost_write = level and not decision.status.phase.finished and draw(st.integers(0, 4)) == 2
        if lost_write:
            event("a status write was lost")
        else:
            status = _stored(decision.status) if level else decision.status
        if status is not None and status.phase.finished and not running:
            break
    else:
        raise AssertionError(f"did not finish: {status}")
    assert status is not None
    for spec in workflow.nodes:
        node = status.nodes[spec.name]
        assert node.phase.finished
        if node.items is not None:  # "succeeded/total", whatever became of the others
            assert node.progress == f"{node.items.states.count('S')}/{node.items.total}"
        if spec.for_each is None or node.phase is not NodePhase.SUCCEEDED:
            continue
        assert spec.for_each.items is not None
        total = len(spec.for_each.items)
        assert node.items is not None and node.items.states == "S" * total
        assert node.progress == f"{total}/{total}"
        expected = [item_outputs.get((spec.name, k)) for k in range(total)]
        keys = dict.fromkeys(key for each in expected if each for key in each)
        assert node.outputs == {key: [each.get(key) if each else None for each in expected] for key in keys}
        event(f"a forEach node of {min(total, 3)}+ items succeeded")
    event(f"workflow {status.phase.value}")


def _check_limits(workflow: Workflow, running: dict[Unit, None]) -> None:
    if workflow.spec.parallelism is not None:
        assert len(running) <= workflow.spec.parallelism, "more than parallelism running"
    for spec in workflow.nodes:
        if spec.for_each is not None and spec.for_each.max_parallel is not None:
            items = sum(1 for node, _, _ in running if node == spec.name)
            assert items <= spec.for_each.max_parallel, f"more than maxParallel items of {spec.name} running"


def _outcome(draw: st.DrawFn, unit: Unit, drain: bool) -> Observation:
    node, item, attempt = unit
    kind = draw(st.sampled_from(["ok", "ok", "fail", "lost"] if not drain else ["ok", "ok", "ok", "fail"]))
    if kind == "ok":
        outputs = draw(st.none() | st.just({"n": item}) | st.just({"other": True}))
        return Observation(node, attempt, AttemptState.SUCCEEDED, exit_code=0, outputs=outputs, item=item)
    if kind == "lost":
        return Observation(node, attempt, AttemptState.LOST, item=item)
    return Observation(node, attempt, AttemptState.FAILED, exit_code=1, item=item)
