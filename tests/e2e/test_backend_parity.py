"""The same manifests through both backends: `dagwright run` (local processes) and the operator (Jobs on kwok).

Why: both backends follow one planner, but each turns its own world into observations (a process's exit status
and outputs file; a Job's conditions, its pod's exit code and termination message) and carries out decisions in
its own way (signals; Job deletes). A rule restated in one backend drifts; this table catches the drift where
users would see it: the final workflow phase and, per node, phase, reason, attempts, exit code and outputs.

Each case is written once, as what every node's command does (`Fate`: exit code per attempt, run time, outputs
text), and both forms come from it: locally a `sh -c` script doing exactly that (its attempt number from the
`{{ node.attempt }}` template, the same number kwok keys on), on the cluster kwok annotations playing the same
fate (tests/e2e/cluster/stages). The manifest carries both, so each backend runs the very same document: the
local runner ignores `podMetadata` and `image`, and kwok ignores the command. All cases run at once, on each
backend, so the module takes about as long as its slowest case.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import (
    OperatorProcess,
    apply,
    dagwright,
    hold,
    node,
    require_per_attempt_fates,
    retry,
    status_of,
    wait_node,
    wait_phase,
    workflow,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

LOCAL = [sys.executable, "-m", "dagwright.cli", "run", "--output", "json"]
# What a kubelet keeps of a termination message (the first 4 KiB of /dev/termination-log).
KUBELET_MESSAGE_LIMIT = 4096
FOREVER = 600.0


@dataclass(frozen=True)
class Fate:
    """What a node's command does: exit code per attempt (the last one repeats), run time, outputs text."""

    exits: tuple[int, ...] = (0,)
    seconds: float = 0.1
    outputs: str | None = None  # written to $DAGWRIGHT_OUTPUTS on a successful attempt
    forever: bool = False  # runs until it is stopped or times out


@dataclass(frozen=True)
class Case:
    name: str
    nodes: dict[str, tuple[Fate, tuple[str, ...], dict[str, Any]]]  # node -> (fate, dependsOn, other fields)
    phase: str  # the workflow phase both must end in (so that two identical wrong answers do not pass)
    spec: dict[str, Any] = field(default_factory=dict)
    act: str | None = None  # "approve", "reject", "pause-resume", "stop" (on node `stopped_during`)
    stopped_during: str | None = None


def fate(
    exits: tuple[int, ...] = (0,),
    *deps: str,
    seconds: float = 0.1,
    outputs: str | None = None,
    forever: bool = False,
    **fields: Any,
) -> tuple[Fate, tuple[str, ...], dict[str, Any]]:
    return Fate(exits, seconds, outputs, forever), deps, fields


OK = (0,)
# Above the largest outputs any backend accepts (1 MiB, node-runner's with Redis). Between 3 KiB and 1 MiB the
# backends differ by design, so no case sits there: `dagwright run` takes them, while a plain image on a cluster
# carries its outputs in the termination message (3 KiB) and needs node-runner and Redis for more.
HUGE = json.dumps({"blob": "x" * (1024 * 1024)})
TWO_BRANCHES = {
    "bad": fate((3,)),
    "slow": fate(OK, seconds=1.5),
    "after-slow": fate(OK, "slow"),
    "after-bad": fate(OK, "bad"),
}
CASES = [
    Case(
        "diamond",
        {"a": fate(), "b": fate(OK, "a"), "c": fate(OK, "a", seconds=0.5), "d": fate(OK, "b", "c")},
        "Succeeded",
    ),
    Case("fail-fast", TWO_BRANCHES, "Failed", spec={"failFast": True}),
    Case("no-fail-fast", TWO_BRANCHES, "Failed", spec={"failFast": False}),
    Case(
        "retries",
        {
            "flaky": fate((3, 0), retry=retry(2)),
            "doomed": fate((3,), retry=retry(1)),
            "after-flaky": fate(OK, "flaky"),
        },
        "Failed",
        spec={"failFast": False},
    ),
    Case("timeout", {"stuck": fate(forever=True, timeoutSeconds=1), "after": fate(OK, "stuck")}, "Failed"),
    Case(
        "outputs",
        {
            "object": fate(outputs='{"rows": 42, "table": "orders", "ok": true}'),
            "empty": fate(outputs=""),
            "huge": fate(outputs=HUGE),
            "list": fate(outputs="[1, 2]"),  # JSON, but not an object
            "text": fate(outputs="rows=42"),
        },
        "Failed",
        spec={"failFast": False},
    ),
    Case(
        "approved", {"gate": fate(approval={"message": "ship?"}), "ship": fate(OK, "gate")}, "Succeeded", act="approve"
    ),
    Case("rejected", {"gate": fate(approval={"message": "ship?"}), "ship": fate(OK, "gate")}, "Failed", act="reject"),
    Case("paused", {"a": fate(), "b": fate(OK, "a")}, "Succeeded", act="pause-resume"),
    Case(
        "finally",
        {
            "bad": fate((3,)),
            "after-bad": fate(OK, "bad"),
            "notify": fate(OK, when="workflow.status == 'Failed'", **{"finally": True}),
            "on-success": fate(OK, when="workflow.status == 'Succeeded'", **{"finally": True}),
            "cleanup": fate((4,), "notify", **{"finally": True}),
            "after-cleanup": fate(OK, "cleanup", **{"finally": True}),
        },
        "Failed",
    ),
    Case(
        "finally-after-deadline",
        {"stuck": fate(forever=True), "cleanup": fate(OK, **{"finally": True})},
        "Failed",
        spec={"activeDeadlineSeconds": 2},
    ),
    Case(
        "stopped",
        {"a": fate(), "b": fate(OK, "a", forever=True), "c": fate(OK, "b")},
        "Stopped",
        act="stop",
        stopped_during="b",
    ),
]


# --------------------------------------------------------------------------- the two forms of a case


def script(spec: Fate, outputs_file: Path | None) -> str:
    """The local form of a fate: a shell script doing exactly what the kwok annotations make a pod do."""
    if spec.forever:
        return f"exec sleep {FOREVER}"
    lines = [f"code={spec.exits[-1]}"]
    lines += [f'[ "{{{{ node.attempt }}}}" -eq {n} ] && code={code}' for n, code in enumerate(spec.exits[:-1], 1)]
    lines.append(f"sleep {spec.seconds}")
    if outputs_file is not None:
        lines.append(f'[ "$code" -eq 0 ] && cat {outputs_file} > "$DAGWRIGHT_OUTPUTS"')
    lines.append('exit "$code"')
    return "\n".join(lines)


def kwok_fate(spec: Fate) -> dict[str, Any]:
    """The cluster form of a fate: arguments of `operator_fixtures.node`, plus the termination message."""
    if spec.forever:
        return {"never_finish": True}
    fields: dict[str, Any] = {"duration": f"{round(spec.seconds * 1000)}ms"}
    *failing, last = spec.exits
    if failing:  # attempts 1..k fail with one exit code, then the last one's fate (pod-fail-attempts.yaml)
        assert last == 0 and len(set(failing)) == 1 and failing[0] != 0, f"kwok cannot play {spec.exits}"
        fields.update(fail_attempts=len(failing), fail_exit_code=failing[0])
    elif last != 0:
        fields["exit_code"] = last
    return fields


def manifest(case: Case, workdir: Path, **spec: Any) -> dict[str, Any]:
    nodes = []
    for name, (behaviour, deps, extra) in case.nodes.items():
        if "approval" in extra:
            nodes.append(node(name, *deps, **extra))
            continue
        outputs_file = None
        if behaviour.outputs is not None:
            outputs_file = workdir / f"{case.name}.{name}.outputs"
            outputs_file.write_text(behaviour.outputs)
        body = node(name, *deps, **kwok_fate(behaviour), command=["sh", "-c", script(behaviour, outputs_file)], **extra)
        if behaviour.outputs:  # what the kubelet keeps of the outputs the command writes to /dev/termination-log
            annotations = body["podMetadata"]["annotations"]
            annotations["kwok.dagwright.io/message"] = behaviour.outputs[:KUBELET_MESSAGE_LIMIT]
        nodes.append(body)
    return workflow(case.name, nodes, **{**case.spec, **spec})


# --------------------------------------------------------------------------- comparing


def normalised(status: dict[str, Any]) -> dict[str, Any]:
    nodes = {}
    for name, seen in sorted((status.get("nodes") or {}).items()):
        # A timed-out node's reason is compared as is: a cluster has two clocks for timeoutSeconds (the
        # planner's and the Job's activeDeadlineSeconds, which may end the pod first), and both must say Timeout.
        nodes[name] = {
            "phase": seen.get("phase"),
            "reason": seen.get("reason"),
            "attempts": seen.get("attempts"),
            "exitCode": seen.get("exitCode"),
            "outputs": seen.get("outputs"),
        }
        # Not compared: messages (a local failure quotes the command's output, a pod's says less; an approval
        # rejected locally says no terminal was there to ask on) and times.
    return {"phase": status.get("phase"), "progress": status.get("progress"), "nodes": nodes}


# --------------------------------------------------------------------------- the local backend


def _local(case: Case, workdir: Path) -> dict[str, Any]:
    path = workdir / f"{case.name}.yaml"
    path.write_text(yaml.safe_dump(manifest(case, workdir)))
    args = [*LOCAL, str(path), "--logs-dir", str(workdir / case.name)]
    if case.act == "approve":
        args.append("--approve-all")
    # "reject": no --approve-all and no terminal on stdin, so the approval is refused.
    if case.act in ("stop", "pause-resume"):
        return _local_interrupted(case, workdir, args)
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=_env())
    return _final(done.stdout, done.stderr)


# Seconds a local run may take to write its first state: every case's `dagwright run` starts at once beside the
# operator, and on two loaded cores (load 16 measured) their imports alone took longer than 30 s.
START = 120


def _local_interrupted(case: Case, workdir: Path, args: list[str]) -> dict[str, Any]:
    """Ctrl-C is the local `dagwright stop`. A local run has no live pause: `paused: true` in the manifest holds
    everything back, and resuming is running the manifest again, unpaused, from the same --state file."""
    state = workdir / f"{case.name}.state.json"
    path = Path(args[len(LOCAL)])
    if case.act == "pause-resume":
        path.write_text(yaml.safe_dump(manifest(case, workdir, paused=True)))
    process = subprocess.Popen(
        [*args, "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    try:
        if case.act == "stop":
            assert case.stopped_during is not None
            wait_for(
                f"local {case.name}: {case.stopped_during} running", lambda: _saved_node(state, case), timeout=START
            )
        else:
            wait_for(f"local {case.name}: Paused", lambda: _saved(state).get("phase") == "Paused", timeout=START)
            hold(1)  # nothing may launch meanwhile
            assert _saved(state)["progress"] == f"0/{len(case.nodes)}"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    if case.act == "stop":
        return _final(stdout, stderr)
    path.write_text(yaml.safe_dump(manifest(case, workdir)))  # the spec no longer paused: resumed
    done = subprocess.run(
        [*args, "--state", str(state)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=_env()
    )
    return _final(done.stdout, done.stderr)


def _saved(state: Path) -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads(state.read_text())["status"]
    except (FileNotFoundError, ValueError):
        return {}
    return status


def _saved_node(state: Path, case: Case) -> bool:
    nodes = _saved(state).get("nodes") or {}
    return bool((nodes.get(case.stopped_during) or {}).get("phase") == "Running")


def _final(stdout: str, stderr: str) -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads(stdout)["status"]
    except ValueError:
        raise AssertionError(f"dagwright run printed no object:\n{stdout}\n{stderr}") from None
    return status


def _env() -> dict[str, str]:
    return {**os.environ, "TERM": "dumb"}


# --------------------------------------------------------------------------- the operator


def _cluster(kube: Kube, namespace: str, case: Case, workdir: Path) -> dict[str, Any]:
    paused = {"paused": True} if case.act == "pause-resume" else {}
    apply(kube, namespace, manifest(case, workdir, **paused))
    name = case.name
    if case.act in ("approve", "reject"):
        wait_node(kube, namespace, name, "gate", "AwaitingApproval", timeout=30)
        dagwright(kube, case.act, name, "gate", "-n", namespace)
    elif case.act == "pause-resume":
        wait_phase(kube, namespace, name, "Paused", timeout=30)
        hold(1)  # nothing may launch meanwhile
        assert status_of(kube, namespace, name)["progress"] == f"0/{len(case.nodes)}"
        dagwright(kube, "resume", name, "-n", namespace)
    elif case.act == "stop":
        assert case.stopped_during is not None
        wait_node(kube, namespace, name, case.stopped_during, "Running", timeout=30)
        dagwright(kube, "stop", name, "-n", namespace)
    return wait_phase(kube, namespace, name, "Succeeded", "Failed", "Stopped", timeout=60)


# --------------------------------------------------------------------------- the test


def test_both_backends_end_every_case_alike(
    kube: Kube, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    require_per_attempt_fates(kube, namespace)  # once, before the cases apply concurrently
    with ThreadPoolExecutor(2 * len(CASES)) as pool:
        local_runs = {case.name: pool.submit(_local, case, tmp_path) for case in CASES}
        cluster_runs = {case.name: pool.submit(_cluster, kube, namespace, case, tmp_path) for case in CASES}
        local = {case.name: normalised(local_runs[case.name].result()) for case in CASES}
        cluster = {case.name: normalised(cluster_runs[case.name].result()) for case in CASES}

    assert local == cluster
    assert {name: result["phase"] for name, result in local.items()} == {case.name: case.phase for case in CASES}
