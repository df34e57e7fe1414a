"""How long one planner call takes on a forEach node of 10,000 items, and how large its stored status is.

    python bench/planner_foreach.py [--repeat N] [--items N] [--profile]

The workflow is map-reduce: `find` lists 10,000 shards, `work` fans out over them (`maxParallel: 1000`), `sum`
reads every item's output. The measured call is the busiest one: 1,000 items are running, all of them are
reported finished (each with an output) in the same call, and the planner must record them and launch the
next 1,000. Target: median <= 20 ms. Compare with `bench/planner.py` (10,000 plain nodes, 1,000 changing).
Then the status' size: as compact JSON, and as the operator stores it (`k8s.reconcile.status_patch`: the node
map compressed above 1,000 nodes or items), mid-run and once every item succeeded.

Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import UTC, datetime, timedelta

from planner import profiled, timed  # bench/planner.py: the same timing for both

from dagwright.k8s.reconcile import status_patch
from dagwright.planner import AttemptState, Decision, Observation, plan
from dagwright.status import WorkflowStatus, to_wire
from dagwright.validation import compile_manifest
from dagwright.workflows import Workflow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WAVE = 1_000


def map_reduce() -> Workflow:
    document = {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "bench", "uid": "u"},
        "spec": {
            "nodes": [
                {"name": "find", "command": ["find"]},
                {
                    "name": "work",
                    "dependsOn": ["find"],
                    "forEach": {"fromJSON": "{{ nodes.find.outputs.shards }}", "maxParallel": WAVE},
                    "command": ["work", "{{ item }}", "{{ node.index }}"],
                },
                {"name": "sum", "dependsOn": ["work"], "command": ["sum"], "args": ["{{ nodes.work.outputs.n }}"]},
            ]
        },
    }
    return compile_manifest(document)


def finished(decision: Decision, at: datetime) -> list[Observation]:
    return [
        Observation(
            launch.node,
            launch.attempt,
            AttemptState.SUCCEEDED,
            exit_code=0,
            finished_at=at,
            outputs={"n": launch.item},
            item=launch.item,
        )
        for launch in decision.launches
    ]


def scenario(items: int, waves: int) -> tuple[Workflow, WorkflowStatus, list[Observation], datetime]:
    """The status after `waves` waves of 1,000 items, with the next wave running, and its outcomes."""
    workflow = map_reduce()
    now = T0
    decision = plan(workflow, None, [], now)
    shards = {"shards": list(range(items))}
    decision = plan(workflow, decision.status, [Observation("find", 1, AttemptState.SUCCEEDED, outputs=shards)], now)
    for _ in range(waves):
        now += timedelta(seconds=30)
        decision = plan(workflow, decision.status, finished(decision, now), now)
    now += timedelta(seconds=30)
    return workflow, decision.status, finished(decision, now), now


def stored_size(status: WorkflowStatus) -> tuple[int, int]:
    """(compact JSON bytes, bytes of the status as the operator writes it)."""
    plain = len(json.dumps(to_wire(status), separators=(",", ":")))
    stored = len(json.dumps(status_patch({}, None, status), separators=(",", ":")))
    return plain, stored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    workflow, status, observations, now = scenario(args.items, waves=4)
    decision = plan(workflow, status, observations, now)
    assert len(decision.launches) == min(WAVE, args.items - 5 * WAVE), len(decision.launches)
    wall, cpu = timed(lambda: plan(workflow, status, observations, now), args.repeat)
    print(f"one plan() call, forEach of {args.items} items, {WAVE} finishing and {WAVE} launching at once")
    print(
        f"  CPU median {statistics.median(cpu) * 1e3:.2f} ms, p95 {sorted(cpu)[int(0.95 * len(cpu)) - 1] * 1e3:.2f} ms"
    )
    print(f"  wall median {statistics.median(wall) * 1e3:.2f} ms")
    _, quiet = timed(lambda: plan(workflow, decision.status, [], now), max(3, args.repeat // 5))
    print(f"  nothing changed: median {statistics.median(quiet) * 1e3:.2f} ms CPU")

    plain, stored = stored_size(decision.status)
    print(f"status mid-run (6,000 done, 1,000 running): {plain / 1024:.0f} KiB as JSON, {stored / 1024:.0f} KiB stored")
    last = decision
    while not last.status.phase.finished:
        now += timedelta(seconds=30)
        last = plan(workflow, last.status, finished(last, now) if last.launches else [], now)
        if last.launches and last.launches[0].node == "sum":
            now += timedelta(seconds=30)
            last = plan(workflow, last.status, [Observation("sum", 1, AttemptState.SUCCEEDED)], now)
    plain, stored = stored_size(last.status)
    print(f"status when every item succeeded: {plain / 1024:.0f} KiB as JSON, {stored / 1024:.0f} KiB stored")

    if args.profile:
        profiled(lambda: plan(workflow, status, observations, now))
    return 0


if __name__ == "__main__":
    sys.exit(main())
