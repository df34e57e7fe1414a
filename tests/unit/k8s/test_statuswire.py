"""Large workflows store their node map compressed, so the object stays under etcd's limit all run long."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagwright.k8s import statuswire
from dagwright.k8s.reconcile import status_patch
from dagwright.planner import AttemptState, Observation, plan
from dagwright.status import NodePhase, NodeStatus, WorkflowStatus, to_wire
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


# -- the operator's NodeMap: node JSON kept by identity, the map compressed in runs that keep their bytes

_PHASES = [NodePhase.PENDING, NodePhase.RUNNING, NodePhase.SUCCEEDED, NodePhase.FAILED]
_edits = st.lists(
    st.tuples(
        st.sampled_from(["change", "add", "remove", "same", "rebuild"]),
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from(_PHASES),
        st.text(max_size=6),  # messages, non-ASCII included
    ),
    max_size=25,
)


@given(start=st.integers(min_value=0, max_value=40), edits=_edits)
def test_the_node_map_always_inflates_to_the_nodes_it_was_given(
    start: int, edits: list[tuple[str, int, NodePhase, str]]
) -> None:
    """Whatever changed between passes (a node, several, nodes added or removed, nothing), the stored string
    is one gzip stream of exactly the nodes' wire form, even with runs of unchanged nodes reused."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(statuswire, "CHUNK_NODES", 3)  # many runs from few nodes
        _check_edits(start, edits)


def _check_edits(start: int, edits: list[tuple[str, int, NodePhase, str]]) -> None:
    node_map = statuswire.NodeMap()
    nodes = {f"n{i}": NodeStatus() for i in range(start)}
    for action, number, phase, message in edits:
        nodes = dict(nodes)
        names = sorted(nodes)
        if action == "change" and names:
            name = names[number % len(names)]
            nodes[name] = nodes[name].model_copy(update={"phase": phase, "message": message or None, "attempts": 1})
        elif action == "add":
            nodes[f"m{number}"] = NodeStatus(phase=phase, started_at=NOW + timedelta(microseconds=number))
        elif action == "remove" and names:
            del nodes[names[number % len(names)]]
        elif action == "rebuild":  # a status parsed again: equal nodes, new objects
            nodes = {name: NodeStatus.model_validate(node.model_dump()) for name, node in nodes.items()}
        encoded = node_map.encode(nodes)
        expected = {
            name: node.model_dump(mode="json", by_alias=True, exclude_none=True) for name, node in nodes.items()
        }
        assert statuswire.decode(encoded) == expected
        assert json.loads(zlib.decompress(base64.b64decode(encoded), wbits=31)) == expected  # zlib's own gzip reader


def test_an_unchanged_map_gives_the_same_string_and_a_changed_run_changes_only_its_bytes() -> None:
    node_map = statuswire.NodeMap()
    nodes = {f"n{i:05d}": NodeStatus(phase=NodePhase.SUCCEEDED, attempts=1, started_at=NOW) for i in range(2000)}
    first = node_map.encode(nodes)
    assert node_map.encode(dict(nodes)) is first  # same node objects: not serialized or compressed again
    nodes["n01234"] = nodes["n01234"].model_copy(update={"phase": NodePhase.FAILED, "message": "exit 1"})
    second = node_map.encode(nodes)
    assert statuswire.decode(second)["n01234"] == {
        "phase": "Failed",
        "attempts": 1,
        "startedAt": "2026-11-26T00:00:00Z",
        "message": "exit 1",
    }
    assert len(second) < 1.2 * len(statuswire.encode(statuswire.decode(second)))  # runs cost little size


def test_a_pass_that_changes_one_node_compresses_two_runs_again_not_the_map(monkeypatch: pytest.MonkeyPatch) -> None:
    compressed: list[int] = []
    deflated = statuswire._deflated

    def counted(raw: bytes, window: bytes) -> bytes:
        compressed.append(len(raw))
        return deflated(raw, window)

    monkeypatch.setattr(statuswire, "_deflated", counted)
    node_map = statuswire.NodeMap()
    nodes = {f"n{i:05d}": NodeStatus(phase=NodePhase.SUCCEEDED, attempts=1, started_at=NOW) for i in range(5000)}
    node_map.encode(nodes)
    assert len(compressed) > 5000 // statuswire.CHUNK_NODES
    compressed.clear()
    nodes = {**nodes, "n02500": nodes["n02500"].model_copy(update={"message": "retried"})}
    encoded = node_map.encode(nodes)
    assert len(compressed) == 3  # the map's opening brace, the node's run and the run after it
    assert statuswire.decode(encoded)["n02500"]["message"] == "retried"


def test_a_stored_map_inflates_with_gunzip_as_a_kubectl_user_would() -> None:
    """`kubectl get workflow W -o jsonpath='{.status.compressedNodes}' | base64 -d | gunzip`"""
    gunzip = shutil.which("gunzip")
    if gunzip is None:
        pytest.skip("no gunzip on this machine")
    nodes = {f"n{i}": NodeStatus(phase=NodePhase.RUNNING, attempts=1, message="é" * (i % 3)) for i in range(700)}
    raw = base64.b64decode(statuswire.NodeMap().encode(nodes))
    out = subprocess.run([gunzip, "-c"], input=raw, capture_output=True, check=True).stdout
    assert json.loads(out)["n2"] == {"phase": "Running", "attempts": 1, "message": "éé"}


def test_a_map_stored_by_the_previous_operator_version_is_read_and_replaced_on_the_next_change() -> None:
    """Objects written before runs were compressed apart (one gzip.compress of the sorted JSON) stay readable;
    the next status write stores the new form, and a pass that changes no node then sends no node map."""
    workflow = _chains(600, 2)
    status = plan(workflow, None, [], NOW).status  # type: ignore[arg-type]
    old = {name: node.model_dump(mode="json", by_alias=True, exclude_none=True) for name, node in status.nodes.items()}
    stored = {key: value for key, value in to_wire(status).items() if key != "nodes"}
    stored["compressedNodes"] = statuswire.encode(old)
    read = WorkflowStatus.model_validate(statuswire.expanded(stored))
    assert read.nodes == status.nodes
    node_map = statuswire.NodeMap()
    seen = [Observation("c0-n0", 1, AttemptState.SUCCEEDED, finished_at=NOW)]
    new = plan(workflow, read, seen, NOW).status  # type: ignore[arg-type]
    patch = status_patch(stored, read, new, node_map)
    assert statuswire.decode(patch["compressedNodes"])["c0-n0"]["phase"] == "Succeeded"
    stored = {**stored, **patch}
    later = new.model_copy(update={"message": "a summary field changed, no node did"})
    assert status_patch(stored, new, later, node_map) == {"message": later.message}
