"""Large workflows store their node map compressed, so the object stays under etcd's limit all run long."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from dagwright.k8s import statuswire
from dagwright.k8s.reconcile import status_patch
from dagwright.planner import AttemptState, Observation, plan
from dagwright.status import WorkflowStatus
from dagwright.validation import compile_manifest

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def _chains(count: int, length: int) -> object:
    nodes = [
        {
            "name": f"c{c}-n{i}",
            "image": "busybox",
            "command": ["true"],
            **({"dependsOn": [f"c{c}-n{i - 1}"]} if i else {}),
        }
        for c in range(count)
        for i in range(length)
    ]
    return compile_manifest(
        {
            "apiVersion": "dagwright.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "big", "uid": "u"},
            "spec": {"nodes": nodes},
        }
    )


def test_a_ten_thousand_node_status_stays_small_when_every_node_succeeded() -> None:
    workflow = _chains(1000, 10)
    stored: dict[str, object] = {}
    status: WorkflowStatus | None = None
    now = NOW
    for _ in range(11):  # one layer of 1,000 chains per pass, as the operator would see it
        previous = status
        running = [] if status is None else [n for n, s in status.nodes.items() if s.phase.value == "Running"]
        seen = [Observation(name, 1, AttemptState.SUCCEEDED, finished_at=now) for name in running]
        status = plan(workflow, status, seen, now).status  # type: ignore[arg-type]
        patch = status_patch(stored, previous, status)
        stored = {
            **{k: v for k, v in stored.items() if k not in patch or patch[k] is not None},
            **{k: v for k, v in patch.items() if v is not None},
        }
        now += timedelta(seconds=1)
    assert status is not None and status.phase.value == "Succeeded"
    size = len(json.dumps(stored))
    assert size < 300 * 1024, size  # plain, it would be ~2 MB
    assert "nodes" not in stored or not stored["nodes"]
    restored = WorkflowStatus.model_validate(statuswire.expanded(stored))  # type: ignore[arg-type]
    assert restored.nodes == status.nodes


def test_small_workflows_keep_the_plain_readable_node_map() -> None:
    workflow = _chains(2, 3)
    status = plan(workflow, None, [], NOW).status  # type: ignore[arg-type]
    patch = status_patch({}, None, status)
    assert "compressedNodes" not in patch and set(patch["nodes"]) == {f"c{c}-n{i}" for c in range(2) for i in range(3)}
