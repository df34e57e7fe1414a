"""What the browser is sent of a workflow: only changed node entries per event, list rows, and the ETA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagwright import eta
from dagwright.ui import views

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _body(nodes: dict[str, dict[str, object]], total: int, phase: str = "Running") -> dict[str, object]:
    spec = {"nodes": [{"name": f"n{i}"} for i in range(total)]}
    return {"metadata": {"name": "w", "namespace": "ns"}, "spec": spec, "status": {"phase": phase, "nodes": nodes}}


def test_an_update_holds_only_the_nodes_that_changed() -> None:
    before = views.compact_nodes(_body({f"n{i}": {"phase": "Running", "attempts": 1} for i in range(1000)}, 1000))
    changed = {f"n{i}": {"phase": "Succeeded", "attempts": 1, "message": "x" * 400} for i in range(3)}
    after_body = _body({**{f"n{i}": {"phase": "Running", "attempts": 1} for i in range(1000)}, **changed}, 1000)
    delta = views.changes(before, views.compact_nodes(after_body))
    assert sorted(delta) == ["n0", "n1", "n2"]
    assert delta["n0"] == {"phase": "Succeeded", "attempts": 1}  # long fields wait for the panel
    assert views.changes(before, {k: v for k, v in before.items() if k != "n5"}) == {"n5": {}}


def test_the_graph_key_changes_with_the_shape_not_with_a_pause() -> None:
    body = _body({}, 3)
    paused = {**body, "spec": {**body["spec"], "paused": True}}  # type: ignore[dict-item]
    grown = _body({}, 4)
    assert views.spec_key(body) == views.spec_key(paused) != views.spec_key(grown)


def test_a_list_row_counts_succeeded_nodes_of_the_spec() -> None:
    row = views.summary(_body({"n0": {"phase": "Succeeded"}, "n1": {"phase": "Failed"}}, 4, "Failed"), NOW)
    assert (row["done"], row["total"], row["phase"], row["eta"]) == (1, 4, "Failed", None)


def test_eta_from_finished_nodes_and_the_parallelism_seen() -> None:
    # Four 10 s nodes ran two at a time over 20 s: six left at that pace take 30 s.
    finished = [
        {"phase": "Succeeded", "startedAt": _at(start), "finishedAt": _at(start + 10)} for start in (0, 0, 10, 10)
    ]
    pending = [{"phase": "Pending"}] * 6
    assert eta.estimate([*finished, *pending], 10, NOW + timedelta(seconds=20)) == 30.0
    # A node running for 4 s of its expected 10 counts for 6 s of work.
    running = [{"phase": "Running", "startedAt": _at(16)}]
    assert eta.estimate([*finished, *running, *pending[:5]], 10, NOW + timedelta(seconds=20)) == 28.0


def test_no_eta_before_a_node_finished_or_after_all_did() -> None:
    assert eta.estimate([{"phase": "Running", "startedAt": _at(0)}], 2, NOW) is None
    done = {"phase": "Succeeded", "startedAt": _at(0), "finishedAt": _at(5)}
    assert eta.estimate([done, done], 2, NOW) is None
    assert eta.text(None) == "" and eta.text(75) == "~1m15s left" and eta.text(4000) == "~1h06m left"


def test_dagwright_get_shows_the_eta_of_a_running_workflow() -> None:
    from dagwright.cli import cluster

    started = datetime.now(UTC) - timedelta(seconds=20)
    done = {"phase": "Succeeded", "startedAt": started.isoformat(), "finishedAt": (started + timedelta(10)).isoformat()}
    body = _body({"n0": done, "n1": {"phase": "Running", "startedAt": started.isoformat()}}, 3)
    first = next(cluster._describe(body))
    assert first.startswith("w: Running") and first.endswith(" left")
    body["status"]["phase"] = "Failed"  # type: ignore[index]
    assert not next(cluster._describe(body)).endswith("left")


def test_the_graph_key_is_remembered_per_spec_version_and_never_stale() -> None:
    first = {**_body({}, 3), "metadata": {"name": "w", "uid": "u1", "generation": 1}}
    grown = {**_body({}, 4), "metadata": {"name": "w", "uid": "u1", "generation": 2}}
    other = {**_body({}, 5), "metadata": {"name": "x", "uid": "u2", "generation": 1}}
    keys = [views.spec_key(body) for body in (first, grown, other, first)]
    assert len(set(keys[:3])) == 3 and keys[3] == keys[0]
