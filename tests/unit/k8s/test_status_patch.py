"""The reconciler's status patch, built from the nodes the planner changed, equals the full-status diff."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from dagwright.k8s.patches import merge_patch
from dagwright.k8s.reconcile import status_patch
from dagwright.status import NodePhase, NodeStatus, WorkflowPhase, WorkflowStatus, to_wire

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def apply(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply(result.get(key), value)
    return result


def status(nodes: dict[str, NodeStatus], **fields: Any) -> WorkflowStatus:
    return WorkflowStatus(nodes=nodes, **fields)


def test_only_changed_nodes_are_sent_and_the_result_matches_the_full_diff() -> None:
    rng = random.Random(7)
    nodes = {f"n{i}": NodeStatus() for i in range(50)}
    previous = status(nodes, phase=WorkflowPhase.RUNNING, progress="0/50", started_at=T0)
    stored = to_wire(previous)
    for step in range(30):
        changed = dict(previous.nodes)
        for name in rng.sample(sorted(changed), 3):
            node = changed[name]
            if node.phase is NodePhase.PENDING:
                update = {"phase": NodePhase.RUNNING, "attempts": node.attempts + 1, "started_at": T0}
            elif node.phase is NodePhase.RUNNING:
                update = {"phase": NodePhase.RETRYING, "message": "boom", "exit_code": 3, "finished_at": T0}
            else:  # a retry clears the previous attempt's fields, which the patch must null out
                update = {"phase": NodePhase.RUNNING, "attempts": node.attempts + 1, "message": None, "exit_code": None}
            changed[name] = node.model_copy(update=update)
        if step % 7 == 3:
            changed.pop(sorted(changed)[0])  # a node removed from the spec
        new = status(changed, phase=WorkflowPhase.RUNNING, progress=f"{step}/50", started_at=T0 + timedelta(seconds=1))
        patch = status_patch(copy.deepcopy(stored), previous, new)
        full = merge_patch(stored, to_wire(new))
        assert apply(stored, patch) == apply(stored, full) == to_wire(new)
        assert len(patch.get("nodes", {})) <= 4
        stored, previous = apply(stored, patch), new


def test_unchanged_nodes_send_nothing_and_no_previous_means_a_full_diff() -> None:
    previous = status({"a": NodeStatus(), "b": NodeStatus(phase=NodePhase.SUCCEEDED, attempts=1)})
    stored = to_wire(previous)
    same = status(previous.nodes)
    assert status_patch(stored, previous, same) == {}
    moved = status({**previous.nodes, "a": NodeStatus(phase=NodePhase.RUNNING, attempts=1)}, progress="1/2")
    assert status_patch(stored, None, moved) == merge_patch(stored, to_wire(moved))
    assert status_patch(stored, previous, moved) == merge_patch(stored, to_wire(moved))


def test_a_node_leaves_out_what_its_other_fields_already_say_and_reads_back_the_same() -> None:
    """Each status field costs the API server CPU on every patch (bench/apiserver_status_patch.py): a first
    attempt's start is the node's start, and a budget from attempt 1 is the default, so neither is written;
    a second attempt's start and a retried workflow's budget are."""
    first = NodeStatus(
        phase=NodePhase.SUCCEEDED, attempts=1, started_at=T0, attempt_started_at=T0, finished_at=T0, exit_code=0
    )
    second = first.model_copy(update={"attempts": 2, "attempt_started_at": T0 + timedelta(seconds=5)})
    retried = NodeStatus(attempts=2, retry_budget_from=3, started_at=T0, attempt_started_at=T0 + timedelta(seconds=5))
    wire = to_wire(status({"first": first, "second": second, "retried": retried}))["nodes"]
    assert wire["first"] == {
        "phase": "Succeeded",
        "attempts": 1,
        "startedAt": "2026-11-26T00:00:00Z",
        "finishedAt": "2026-11-26T00:00:00Z",
        "exitCode": 0,
    }
    assert wire["second"]["attemptStartedAt"] == "2026-11-26T00:00:05Z" and "retryBudgetFrom" not in wire["second"]
    assert wire["retried"]["retryBudgetFrom"] == 3 and wire["retried"]["phase"] == "Pending"
    back = WorkflowStatus.model_validate(to_wire(status({"first": first, "second": second, "retried": retried})))
    assert back.nodes == {"first": first, "second": second, "retried": retried}
    assert NodeStatus.model_validate({"phase": "Pending"}).attempt_started_at is None  # never launched: none
