"""`status.percent`: finer than "succeeded/total", it counts the progress running nodes report."""

from __future__ import annotations

from datetime import UTC, datetime

from dagwright.planner import AttemptState, Observation, plan
from dagwright.validation import compile_manifest

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def test_percent_counts_succeeded_nodes_and_running_nodes_progress() -> None:
    workflow = compile_manifest(
        {
            "apiVersion": "dagwright.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "p"},
            "spec": {"nodes": [{"name": n, "command": ["true"]} for n in ("a", "b", "c", "d")]},
        }
    )
    status = plan(workflow, None, [], NOW).status
    assert status.percent == 0
    seen = [
        Observation("a", 1, AttemptState.SUCCEEDED),
        Observation("b", 1, AttemptState.RUNNING, progress="50/100"),
        Observation("c", 1, AttemptState.RUNNING, progress="25"),
        Observation("d", 1, AttemptState.RUNNING, progress="not a number"),
    ]
    status = plan(workflow, status, seen, NOW).status
    assert status.progress == "1/4"
    assert status.percent == 43  # (1 + 0.5 + 0.25) / 4
    assert status.nodes["b"].progress == "50/100"
