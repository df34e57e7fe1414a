"""The operator dying, being replaced, and sharing limited capacity between Workflows.

Why: an operator is killed without warning in real clusters (node loss, OOM, rollout). A restarted or newly
elected operator must carry on from what the API server holds, never running an attempt twice: with
deterministic Job names a duplicate would show as a second Job (a new uid) for the same (node, attempt),
which the recorder would see. Capacity (`--max-running-nodes`) and `spec.priority` are judged from Jobs too.
"""

from __future__ import annotations

import signal
import time

import pytest

from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import (
    Operators,
    Recorder,
    apply,
    leader_identity,
    lease_holder,
    node,
    node_status,
    retry,
    wait_phase,
    workflow,
)

pytestmark = pytest.mark.e2e


def layered(layers: int, width: int, duration: str) -> list[dict[str, object]]:
    """`layers` rows of `width` nodes; every node depends on the whole row above it."""
    nodes: list[dict[str, object]] = []
    above: list[str] = []
    for layer in range(layers):
        row = [f"n{layer}-{i}" for i in range(width)]
        nodes += [node(name, *above, duration=duration) for name in row]
        above = row
    return nodes


@pytest.mark.slow
def test_operator_killed_mid_run_and_restarted_runs_no_attempt_twice(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    nodes = layered(4, 6, "700ms")
    apply(kube, namespace, workflow("survivor", nodes))
    first = operators.start()
    wait_for("the first Jobs", lambda: len(recorder.jobs_of("survivor")) >= 3, timeout=60)

    first.kill()
    after_first_kill = len(recorder.jobs_of("survivor"))
    second = operators.start()
    wait_for("more Jobs from the restarted operator", lambda: len(recorder.jobs_of("survivor")) >= 14, timeout=60)
    second.kill()
    operators.start()

    status = wait_phase(kube, namespace, "survivor", "Succeeded", "Failed", timeout=120)
    assert status["phase"] == "Succeeded", status["message"]
    assert status["progress"] == "24/24"
    recorder.assert_one_job_per_attempt("survivor")
    records = recorder.jobs_of("survivor")
    assert sorted(r.node for r in records) == sorted(str(n["name"]) for n in nodes)
    assert {r.attempt for r in records} == {1}, "a node was started again after the restart"
    assert all(n["attempts"] == 1 for n in status["nodes"].values())
    assert after_first_kill < len(records)


@pytest.mark.slow
def test_standby_replica_takes_over_when_the_leader_is_killed(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    leader, standby, holder = operators.leader_and_standby()
    nodes = [node(f"step-{i}", *([f"step-{i - 1}"] if i else []), duration="1s") for i in range(6)]
    apply(kube, namespace, workflow("ha", nodes))
    wait_for("two steps launched", lambda: len(recorder.jobs_of("ha")) >= 2, timeout=60)

    assert "launched" not in standby.log(), "the standby acted while the leader held the lease"
    leader.kill()
    killed_at = time.monotonic()

    new_holder = wait_for(
        "the standby to take the lease",
        lambda: (h := lease_holder(kube, namespace)) not in (None, holder) and h,
        timeout=40,
        interval=0.2,
    )
    took_over = time.monotonic() - killed_at
    assert took_over <= 20, f"takeover took {took_over:.1f}s"
    wait_for("the standby to say it leads", lambda: leader_identity(standby) == new_holder, timeout=10)
    status = wait_phase(kube, namespace, "ha", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded"
    recorder.assert_one_job_per_attempt("ha")
    assert {(r.node, r.attempt) for r in recorder.jobs_of("ha")} == {(f"step-{i}", 1) for i in range(6)}
    assert standby.alive()


def test_max_running_nodes_caps_jobs_and_does_not_stall(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    operators.start(max_running_nodes=1)
    apply(kube, namespace, workflow("one-by-one", [node(f"n{i}", duration="300ms") for i in range(4)]))

    status = wait_phase(kube, namespace, "one-by-one", "Succeeded", "Failed", timeout=60)

    assert status["phase"] == "Succeeded"
    assert recorder.max_running() == 1
    assert len(recorder.jobs_of("one-by-one")) == 4


@pytest.mark.slow
def test_higher_priority_workflow_gets_capacity_first(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    operators.start(max_running_nodes=2)
    # low's nodes end at different times, so capacity frees one slot at a time.
    low_nodes = [node(f"low-{i}", duration=f"{1500 + 300 * i}ms") for i in range(6)]
    apply(kube, namespace, workflow("low", low_nodes, priority=0))
    wait_for("low to fill the capacity", lambda: len(recorder.jobs_of("low")) == 2, timeout=60)
    apply(kube, namespace, workflow("high", [node(f"high-{i}", duration="1s") for i in range(2)], priority=10))

    for name in ("high", "low"):
        status = wait_phase(kube, namespace, name, "Succeeded", "Failed", timeout=90)
        assert status["phase"] == "Succeeded"

    assert recorder.max_running() == 2, "more Jobs ran at once than --max-running-nodes"
    low, high = recorder.jobs_of("low"), recorder.jobs_of("high")
    assert len(low) == 6 and len(high) == 2
    # Once low's first two finish, high (created later, higher priority) gets the freed room before low's third.
    assert max(r.added_seq for r in high) < low[2].added_seq, [(r.node, r.added_seq) for r in low + high]


def test_a_restarted_operator_keeps_a_retrying_nodes_backoff(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    flaky = node("flaky", fail_attempts=1, retry=retry(1, initial=6))
    apply(kube, namespace, workflow("patient", [flaky]))
    first = operators.start()
    wait_for(
        "the node to be retrying",
        lambda: node_status(kube, namespace, "patient", "flaky").get("phase") == "Retrying",
        timeout=30,
    )

    first.kill()
    operators.start()

    status = wait_phase(kube, namespace, "patient", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded"
    attempts = recorder.jobs_of("patient", "flaky")
    assert [r.attempt for r in attempts] == [1, 2]
    assert attempts[0].finish_time is not None
    gap = (attempts[1].created - attempts[0].finish_time).total_seconds()
    assert 6 <= gap <= 12, f"attempt 2 created {gap}s after attempt 1 failed; the backoff is 6 s"


def test_a_leader_shutting_down_hands_over_at_once(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    leader, standby, _ = operators.leader_and_standby()

    leader.stop()  # SIGTERM, as in a rolling update: the Lease is released on the way out
    stopped_at = time.monotonic()

    wait_for("the standby to take the lease", lambda: leader_identity(standby) is not None, timeout=15)
    assert time.monotonic() - stopped_at < 10, "the standby waited for the Lease to expire"
    apply(kube, namespace, workflow("handed-over", [node("a"), node("b", "a")]))
    status = wait_phase(kube, namespace, "handed-over", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded"


@pytest.mark.slow
def test_a_frozen_leader_that_wakes_up_after_a_takeover_does_not_act(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    leader, standby, _ = operators.leader_and_standby()
    nodes = [node(f"step-{i}", *([f"step-{i - 1}"] if i else []), duration="1500ms") for i in range(8)]
    apply(kube, namespace, workflow("split", nodes))
    wait_for("a step launched", lambda: recorder.jobs_of("split"), timeout=60)
    # The Job exists before the leader logs it; freezing the leader in between would leave that line to be
    # written after it wakes, which reads as an action it did not take then.
    wait_for("the leader to log its launch", lambda: "launched" in leader.log(), timeout=30)

    leader.proc.send_signal(signal.SIGSTOP)  # a long GC pause, a frozen VM: the Lease is not renewed
    try:
        wait_for("the standby to take over", lambda: leader_identity(standby) is not None, timeout=40)
        wait_for("the standby to launch", lambda: "launched" in standby.log(), timeout=30)
    finally:
        leader.proc.send_signal(signal.SIGCONT)
    woke_at = len(leader.log())

    status = wait_phase(kube, namespace, "split", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded"
    recorder.assert_one_job_per_attempt("split")
    assert {(r.node, r.attempt) for r in recorder.jobs_of("split")} == {(f"step-{i}", 1) for i in range(8)}
    assert "launched" not in leader.log()[woke_at:], "the old leader acted after it had lost the Lease"
    assert lease_holder(kube, namespace) == leader_identity(standby)
