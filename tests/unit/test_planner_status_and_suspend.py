"""Status a person reads (`percent`, who awaits approval), suspended time vs timeouts, approval nodes and defaults."""

from __future__ import annotations

from builders import T0, Driver, node, ok, running, workflow

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


def test_time_suspended_does_not_count_against_timeout_seconds() -> None:
    driver = Driver(workflow([node("slow", timeoutSeconds=60)]))
    driver.step()
    driver.respec(paused=True, pause_mode="Suspend")
    assert driver.step(after=30).suspend
    driver.step(after=600)  # suspended far longer than the timeout: nothing times out
    assert driver.phase("slow") is NodePhase.RUNNING
    driver.respec(paused=False)
    resumed = driver.step(after=1)
    assert not resumed.suspend and resumed.stops == []
    assert driver.step(after=59).stops == []  # the attempt's clock restarted on resume
    late = driver.step(after=2)
    assert [(stop.node, stop.reason) for stop in late.stops] == [("slow", "Timeout")]


def test_an_approval_node_ignores_the_default_image() -> None:
    wf = workflow([{"name": "review", "approval": {}}, node("ship", "review")], defaults={"image": "busybox"})
    review = next(n for n in wf.nodes if n.name == "review")
    assert review.image is None  # else the validation of approval nodes would refuse the workflow
