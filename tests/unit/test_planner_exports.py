"""What backends take from the planner instead of restating it: `recorded`, `answered`/`approvals`,
`free_slots`, `Decision.running`/`waiting`/`held_back`, and event reasons as an enum."""

from __future__ import annotations

from builders import Driver, fail, node, ok, running, workflow

from dagwright.planner import AttemptState, EventReason, answered, approvals, free_slots, recorded
from dagwright.status import NodePhase, NodeStatus


def test_recorded_is_rule_1() -> None:
    """An observation the planner would ignore is `recorded`; one that would change the status is not."""
    run = Driver(workflow([node("a", retry={"limit": 2, "backoff": {"initialSeconds": 10}})]))
    run.step()
    current = run.current.nodes["a"]
    assert not recorded(current, 1)  # running: its end is news
    assert not recorded(current, 2)  # a newer attempt is adopted
    assert not recorded(None, 1)
    run.step(fail("a", 1))
    current = run.current.nodes["a"]
    assert current.phase is NodePhase.RETRYING and recorded(current, 1)
    before = run.current
    assert run.step(fail("a", 1)).status.nodes["a"] is before.nodes["a"]  # and indeed ignored
    assert recorded(NodeStatus(phase=NodePhase.SUCCEEDED, attempts=3), 2)


def test_approvals_become_attempt_1_of_the_approval_node() -> None:
    assert answered("gate", True).state is AttemptState.SUCCEEDED
    rejected = answered("gate", False)
    assert (rejected.state, rejected.reason, rejected.message) == (AttemptState.FAILED, "Rejected", "rejected")
    wf = workflow(
        [{"name": "gate", "approval": {}}, node("after", "gate")],
        approvals={"gate": {"approved": False, "message": "not today"}},
    )
    (seen,) = approvals(wf)
    assert (seen.node, seen.attempt, seen.reason, seen.message) == ("gate", 1, "Rejected", "not today")
    run = Driver(wf)
    run.step()
    decision = run.step(*approvals(wf))
    assert run.phases() == {"gate": "Failed", "after": "Skipped"}
    assert EventReason.NODE_FAILED in [event.reason for event in decision.events]


def test_decision_counts_what_capacity_needs() -> None:
    wf = workflow([node(f"n{i}") for i in range(5)], parallelism=3)
    run = Driver(wf)
    decision = run.step(capacity=1)
    assert (decision.running, decision.waiting, decision.held_back) == (1, 4, 2)  # parallelism allowed 2 of 4
    decision = run.step(running("n0"), capacity=5)
    assert (decision.running, decision.waiting, decision.held_back) == (3, 2, 0)  # parallelism holds them now
    assert free_slots(wf, decision.running) == 0
    decision = run.step(ok("n0"), ok("n1"), ok("n2"))
    assert (decision.running, decision.waiting, decision.held_back) == (2, 0, 0)


def test_event_reasons_are_an_enum_kubectl_shows_as_text() -> None:
    run = Driver(workflow([node("a")]))
    run.step()
    (event,) = run.step(ok("a")).events
    assert event.reason is EventReason.SUCCEEDED and event.reason == "Succeeded"
