"""`dagwright run` with forEach nodes: one process per item attempt, maxParallel, fan-in, bad lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_json(*args: str | Path) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "dagwright.cli", "run", "--output", "json", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TERM": "dumb"},
        stdin=subprocess.DEVNULL,
    )
    return result.returncode, json.loads(result.stdout), result.stderr


def write(tmp_path: Path, nodes: list[dict[str, Any]], **spec: Any) -> Path:
    path = tmp_path / "wf.yaml"
    document = {"apiVersion": "dagwright.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "wf"}}
    document["spec"] = {"nodes": nodes, **spec}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_map_reduce_example_runs_each_item_and_sums_the_gathered_outputs(tmp_path: Path) -> None:
    code, final, _ = run_json(EXAMPLES / "map-reduce.yaml", "--logs-dir", tmp_path)
    assert code == 0, final["status"]["message"]
    work = final["status"]["nodes"]["work"]
    assert (work["phase"], work["progress"], work["outputs"]) == ("Succeeded", "5/5", {"n": [1, 4, 9, 16, 25]})
    assert work["items"]["states"] == "SSSSS"
    assert (tmp_path / "sum.1.log").read_text().strip() == "sum of squares: 55"
    assert (tmp_path / "work.3.1.log").read_text().strip() == "shard 4 (item 3)"


def test_max_parallel_holds_and_a_failing_item_is_retried_alone(tmp_path: Path) -> None:
    moments = tmp_path / "moments"
    script = (
        f'echo "start $(date +%s.%N)" >> {moments}; sleep 0.3; echo "end $(date +%s.%N)" >> {moments}; '
        f'if [ "{{{{ item }}}}" = flaky ] && [ ! -e {tmp_path}/once ]; then touch {tmp_path}/once; exit 3; fi; '
        'echo "{\\"name\\": \\"{{ item }}\\"}" > "$DAGWRIGHT_OUTPUTS"'
    )
    nodes = [
        {
            "name": "each",
            "forEach": {"items": ["a", "flaky", "c", "d", "e"], "maxParallel": 2},
            "retry": {"limit": 1, "backoff": {"initialSeconds": 0.1}},
            "command": ["sh", "-c", script],
        },
        {"name": "gather", "dependsOn": ["each"], "command": ["echo", "{{ nodes.each.outputs.name }}"]},
    ]
    code, final, _ = run_json(write(tmp_path, nodes), "--logs-dir", tmp_path)
    assert code == 0, final["status"]["message"]
    each = final["status"]["nodes"]["each"]
    assert each["attempts"] == 6  # five items, one of them twice
    assert each["outputs"] == {"name": ["a", "flaky", "c", "d", "e"]}
    assert (tmp_path / "gather.1.log").read_text().strip() == '["a", "flaky", "c", "d", "e"]'
    running, most = 0, 0
    lines = [line.split() for line in moments.read_text().splitlines()]
    for _, change in sorted((float(at), -1 if kind == "end" else 1) for kind, at in lines):
        running += change
        most = max(most, running)
    assert most == 2


def test_from_json_that_is_not_an_array_fails_the_node_with_a_message(tmp_path: Path) -> None:
    nodes = [
        {"name": "find", "command": ["sh", "-c", 'echo "{\\"shards\\": {\\"a\\": 1}}" > "$DAGWRIGHT_OUTPUTS"']},
        {
            "name": "work",
            "dependsOn": ["find"],
            "forEach": {"fromJSON": "{{ nodes.find.outputs.shards }}"},
            "command": ["echo", "{{ item }}"],
        },
    ]
    code, final, _ = run_json(write(tmp_path, nodes))
    work = final["status"]["nodes"]["work"]
    assert (code, work["phase"], work["reason"]) == (1, "Failed", "InvalidItems")
    assert work["message"].startswith("forEach.fromJSON is not a JSON array (it is a JSON dict)")


def test_a_failed_node_reports_its_succeeded_items_over_all_of_them(tmp_path: Path) -> None:
    script = 'if [ "{{ item }}" = 4 ]; then exit 1; fi; sleep 0.3'
    nodes = [{"name": "work", "forEach": {"items": list(range(8)), "maxParallel": 5}, "command": ["sh", "-c", script]}]
    code, final, _ = run_json(write(tmp_path, nodes))
    work = final["status"]["nodes"]["work"]
    assert (code, work["phase"], work["items"]["states"]) == (1, "Failed", "SSSSFXXX")
    assert work["progress"] == "4/8"  # items 5-7 never ran: not counted as done
