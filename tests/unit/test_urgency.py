"""Which node ends need a pass at once (dagwright.urgency): a deferred end must never be one the planner would
act on beyond recording it, whatever the DAG and the order in which running nodes succeed."""

from __future__ import annotations

from builders import T0, node, ok, running, workflow
from hypothesis import event, given
from hypothesis import strategies as st
from test_planner_properties import dags

from dagwright import urgency
from dagwright.planner import Observation, plan
from dagwright.status import NodePhase, WorkflowStatus
from dagwright.workflows import Workflow


def _started(wf: Workflow) -> tuple[WorkflowStatus, urgency.Waits | None]:
    decision = plan(wf, None, [], T0)
    return decision.status, urgency.waits(wf, decision.status, decision.waiting)


def test_an_end_is_due_when_it_completes_a_dependents_dependencies_or_is_the_last_one_running() -> None:
    wf = workflow([node("a"), node("b"), node("c"), node("x", "a", "b"), node("y", "b", "c")])
    _, waits = _started(wf)
    assert waits is not None
    assert waits.ended("a", 1) is False  # x still waits for b
    assert waits.ended("a", 1) is False  # the same end again (a later update of its pod)
    assert waits.ended("c", 1) is False  # y still waits for b
    assert waits.ended("b", 1) is True  # x and y can start


def test_the_last_running_node_and_anything_unknown_are_due() -> None:
    wf = workflow([node("a"), node("b")])  # nothing depends on them: the last end finishes the workflow
    _, waits = _started(wf)
    assert waits is not None
    assert waits.ended("a", 2) is True  # not the attempt that runs: a pass should look
    assert waits.ended("zz", 1) is True
    assert waits.ended("a", 1) is False
    assert waits.ended("b", 1) is True


def test_no_waits_when_room_is_short_or_a_for_each_node_runs() -> None:
    limited = workflow([node("a"), node("b"), node("c", "a")], parallelism=1)
    decision = plan(limited, None, [], T0)
    assert decision.waiting == 1
    assert urgency.waits(limited, decision.status, decision.waiting) is None
    fan = workflow([node("a", forEach={"items": [1, 2]}), node("b", "a")])
    assert _started(fan)[1] is None


@given(wf=dags(), data=st.data())
def test_ends_that_may_wait_change_nothing_but_their_own_nodes(wf: Workflow, data: st.DataObject) -> None:
    """Run a random workflow layer by layer; in each, running nodes succeed in a random order, and the ends
    before the first due one are given to the planner: it must only record them (no launch, no skip, no stop,
    the workflow's phase unchanged), as the operator's next pass would."""
    decision = plan(wf, None, [], T0)
    for _ in range(12):
        status = decision.status
        waits = urgency.waits(wf, status, decision.waiting)
        now_running = [name for name, n in status.nodes.items() if n.phase is NodePhase.RUNNING]
        if waits is None or not now_running:
            event("no waits" if now_running else "nothing running")
            break
        attempts = {name: status.nodes[name].attempts for name in now_running}
        quiet: list[str] = []
        for name in data.draw(st.permutations(now_running)):
            if waits.ended(name, attempts[name]):
                break
            quiet.append(name)
        event(f"{len(quiet)} of {len(now_running)} ends may wait")
        seen: list[Observation] = [ok(n, attempts[n]) if n in quiet else running(n, attempts[n]) for n in now_running]
        after = plan(wf, status, seen, T0)
        assert not after.launches and not after.stops
        assert after.status.phase == status.phase
        moved = {n for n in wf.graph.names if _phase(after.status, n) != _phase(status, n)}
        assert moved <= set(quiet), f"{moved - set(quiet)} changed on ends that were let wait"
        decision = plan(wf, status, [ok(n, attempts[n]) for n in now_running], T0)


def _phase(status: WorkflowStatus, name: str) -> NodePhase:
    return status.nodes[name].phase if name in status.nodes else NodePhase.PENDING
