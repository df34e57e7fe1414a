"""A workflow waiting at an approval node says so where `kubectl get workflows` shows it."""

from __future__ import annotations

from datetime import UTC, datetime

from dagwright.planner import plan
from dagwright.status import NodePhase
from dagwright.validation import compile_manifest

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def test_waiting_for_approval_is_the_workflow_message() -> None:
    workflow = compile_manifest(
        {
            "apiVersion": "dagwright.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "release"},
            "spec": {
                "nodes": [
                    {"name": "review", "approval": {}},
                    {"name": "ship", "command": ["true"], "dependsOn": ["review"]},
                ]
            },
        }
    )
    status = plan(workflow, None, [], NOW).status
    assert status.nodes["review"].phase is NodePhase.AWAITING_APPROVAL
    assert status.phase.value == "Running"
    assert status.message == "waiting for approval of node review"
