"""What the UI shows of forEach nodes, template-based Workflows and finally nodes."""

from __future__ import annotations

from typing import Any

from dagwright.ui import rendering, views

WORK = {
    "name": "work",
    "dependsOn": ["find"],
    "image": "busybox",
    "forEach": {"fromJSON": "{{ nodes.find.outputs.shards }}"},
    "command": ["sh", "-c", "echo shard {{ item }} of item {{ node.index }}"],
}
NODES = [{"name": "find", "image": "busybox"}, WORK, {"name": "tidy", "image": "busybox", "finally": True}]


def _running(states: str, detail: dict[str, Any]) -> dict[str, Any]:
    done = states.count("S")
    return {
        "find": {"phase": "Succeeded", "attempts": 1, "outputs": {"shards": [10, 20, 30, 40, 50]}},
        "work": {
            "phase": "Running",
            "attempts": 4,
            "progress": f"{done}/{len(states)}",
            "items": {"total": len(states), "states": states, "detail": detail, "outputs": [{"n": 1}] * len(states)},
        },
    }


def _body(spec: dict[str, Any], nodes: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "w", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": spec,
        "status": {"phase": "Running", "nodes": nodes, **status},
    }


def test_a_foreach_node_is_drawn_once_with_its_progress_as_the_badge() -> None:
    body = _body({"nodes": NODES}, _running("SSRPF", {}))
    drawn = {node["name"]: node for node in views.graph(body)["nodes"]}
    assert list(drawn) == ["find", "work", "tidy"]
    assert drawn["work"]["forEach"] is True and drawn["tidy"]["finally"] is True
    compact = views.compact_nodes(body)["work"]
    assert compact["progress"] == "2/5" and "items" not in compact  # the stream never carries the item list


def test_dagwright_get_shows_a_failed_foreach_nodes_succeeded_items_over_all() -> None:
    from dagwright.cli import cluster

    failed = {**_running("SSSSFXXX", {}), "work": {"phase": "Failed", "attempts": 5, "progress": "4/8"}}
    lines = list(cluster._describe(_body({"nodes": NODES}, failed, phase="Failed")))
    work = next(line for line in lines if "work" in line).split("work", 1)[1].split()
    assert lines[1].split()[:4] == ["NODE", "PHASE", "ATTEMPTS", "PROGRESS"]
    assert work[:3] == ["Failed", "5", "4/8"]


def test_the_panel_lists_item_states_and_renders_only_the_items_with_detail() -> None:
    detail = {"2": {"attempts": 1}, "4": {"attempts": 2, "exitCode": 3, "reason": "Error"}}
    body = _body({"nodes": NODES}, _running("SSRPF", detail))
    shown = views.node_detail(body, "work", rendering.rendered(body, "work"))
    assert shown is not None
    assert shown["items"]["states"] == "SSRPF" and set(shown["items"]["detail"]) == {"2", "4"}
    assert "items" not in shown["status"]  # item outputs are not sent to the panel
    rendered = shown["rendered"]
    assert rendered["perItem"] and rendered["command"][2] == "echo shard {{ item }} of item {{ node.index }}"
    assert rendered["items"]["2"]["command"][2] == "echo shard 30 of item 2"
    assert rendered["items"]["4"]["command"][2] == "echo shard 50 of item 4"


def test_a_5000_item_panel_sends_one_letter_per_item() -> None:
    states = "S" * 4000 + "R" * 10 + "P" * 990
    body = _body({"nodes": NODES}, _running(states, {str(i): {"attempts": 1} for i in range(4000, 4010)}))
    shown = views.node_detail(body, "work", None)
    assert shown is not None and shown["items"]["total"] == 5000 and len(shown["items"]["detail"]) == 10


def test_a_template_based_workflow_is_drawn_from_its_snapshot() -> None:
    spec = {"templateRef": {"name": "etl"}, "parameters": {"region": "us"}}
    snapshot = {
        "name": "etl",
        "resourceVersion": "7",
        "spec": {
            "parameters": {"region": "eu"},
            "nodes": [{"name": "a", "image": "busybox", "command": ["echo", "{{ params.region }}"]}],
        },
    }
    body = _body(spec, {"a": {"phase": "Running", "attempts": 1}}, template=snapshot)
    body["metadata"]["labels"] = {"dagwright.io/cron-workflow": "nightly"}
    assert [node["name"] for node in views.graph(body)["nodes"]] == ["a"]
    row = views.summary(body)
    assert (row["template"], row["cron"], row["total"]) == ("etl", "nightly", 1)
    assert rendering.rendered(body, "a") == {"command": ["echo", "us"], "args": [], "inPod": False}
    not_started = _body(spec, {})
    assert views.graph(not_started)["nodes"] == [] and rendering.rendered(not_started, "a") is None


def test_dagwright_get_counts_the_nodes_of_the_template_snapshot_for_its_eta() -> None:
    from datetime import UTC, datetime, timedelta

    from dagwright.cli import cluster

    started = datetime.now(UTC) - timedelta(seconds=20)
    done = {"phase": "Succeeded", "startedAt": started.isoformat(), "finishedAt": (started + timedelta(10)).isoformat()}
    nodes = [{"name": name, "image": "busybox"} for name in ("a", "b", "c")]
    snapshot = {"name": "etl", "spec": {"nodes": nodes}}
    body = _body({"templateRef": {"name": "etl"}}, {"a": done, "b": {"phase": "Running"}}, template=snapshot)
    assert next(cluster._describe(body)).endswith(" left")
