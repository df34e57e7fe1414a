"""`dagwright run` as a user runs it: a subprocess, real processes, exit codes, stdout and stderr."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DAGWRIGHT = [sys.executable, "-m", "dagwright.cli"]


def dagwright(*args: str | Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TERM": "dumb"}
    return subprocess.run(
        [*DAGWRIGHT, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def write(tmp_path: Path, nodes: list[dict[str, Any]], name: str = "test", **spec: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    document = {"apiVersion": "dagwright.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name}}
    document["spec"] = {"nodes": nodes, **spec}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_json(*args: str | Path) -> tuple[int, dict[str, Any], str]:
    result = dagwright("run", "--output", "json", *args)
    return result.returncode, json.loads(result.stdout), result.stderr


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has ended all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


# -- the examples


@pytest.mark.parametrize(
    ("example", "code", "phase", "progress"),
    [
        ("hello.yaml", 0, "Succeeded", "1/1"),
        ("diamond.yaml", 0, "Succeeded", "4/4"),
        ("fan-out-fan-in.yaml", 0, "Succeeded", "10/10"),
        ("failing-branch.yaml", 1, "Failed", "2/4"),
        ("conditional.yaml", 0, "Succeeded", "3/5"),
        ("notify-on-failure.yaml", 1, "Failed", "3/4"),
        ("template.yaml", 0, "Succeeded", "3/3"),
    ],
)
def test_examples_end_with_the_right_exit_code(example: str, code: int, phase: str, progress: str) -> None:
    returncode, final, _ = run_json(EXAMPLES / example)
    assert (returncode, final["status"]["phase"], final["status"]["progress"]) == (code, phase, progress)


def test_finally_nodes_notify_on_failure_with_the_outcome_and_clean_up_either_way(tmp_path: Path) -> None:
    code, final, _ = run_json(EXAMPLES / "notify-on-failure.yaml", "--logs-dir", tmp_path)
    nodes = final["status"]["nodes"]
    assert code == 1
    assert {name: node["phase"] for name, node in nodes.items()} == {
        "extract": "Succeeded",
        "load": "Failed",
        "notify": "Succeeded",
        "cleanup": "Succeeded",
    }
    assert 'workflow notify-on-failure Failed: failed nodes ["load"]' in (tmp_path / "notify.1.log").read_text()
    assert datetime.fromisoformat(nodes["notify"]["startedAt"]) >= datetime.fromisoformat(nodes["load"]["finishedAt"])

    code, final, _ = run_json(EXAMPLES / "notify-on-failure.yaml", "-p", "rows=10")
    nodes = final["status"]["nodes"]
    assert (code, final["status"]["phase"]) == (0, "Succeeded")
    assert (nodes["notify"]["reason"], nodes["cleanup"]["phase"]) == ("ConditionFalse", "Succeeded")


def test_the_plain_report_says_which_nodes_were_skipped_and_why() -> None:
    result = dagwright("run", EXAMPLES / "conditional.yaml")
    assert result.returncode == 0, result.stderr
    assert "rebuild skipped (ConditionFalse): when is false: nodes.check.outputs.changed > 1000" in result.stdout
    assert result.stdout.count("rebuild skipped") == 1


def test_parallelism_limits_how_many_nodes_run_at_once() -> None:
    code, final, _ = run_json(EXAMPLES / "fan-out-fan-in.yaml")  # 8 shards of 0.3 s, parallelism 4
    assert code == 0
    moments = []
    for node in final["status"]["nodes"].values():
        moments += [
            # A first attempt's start is the node's: attemptStartedAt is left out then.
            (datetime.fromisoformat(node.get("attemptStartedAt", node["startedAt"])), 1),
            (datetime.fromisoformat(node["finishedAt"]), -1),
        ]
    running, most = 0, 0
    for _, change in sorted(moments):  # an end sorts before a start at the same instant
        running += change
        most = max(most, running)
    assert 2 <= most <= 4


def test_failing_branch_other_branch_finishes_and_downstream_is_skipped(tmp_path: Path) -> None:
    code, final, _ = run_json(EXAMPLES / "failing-branch.yaml", "--logs-dir", tmp_path)
    nodes = final["status"]["nodes"]
    assert code == 1
    assert {name: node["phase"] for name, node in nodes.items()} == {
        "start": "Succeeded",
        "good": "Succeeded",
        "bad": "Failed",
        "report": "Skipped",
    }
    assert nodes["bad"]["exitCode"] == 3
    assert "no such table: orders" in nodes["bad"]["message"]
    assert nodes["report"]["reason"] == "UpstreamFailed"
    assert "no such table: orders" in (tmp_path / "bad.1.log").read_text()


def test_flaky_example_retries_with_backoff(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    started = time.monotonic()
    code, final, stderr = run_json(EXAMPLES / "flaky.yaml", "-p", f"counter={counter}")
    elapsed = time.monotonic() - started
    flaky = final["status"]["nodes"]["flaky"]
    assert code == 0
    assert flaky["attempts"] == 3 and flaky["phase"] == "Succeeded"
    assert counter.read_text().strip() == "3"
    assert stderr.count("retrying in") == 2
    assert elapsed >= 0.2 * 0.9 + 0.4 * 0.9  # the two backoffs, less the most jitter can take off


# -- output, parameters, templates


def test_json_output_is_the_cluster_shaped_object_alone_on_stdout(tmp_path: Path) -> None:
    path = write(tmp_path, [{"name": "a", "command": ["echo", "hi"]}], parameters={"x": "1"})
    result = dagwright("run", "--output", "json", path)
    assert result.returncode == 0
    final = json.loads(result.stdout)  # nothing but the object
    assert list(final) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert final["apiVersion"] == "dagwright.io/v1alpha1" and final["kind"] == "Workflow"
    assert final["metadata"] == {"name": "test"}
    assert final["spec"]["nodes"][0]["name"] == "a"
    status = final["status"]
    assert status["phase"] == "Succeeded" and status["progress"] == "1/1"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Succeeded": "True", "Paused": "False"}
    assert status["nodes"]["a"]["exitCode"] == 0
    assert "a attempt 1 started" in result.stderr
    assert "workflow Succeeded" in result.stderr


def test_text_output_tells_the_story_on_stdout(tmp_path: Path) -> None:
    path = write(tmp_path, [{"name": "a", "command": ["true"]}, {"name": "b", "command": ["true"], "dependsOn": ["a"]}])
    result = dagwright("run", path)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "a attempt 1 started",
        "a attempt 1 succeeded",
        "b attempt 1 started",
        "b attempt 1 succeeded",
        "workflow Succeeded (2/2): all 2 nodes succeeded",
    ]


def test_parameters_override_and_metacharacters_arrive_literally(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    nasty = f"$(touch {marker}); `touch {marker}` \"dq\" 'sq' {{{{ params.who }}}} * ~ \\n ; | &"
    path = write(
        tmp_path,
        [
            {"name": "argv", "command": ["printf", "%s"], "args": ["{{ params.who }}"]},
            {
                "name": "shell",
                "command": ["sh", "-c", 'printf %s "$WHO"'],
                "env": [{"name": "WHO", "value": "{{ params.who }}"}],
            },
        ],
        parameters={"who": "default"},
    )
    result = dagwright("run", path, "-p", f"who={nasty}", "--logs-dir", tmp_path / "logs")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "logs" / "argv.1.log").read_text() == nasty
    assert (tmp_path / "logs" / "shell.1.log").read_text() == nasty
    assert not marker.exists()


def test_parameter_default_is_used_without_p(tmp_path: Path) -> None:
    result = dagwright("run", EXAMPLES / "hello.yaml", "--logs-dir", tmp_path)
    assert result.returncode == 0
    assert (tmp_path / "hello.1.log").read_text() == "hello, world from hello\n"
    result = dagwright("run", EXAMPLES / "hello.yaml", "-p", "who=dagwright", "--logs-dir", tmp_path / "again")
    assert (tmp_path / "again" / "hello.1.log").read_text() == "hello, dagwright from hello\n"


def test_outputs_flow_to_downstream_templates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"name": "count", "command": ["sh", "-c", 'echo \'{"rows": 42}\' > "$DAGWRIGHT_OUTPUTS"']},
            {"name": "report", "dependsOn": ["count"], "command": ["echo", "rows={{ nodes.count.outputs.rows }}"]},
        ],
    )
    code, final, _ = run_json(path, "--logs-dir", tmp_path / "logs")
    assert code == 0
    assert final["status"]["nodes"]["count"]["outputs"] == {"rows": 42}
    assert (tmp_path / "logs" / "report.1.log").read_text() == "rows=42\n"


def test_when_conditions_skip_nodes_and_their_output_readers_only(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"name": "count", "command": ["sh", "-c", 'echo \'{"rows": 3}\' > "$DAGWRIGHT_OUTPUTS"']},
            {"name": "big", "dependsOn": ["count"], "when": "nodes.count.outputs.rows > 100", "command": ["true"]},
            {"name": "small", "dependsOn": ["count"], "when": "nodes.count.outputs.rows <= 100", "command": ["true"]},
            {"name": "reads-big", "dependsOn": ["big"], "command": ["echo", "{{ nodes.big.outputs.x }}"]},
            {"name": "after-big", "dependsOn": ["big"], "command": ["echo", "ran"]},
            {"name": "quoted", "when": "params.q == 'x'", "command": ["true"]},
        ],
        parameters={"q": "x' || true || '"},
    )
    code, final, _ = run_json(path, "--logs-dir", tmp_path / "logs")
    nodes = final["status"]["nodes"]
    assert code == 0, final
    assert {name: (node["phase"], node.get("reason")) for name, node in nodes.items()} == {
        "count": ("Succeeded", None),
        "big": ("Skipped", "ConditionFalse"),
        "small": ("Succeeded", None),
        "reads-big": ("Skipped", "UpstreamSkipped"),
        "after-big": ("Succeeded", None),
        "quoted": ("Skipped", "ConditionFalse"),
    }
    assert not (tmp_path / "logs" / "big.1.log").exists()
    assert (tmp_path / "logs" / "after-big.1.log").read_text() == "ran\n"


def test_when_errors_fail_the_node_and_bad_expressions_are_validation_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"name": "a", "command": ["true"]},
            {"name": "b", "dependsOn": ["a"], "when": "nodes.a.outputs.n > 1", "command": ["true"]},
        ],
    )
    code, final, _ = run_json(path)
    b = final["status"]["nodes"]["b"]
    assert (code, b["phase"], b["reason"], b["message"]) == (
        1,
        "Failed",
        "ConditionError",
        'Key not found in map : "n"',
    )
    bad = write(
        tmp_path, [{"name": "a", "when": "params.n > 1", "command": ["true"]}], name="bad", parameters={"n": "2"}
    )
    result = dagwright("validate", bad)
    assert result.returncode == 1
    assert "spec.nodes[0].when: invalid CEL expression: 1:10: found no matching overload for '_>_'" in result.stderr
    assert dagwright("run", bad).returncode == 1


def test_outputs_file_rules_are_the_clusters(tmp_path: Path) -> None:
    """An empty $DAGWRIGHT_OUTPUTS is no outputs (as on the cluster); one above 1 MiB fails the node."""
    path = write(
        tmp_path,
        [
            {"name": "empty", "command": ["sh", "-c", ': > "$DAGWRIGHT_OUTPUTS"']},
            {"name": "huge", "command": ["sh", "-c", 'head -c 1048577 /dev/zero | tr "\\0" x > "$DAGWRIGHT_OUTPUTS"']},
        ],
        failFast=False,
    )
    code, final, stderr = run_json(path)
    assert code == 1, stderr
    empty, huge = final["status"]["nodes"]["empty"], final["status"]["nodes"]["huge"]
    assert empty["phase"] == "Succeeded" and "outputs" not in empty
    assert (huge["phase"], huge["reason"]) == ("Failed", "OutputsTooLarge")
    assert "1048576" in huge["message"]


def test_outputs_that_no_command_line_can_hold_fail_the_node_not_the_runner(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"name": "a", "command": ["sh", "-c", 'printf \'{"k": "x\\u0000y"}\' > "$DAGWRIGHT_OUTPUTS"']},
            {"name": "b", "dependsOn": ["a"], "command": ["echo", "{{ nodes.a.outputs.k }}"]},
        ],
    )
    code, final, stderr = run_json(path)
    assert code == 1, stderr
    b = final["status"]["nodes"]["b"]
    assert (b["phase"], b["exitCode"]) == ("Failed", 127)
    assert "null byte" in b["message"]
    assert "Traceback" not in stderr


def test_invalid_manifest_is_reported_field_by_field_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(
        tmp_path,
        [
            {"name": "a", "command": ["touch", str(marker)], "dependsOn": ["c"]},
            {"name": "b", "command": ["true"], "dependsOn": ["a"]},
            {"name": "c", "command": ["true"], "dependsOn": ["b"]},
        ],
    )
    result = dagwright("run", path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {path} is not a valid Workflow:",
        "  spec.nodes[0].dependsOn[0]: dependency cycle: a -> b -> c -> a",
    ]
    assert not marker.exists()


def template_file(tmp_path: Path, *documents: dict[str, Any]) -> Path:
    """A WorkflowTemplate `report` writing its parameters to tmp_path/out, then `documents`, in one file."""
    out = tmp_path / "out"
    command = ["sh", "-c", f"echo {{{{ params.region }}}} {{{{ params.date }}}} >> {out}"]
    template = {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "report"},
        "spec": {"parameters": {"region": "eu", "date": "today"}, "nodes": [{"name": "write", "command": command}]},
    }
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump_all([template, *documents], sort_keys=False))
    return path


def test_a_workflow_template_runs_on_its_own_with_p_overriding_its_defaults(tmp_path: Path) -> None:
    path = template_file(tmp_path)
    code, final, _ = run_json(path, "-p", "region=us")
    assert code == 0 and (tmp_path / "out").read_text() == "us today\n"
    assert (final["kind"], final["metadata"]["name"], final["status"]["phase"]) == ("Workflow", "report", "Succeeded")
    typo = dagwright("run", path, "-p", "regoin=us")
    assert typo.returncode == 1 and not (tmp_path / "out").read_text().count("\n") > 1
    assert typo.stderr.splitlines()[1] == (
        "  -p regoin: WorkflowTemplate 'report' declares no parameter 'regoin' (it declares: date, region)"
    )


def test_a_workflow_runs_the_template_of_its_own_file_and_names_what_is_missing(tmp_path: Path) -> None:
    run = {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "report-"},
        "spec": {"templateRef": {"name": "report"}, "parameters": {"date": "2026-11-29"}},
    }
    code, final, _ = run_json(template_file(tmp_path, run))
    assert code == 0 and (tmp_path / "out").read_text() == "eu 2026-11-29\n"
    assert final["metadata"]["name"].startswith("report-") and final["spec"]["parameters"]["date"] == "2026-11-29"

    elsewhere = tmp_path / "run.yaml"
    elsewhere.write_text(yaml.safe_dump({**run, "spec": {**run["spec"], "templateRef": {"name": "other"}}}))
    result = dagwright("run", elsewhere)
    assert result.returncode == 1 and result.stderr.splitlines()[1] == (
        f"  spec.templateRef.name: WorkflowTemplate 'other' is not in {elsewhere}: "
        "add it as another document to run it here"
    )
    checked = dagwright("validate", elsewhere)
    assert checked.returncode == 0 and "running WorkflowTemplate 'other' (not in this file" in checked.stdout


def test_unknown_parameter_is_a_validation_error(tmp_path: Path) -> None:
    result = dagwright("run", EXAMPLES / "hello.yaml", "-p", "nonsense")
    assert result.returncode == 1
    assert result.stderr.splitlines()[1] == "  -p: expected KEY=VALUE, got 'nonsense'"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("option", "path", "message"),
    [
        ("--logs-dir", "file", "  --logs-dir: cannot create "),
        ("--state", "missing/state.json", "  --state: directory "),
    ],
)
def test_unusable_paths_are_refused_before_anything_runs(tmp_path: Path, option: str, path: str, message: str) -> None:
    (tmp_path / "file").write_text("")
    marker = tmp_path / "ran"
    workflow = write(tmp_path, [{"name": "a", "command": ["touch", str(marker)]}])
    result = dagwright("run", workflow, option, tmp_path / path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[1].startswith(message)
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_command_that_cannot_start_fails_the_node_and_others_run(tmp_path: Path) -> None:
    nodes = [{"name": f"ok-{i}", "command": ["true"]} for i in range(3)]
    nodes.insert(1, {"name": "bad", "command": ["/no/such/program"]})  # started in the same batch as the others
    code, final, _ = run_json(write(tmp_path, nodes, failFast=False))
    assert code == 1
    status = final["status"]
    assert (status["nodes"]["bad"]["phase"], status["nodes"]["bad"]["exitCode"]) == ("Failed", 127)
    assert "cannot start '/no/such/program'" in status["nodes"]["bad"]["message"]
    assert status["progress"] == "3/4"


# -- approvals


def test_approval_without_a_terminal_is_rejected_and_approve_all_passes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {"name": "gate", "approval": {"message": "ship?"}},
            {"name": "ship", "dependsOn": ["gate"], "command": ["true"]},
        ],
    )
    code, final, _ = run_json(path)
    assert code == 1
    assert final["status"]["nodes"]["gate"]["reason"] == "Rejected"
    assert "--approve-all" in final["status"]["nodes"]["gate"]["message"]
    assert final["status"]["nodes"]["ship"]["phase"] == "Skipped"
    code, final, _ = run_json(path, "--approve-all")
    assert code == 0
    assert final["status"]["progress"] == "2/2"


# -- timeouts and interrupts end whole process groups


def _group_workflow(tmp_path: Path, **node: Any) -> tuple[Path, Path]:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! >> {pids}; sh -c 'sleep 60' & echo $! >> {pids}; echo started; wait"
    return write(tmp_path, [{"name": "sleeper", "command": ["sh", "-c", script], **node}]), pids


def _assert_all_gone(pids: Path) -> None:
    numbers = [int(line) for line in pids.read_text().split()]
    assert len(numbers) == 2
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in numbers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in numbers if alive(pid)], "children of the node outlived it"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    path, pids = _group_workflow(tmp_path, timeoutSeconds=1)
    started = time.monotonic()
    code, final, _ = run_json(path)
    assert time.monotonic() - started < 15
    node = final["status"]["nodes"]["sleeper"]
    assert code == 1
    assert (node["phase"], node["reason"]) == ("Failed", "Timeout")
    _assert_all_gone(pids)


def test_sigint_stops_running_nodes_and_exits_130(tmp_path: Path) -> None:
    path, pids = _group_workflow(tmp_path)
    process = subprocess.Popen(
        [*DAGWRIGHT, "run", "--output", "json", str(path), "--logs-dir", str(tmp_path / "logs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TERM": "dumb"},
    )
    log = tmp_path / "logs" / "sleeper.1.log"
    deadline = time.monotonic() + 15
    while not (log.exists() and "started" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "started" in log.read_text()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    final = json.loads(stdout)
    assert final["status"]["phase"] == "Stopped"
    assert final["status"]["nodes"]["sleeper"]["phase"] == "Stopped"
    _assert_all_gone(pids)


# -- resuming from a state file


def test_state_resume_skips_succeeded_nodes_and_reruns_failed_ones(tmp_path: Path) -> None:
    side_effect = tmp_path / "extract-ran"
    fixed = tmp_path / "fixed"
    path = write(
        tmp_path,
        [
            {"name": "extract", "command": ["sh", "-c", f"echo once >> {side_effect}"]},
            {"name": "load", "dependsOn": ["extract"], "command": ["test", "-e", str(fixed)]},
        ],
        name="resume",
    )
    state = tmp_path / "state.json"
    code, _, _ = run_json(path, "--state", state)
    assert code == 1
    saved = json.loads(state.read_text())
    assert saved["status"]["phase"] == "Failed"
    assert saved["status"]["nodes"]["load"]["phase"] == "Failed"

    fixed.touch()
    code, second, stderr = run_json(path, "--state", state)
    assert code == 0, stderr
    assert side_effect.read_text() == "once\n"  # extract did not run again
    nodes = second["status"]["nodes"]
    assert nodes["extract"]["attempts"] == 1
    assert nodes["load"]["attempts"] == 2  # attempt numbers keep growing
    assert "load attempt 2 started" in stderr and "extract attempt" not in stderr.split("load attempt 2")[0]
    assert json.loads(state.read_text())["status"]["phase"] == "Succeeded"

    code, _, stderr = run_json(path, "--state", state)  # already done: nothing runs
    assert code == 0
    assert "started" not in stderr
    assert side_effect.read_text() == "once\n"


def test_state_file_follows_the_run_while_it_is_still_going(tmp_path: Path) -> None:
    """Saves are spaced out, but a change is on disk within about a second even when nothing else happens."""
    release = tmp_path / "release"
    path = write(
        tmp_path,
        [
            {"name": "quick", "command": ["true"]},
            {"name": "slow", "command": ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.05; done"]},
        ],
    )
    state = tmp_path / "state.json"
    process = subprocess.Popen([*DAGWRIGHT, "run", str(path), "--state", str(state)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        nodes: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if state.exists():
                nodes = json.loads(state.read_text())["status"]["nodes"]
                if nodes.get("quick", {}).get("phase") == "Succeeded":
                    break
            time.sleep(0.1)
        assert nodes["quick"]["phase"] == "Succeeded"
        assert nodes["slow"]["phase"] == "Running"
    finally:
        release.touch()
        assert process.wait(timeout=20) == 0
    assert json.loads(state.read_text())["status"]["phase"] == "Succeeded"


def test_state_file_of_another_workflow_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert dagwright("run", EXAMPLES / "hello.yaml", "--state", state).returncode == 0
    result = dagwright("run", EXAMPLES / "diamond.yaml", "--state", state)
    assert result.returncode == 1
    assert "holds workflow 'hello', not 'diamond'" in result.stderr
    state.write_text("{not json")
    result = dagwright("run", EXAMPLES / "hello.yaml", "--state", state)
    assert result.returncode == 1
    assert "not a dagwright state file" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_needs_none_of_the_operator_dependencies(tmp_path: Path) -> None:
    """`pip install dagwright` without the [operator] or [runner] extras must be enough for `dagwright run`."""
    script = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {{"kopf", "kubernetes", "redis", "prometheus_client"}}:
            raise ImportError(f"{{name}} is not installed")
        return None
sys.meta_path.insert(0, Block())
from dagwright.cli import main
sys.exit(main(["run", {str(EXAMPLES / "hello.yaml")!r}, "--logs-dir", {str(tmp_path)!r}]))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "hello.1.log").read_text() == "hello, world from hello\n"
