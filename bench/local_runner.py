"""What the local runner costs on top of the processes it runs.

    python bench/local_runner.py [--chains 10] [--length 100] [--rounds 3]

The workflow is 10 independent chains of 100 nodes running `true` (1,000 processes, at most 10 at once). Its
wall time (in-process `run()`, and `dagwright run` end to end) is compared with two bare loops spawning the same
1,000 processes: one at a time (`subprocess.Popen(['true']).wait()`), and 10 at a time (10 threads, each a
sequential chain, like the workflow). Target: runner / bare loop <= 1.5.

Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from dagwright.local.runner import RunOptions, run
from dagwright.status import WorkflowPhase
from dagwright.validation import compile_manifest


def manifest(chains: int, length: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    for chain in range(chains):
        for step in range(length):
            node: dict[str, Any] = {"name": f"c{chain}-{step}", "command": ["true"]}
            if step:
                node["dependsOn"] = [f"c{chain}-{step - 1}"]
            nodes.append(node)
    return {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "bench"},
        "spec": {"nodes": nodes},
    }


def bare_sequential(chains: int, length: int) -> None:
    for _ in range(chains * length):
        subprocess.Popen(["true"]).wait()


def bare_parallel(chains: int, length: int) -> None:
    def chain() -> None:
        for _ in range(length):
            subprocess.Popen(["true"]).wait()

    threads = [threading.Thread(target=chain) for _ in range(chains)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def runner_in_process(chains: int, length: int) -> None:
    workflow = compile_manifest(manifest(chains, length))
    with tempfile.TemporaryDirectory() as logs:
        status = run(workflow, None, RunOptions(logs_dir=Path(logs)))
    assert status.phase is WorkflowPhase.SUCCEEDED, status.message


def runner_cli(chains: int, length: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bench.yaml"
        path.write_text(yaml.safe_dump(manifest(chains, length)))
        command = [sys.executable, "-m", "dagwright.cli", "run", str(path), "--logs-dir", str(Path(scratch) / "logs")]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "TERM": "dumb"})


def timed(
    functions: Mapping[str, Callable[[int, int], None]], chains: int, length: int, rounds: int
) -> dict[str, list[float]]:
    """Wall times of each function over `rounds`, interleaved so that a busy moment hits all alike."""
    wall: dict[str, list[float]] = {label: [] for label in functions}
    for _ in range(rounds):
        for label, function in functions.items():
            started = time.perf_counter()
            function(chains, length)
            wall[label].append(time.perf_counter() - started)
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    total = args.chains * args.length
    print(f"{total} processes running `true`: {args.chains} chains of {args.length}; {args.rounds} rounds")
    functions = {
        "bare loop, one at a time": bare_sequential,
        f"bare loop, {args.chains} at a time": bare_parallel,
        "runner, in process": runner_in_process,
        "runner, `dagwright run`": runner_cli,
    }
    times = timed(functions, args.chains, args.length, args.rounds)
    print(f"  {'':<28} {'median':>8} {'best':>8} {'ms/process (best)':>18}")
    for label, wall in times.items():
        print(f"  {label:<28} {statistics.median(wall):7.2f}s {min(wall):7.2f}s {min(wall) / total * 1e3:18.2f}")
    # On a busy machine the best round is the fairest estimate of what each one costs by itself.
    sequential = min(times["bare loop, one at a time"])
    parallel = min(times[f"bare loop, {args.chains} at a time"])
    for label in ("runner, in process", "runner, `dagwright run`"):
        best = min(times[label])
        print(
            f"  {label}: {best / sequential:.2f}x one at a time, {best / parallel:.2f}x {args.chains} at a time (best)"
        )
    print(f"  load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
