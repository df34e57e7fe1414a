"""Operator peak RSS with 1,000 workflows of 20 nodes in flight (target <= 250 MB).

Each workflow is a 20-node chain, so every workflow is Running from its first launch to its end with one Job
in flight at a time, while the operator's cache accumulates the finished Jobs and pods of the nodes done so
far. The operator's VmRSS is sampled every second for `--hold` seconds after all workflows are created; the
figure is the process's own high-water mark (VmHWM in /proc/PID/status). With `--finish` the run lasts until
every workflow has succeeded (about 20,000 Jobs: long on a plane with the default Job-controller QPS).

    python bench/operator_memory.py [--workflows 1000] [--nodes 20] [--hold 240] [--finish]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as s


def count_objects(kube: s.Cluster, namespace: str) -> tuple[int, int, int]:
    """(Jobs, Jobs complete, pods) in the namespace."""
    jobs = json.loads(kube.batch.list_namespaced_job(namespace, _preload_content=False).data)["items"]
    done = sum(
        1
        for job in jobs
        if any(c.get("type") == "Complete" and c.get("status") == "True" for c in job["status"].get("conditions") or [])
    )
    pods = json.loads(kube.core.list_namespaced_pod(namespace, _preload_content=False).data)["items"]
    return len(jobs), done, len(pods)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--hold", type=float, default=240, help="seconds to keep sampling after creation")
    parser.add_argument("--finish", action="store_true", help="run until every workflow succeeded")
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator flag (repeatable)")
    args = parser.parse_args()
    kube = s.cluster()
    bodies = [s.workflow(f"wf{i:04d}", s.chain(args.nodes)) for i in range(args.workflows)]
    with s.namespace(kube, "bench-memory") as ns, s.operator(kube, ns, *args.operator_arg) as op:
        idle = op.memory_kib()
        started = time.monotonic()
        s.create_workflows(kube, ns, bodies)
        created = time.monotonic() - started
        s.note(f"{args.workflows} workflows created in {created:.1f}s")
        samples: list[int] = []
        deadline = time.monotonic() + args.hold
        while time.monotonic() < deadline or args.finish:
            samples.append(op.memory_kib()["VmRSS"])
            if args.finish and len(samples) % 30 == 0:
                phases = s.workflow_phases(kube, ns)
                if sum(1 for p in phases.values() if p == "Succeeded") >= args.workflows:
                    break
            time.sleep(1)
        jobs, done, pods = count_objects(kube, ns)
        phases = s.workflow_phases(kube, ns)
        memory = op.memory_kib()
        metrics = op.metrics()
    running = sum(1 for p in phases.values() if p == "Running")
    s.figure("workflows x nodes", f"{args.workflows} x {args.nodes}")
    s.figure("create seconds", f"{created:.1f}")
    s.figure("observed seconds", f"{time.monotonic() - started:.0f}")
    s.figure("workflows running at the end", running)
    s.figure("workflows succeeded at the end", sum(1 for p in phases.values() if p == "Succeeded"))
    s.figure("jobs (complete) / pods in the namespace at the end", f"{jobs} ({done}) / {pods}")
    s.figure("reconcile passes", int(metrics.get("dagwright_reconcile_duration_seconds_count", 0)))
    s.figure("operator rss idle MiB", f"{idle['VmRSS'] / 1024:.0f}")
    s.figure("operator rss at the end MiB", f"{memory['VmRSS'] / 1024:.0f}")
    s.figure("operator peak rss MiB (VmHWM; target <= 250 MB = 238 MiB)", f"{memory['VmHWM'] / 1024:.0f}")
    s.figure("operator peak rss MB (VmHWM)", f"{memory['VmHWM'] * 1024 / 1e6:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
