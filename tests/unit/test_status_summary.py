"""What the workflow's summary fields tell a person: `percent` beyond "N/M", and who is waiting for approval."""

from __future__ import annotations

from builders import T0, node, ok, running, workflow

from dagwright.planner import plan
from dagwright.status import NodePhase


def test_percent_counts_succeeded_nodes_and_running_nodes_progress() -> None:
    wf = workflow([node(n) for n in ("a", "b", "c", "d")])
    status = plan(wf, None, [], T0).status
    assert status.percent == 0
    seen = [ok("a"), running("b", progress="50/100"), running("c", progress="25"), running("d", progress="soon")]
    status = plan(wf, status, seen, T0).status
    assert (status.progress, status.percent) == ("1/4", 43)  # (1 + 0.5 + 0.25) / 4
    assert status.nodes["b"].progress == "50/100"


def test_waiting_for_approval_is_the_workflow_message() -> None:
    wf = workflow([{"name": "review", "approval": {}}, node("ship", "review")])
    status = plan(wf, None, [], T0).status
    assert status.nodes["review"].phase is NodePhase.AWAITING_APPROVAL
    assert (status.phase.value, status.message) == ("Running", "waiting for approval of node review")
