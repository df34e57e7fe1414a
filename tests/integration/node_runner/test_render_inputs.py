"""Outputs too large for status reach a downstream node through node-runner, over a real Redis.

The downstream pod is what the operator builds: the planner's Launch made into a Job by `build_job`, whose
container command and env are run here as a process (the kubelet's part), with node-runner from this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagwright import nodeio
from dagwright.k8s.jobs import RedisSettings, build_job
from dagwright.planner import AttemptState, Observation, plan
from dagwright.validation import compile_manifest

from .conftest import RedisServer
from .test_node_runner import run_node

RUNNER = [sys.executable, "-m", "dagwright_node_runner"]
BLOB = "0123456789abcdef" * 640  # 10 KiB: more than status mirrors
_NOW = datetime(2026, 11, 26, tzinfo=UTC)
# Writes its first two arguments and $BLOB to files, so the test sees exactly what the command received.
SCRIPT = 'printf %s "$1" > "$OUT/arg1"; printf %s "$2" > "$OUT/arg2"; printf %s "$BLOB" > "$OUT/env"'


def _upstream_stores(tmp_path: Path, redis_url: str, blob: str = "'0123456789abcdef' * 640") -> str:
    """Run `extract` under node-runner with Redis, its outputs {"blob": <the Python expression blob>}; returns
    the Redis key its envelope reports."""
    script = f'python3 -c "import json; print(json.dumps({{\'blob\': {blob}}}))" > "$DAGWRIGHT_OUTPUTS"'
    code, message, stderr = run_node(tmp_path, script, "--redis-url", redis_url)
    assert code == 0, stderr
    carried = nodeio.read_termination(message, succeeded=True)
    assert carried.outputs is None and carried.reference is not None  # too large to mirror: by reference only
    return carried.reference


def _downstream_container(reference: str, redis_url: str, out: Path) -> dict[str, Any]:
    """The `load` container the operator builds once `extract` succeeded with outputs only in Redis."""
    manifest = {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "io", "namespace": "ns", "uid": "uid-1", "generation": 1},
        "spec": {
            "parameters": {"p": "{{ nodes.extract.outputs.blob }} $(HOME)"},
            "defaults": {"image": "runner", "nodeRunner": True},
            "nodes": [
                {"name": "extract", "command": ["extract"]},
                {
                    "name": "load",
                    "dependsOn": ["extract"],
                    "command": ["sh", "-c", SCRIPT, "sh"],
                    "args": ["{{ nodes.extract.outputs.blob }}", "{{ params.p }}"],
                    "env": [
                        {"name": "BLOB", "value": "{{ nodes.extract.outputs.blob }}"},
                        {"name": "OUT", "value": str(out)},
                    ],
                },
            ],
        },
    }
    workflow = compile_manifest(manifest)
    status = plan(workflow, None, [], _NOW).status
    done = Observation("extract", 1, AttemptState.SUCCEEDED, exit_code=0, outputs_ref=reference)
    (launch,) = plan(workflow, status, [done], _NOW).launches
    job = build_job(workflow, launch, redis=RedisSettings(redis_url))
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def _run_container(tmp_path: Path, container: dict[str, Any]) -> tuple[int, str, str]:
    """Start the container's command as the kubelet would (plain env values); returns (code, message, stderr)."""
    assert container["command"][0] == "dagwright-node-runner" and "args" not in container
    termination = tmp_path / "load-termination-log"
    env = {**os.environ, **{var["name"]: var["value"] for var in container["env"] if "value" in var}}
    env["DAGWRIGHT_TERMINATION_LOG"] = str(termination)
    done = subprocess.run([*RUNNER, *container["command"][1:]], env=env, capture_output=True, text=True, timeout=60)
    message = termination.read_text() if termination.exists() else ""
    return done.returncode, message, done.stderr


def test_10_kib_outputs_reach_the_downstream_commands_args_and_env(tmp_path: Path, redis_server: RedisServer) -> None:
    reference = _upstream_stores(tmp_path, redis_server.url)
    out = tmp_path / "seen"
    out.mkdir()
    container = _downstream_container(reference, redis_server.url, out)

    code, _, stderr = _run_container(tmp_path, container)

    assert code == 0, stderr
    assert (out / "arg1").read_text() == BLOB
    assert (out / "env").read_text() == BLOB
    # Rendered once: a parameter that looks like a template (or a kubelet $(VAR)) arrives as written.
    assert (out / "arg2").read_text() == "{{ nodes.extract.outputs.blob }} $(HOME)"


def test_outputs_gone_from_redis_fail_the_node_for_good_naming_the_upstream(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    reference = _upstream_stores(tmp_path, redis_server.url)
    redis_server.client().delete(reference)  # as if its TTL ran out
    out = tmp_path / "seen"
    out.mkdir()

    code, message, stderr = _run_container(tmp_path, _downstream_container(reference, redis_server.url, out))

    assert code == nodeio.EXIT_INPUTS_UNAVAILABLE
    carried = nodeio.read_termination(message, succeeded=False)
    assert carried.error_reason == "InputsUnavailable"
    assert (
        carried.error_message is not None and "outputs of node extract are no longer in Redis" in carried.error_message
    )
    assert "Traceback" not in stderr
    assert not (out / "arg1").exists()  # the command never ran


def test_redis_down_is_the_transient_exit_code(tmp_path: Path, redis_server: RedisServer) -> None:
    reference = _upstream_stores(tmp_path, redis_server.url)
    out = tmp_path / "seen"
    out.mkdir()
    container = _downstream_container(reference, redis_server.url, out)
    redis_server.stop()

    code, message, stderr = _run_container(tmp_path, container)

    assert code == nodeio.EXIT_RUNNER_UNAVAILABLE
    assert nodeio.read_termination(message, succeeded=False).error_reason == "RunnerUnavailable"
    assert "unreachable" in stderr and not (out / "arg1").exists()


def test_a_rendered_argument_longer_than_exec_takes_names_the_node_and_field(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    reference = _upstream_stores(tmp_path, redis_server.url, blob="'y' * 200_000")
    out = tmp_path / "seen"
    out.mkdir()

    code, message, stderr = _run_container(tmp_path, _downstream_container(reference, redis_server.url, out))

    assert code == nodeio.EXIT_INVALID_INPUTS
    carried = nodeio.read_termination(message, succeeded=False)
    assert carried.error_reason == "InputsTooLarge"
    assert carried.error_message is not None and "node load: args[0] is 200000 bytes" in carried.error_message
    assert "MAX_ARG_STRLEN" in carried.error_message and "Traceback" not in stderr
