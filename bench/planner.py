"""How long one planner call takes on a large workflow, and how that grows with the number of nodes.

    python bench/planner.py [--repeat N] [--profile]

The workflow is layered: 10 layers, each node depending on up to 3 nodes of the layer above. The measured
call is the busiest one a backend makes: the whole first layer (10% of the nodes) is running, every one of
those attempts is reported finished in the same call, and the planner must record them, find the next layer
ready and launch it. Target: median <= 20 ms at 10,000 nodes (the model's maximum).

Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dagwright.planner import AttemptState, Observation, plan
from dagwright.status import WorkflowStatus, to_wire
from dagwright.validation import compile_manifest
from dagwright.workflows import Workflow

LAYERS = 10
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def layered(nodes: int) -> Workflow:
    width = nodes // LAYERS
    specs: list[dict[str, Any]] = []
    for layer in range(LAYERS):
        for i in range(width):
            spec: dict[str, Any] = {"name": f"l{layer}-{i}", "command": ["true"], "args": ["{{ node.name }}"]}
            if layer:
                spec["dependsOn"] = sorted({f"l{layer - 1}-{(i + k * 7) % width}" for k in range(3)})
            specs.append(spec)
    document = {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "bench", "uid": "u"},
        "spec": {"nodes": specs},
    }
    return compile_manifest(document)


def scenario(nodes: int) -> tuple[Workflow, WorkflowStatus, list[Observation], datetime]:
    """The status with the first layer running, and observations of all of it finishing."""
    workflow = layered(nodes)
    first = plan(workflow, None, [], T0)
    assert len(first.launches) == nodes // LAYERS
    finished = T0 + timedelta(seconds=30)
    observations = [
        Observation(launch.node, launch.attempt, AttemptState.SUCCEEDED, exit_code=0, finished_at=finished)
        for launch in first.launches
    ]
    return workflow, first.status, observations, finished


def timed(call: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU times of `repeat` calls: on a busy machine the CPU time is the figure to trust.
    (bench/planner_foreach.py times its calls with this too.)"""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.thread_time()
        call()
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return wall, cpu


def profiled(call: Callable[[], object], times: int = 10) -> None:
    """Print the 25 costliest functions (cumulative) of `times` calls, by cProfile."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(times):
        call()
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)


def measure(nodes: int, repeat: int, freeze: bool = False) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU times of the call (`timed`)."""
    workflow, status, observations, now = scenario(nodes)
    decision = plan(workflow, status, observations, now)
    assert len(decision.launches) == nodes // LAYERS, len(decision.launches)
    if freeze:
        gc.freeze()
    wall, cpu = timed(lambda: plan(workflow, status, observations, now), repeat)
    gc.unfreeze()
    return wall, cpu


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="profile the 10,000-node call with cProfile")
    args = parser.parse_args()

    print(f"one plan() call, {LAYERS} layers, first layer (10%) finishing and the next launching at once")
    print(f"{'':>17} {'---- wall clock ----':>20} {'---- CPU time ----':>27}")
    print(
        f"{'nodes':>7} {'changing':>9} {'median ms':>10} {'p95 ms':>8} {'median ms':>10} {'p95 ms':>8} {'us/node':>8}"
    )
    for nodes in (1_000, 2_500, 5_000, 10_000):
        wall, cpu = measure(nodes, args.repeat)
        median = statistics.median(cpu)
        print(
            f"{nodes:>7} {nodes // LAYERS:>9} {statistics.median(wall) * 1e3:>10.2f} {p95(wall) * 1e3:>8.2f} "
            f"{median * 1e3:>10.2f} {p95(cpu) * 1e3:>8.2f} {median / nodes * 1e6:>8.2f}"
        )

    # The p95 above is full garbage collections walking every long-lived object (the workflow's own models
    # among them); a process that freezes what it loaded (gc.freeze()) does not pay for them on every call.
    wall, cpu = measure(10_000, args.repeat, freeze=True)
    print(
        f"10,000 nodes after gc.freeze(): median {statistics.median(cpu) * 1e3:.2f} ms CPU, "
        f"p95 {p95(cpu) * 1e3:.2f} ms CPU (wall: median {statistics.median(wall) * 1e3:.2f}, p95 {p95(wall) * 1e3:.2f})"
    )

    workflow, status, observations, now = scenario(10_000)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("nothing changed", lambda: plan(workflow, status, [], now)),
        ("compile 10,000-node manifest", lambda: layered(10_000)),
    ]
    for label, call in calls:
        _, times = timed(call, max(3, args.repeat // 10))
        print(f"{label}: median {statistics.median(times) * 1e3:.2f} ms CPU")
    decision = plan(workflow, status, observations, now)
    size = len(json.dumps(to_wire(decision.status), separators=(",", ":")))
    print(f"status at 10,000 nodes as compact JSON: {size / 1024:.0f} KiB")

    if args.profile:
        profiled(lambda: plan(workflow, status, observations, now))
    return 0


if __name__ == "__main__":
    sys.exit(main())
