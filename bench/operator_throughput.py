"""Throughput: 100 workflows x 50 nodes through the operator, as a ratio of the cluster's own Job ceiling.

The ceiling is bench/cluster_jobs.py's measurement (a plain loop creates N single-pod Jobs, then waits until
all are Complete), taken on the same plane in the same session, before the operator run. Each workflow is 5
layers of 10 nodes (node j of a layer depends on nodes j and j+1 of the layer above). Throughput is nodes
completed per second, from the first Workflow create to the last Job seen Complete.

The same run gives API write requests per node attempt (target <= 3): the API server's
apiserver_request_total delta by resource and verb over the operator run, the writes the bare Jobs caused per
Job subtracted (the Job controller, scheduler and kwok do the same for the operator's Jobs), and the
operator's own count of its requests (dagwright_api_requests_total).

    python bench/operator_throughput.py [--workflows 100] [--width 10 --depth 5] [--ceiling-jobs 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--width", type=int, default=10)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--ceiling-jobs", type=int, default=500)
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator flag (repeatable)")
    args = parser.parse_args()
    kube = s.cluster()

    ceiling = s.cluster_ceiling(kube, args.ceiling_jobs)
    s.figure("ceiling jobs", ceiling.jobs)
    s.figure("ceiling seconds", f"{ceiling.seconds:.1f}")
    s.figure("ceiling jobs/s", f"{ceiling.jobs_per_second:.2f}")
    s.figure("ceiling api writes per job", f"{sum(ceiling.writes.values()) / ceiling.jobs:.2f}")

    nodes = args.width * args.depth
    total = args.workflows * nodes
    bodies = [s.workflow(f"wf{i:04d}", s.layered(args.width, args.depth)) for i in range(args.workflows)]
    with (
        s.namespace(kube, "bench-throughput") as ns,
        s.operator(kube, ns, *args.operator_arg) as op,
        s.JobWatch(kube, ns) as watch,
    ):
        before = s.apiserver_writes(kube)
        cpu_before = op.cpu_seconds()
        started = time.monotonic()
        s.create_workflows(kube, ns, bodies)
        s.note(f"{args.workflows} workflows created")
        watch.wait_count_complete(total, timeout=max(900, total / max(ceiling.jobs_per_second, 0.1) * 3))
        last = max(watch.times.complete.values())
        s.wait_finished(kube, ns, args.workflows, timeout=300)
        finished = time.monotonic()
        time.sleep(3)
        writes = s.delta(s.apiserver_writes(kube), before)
        metrics = op.metrics()
        cpu = op.cpu_seconds() - cpu_before
        memory = op.memory_kib()

    seconds = last - started
    rate = total / seconds
    s.figure("workflows x nodes", f"{args.workflows} x {nodes}")
    s.figure("operator seconds (to last Job Complete)", f"{seconds:.1f}")
    s.figure("operator seconds (to all Succeeded)", f"{finished - started:.1f}")
    s.figure("operator nodes/s", f"{rate:.2f}")
    s.figure("throughput ratio operator/ceiling", f"{rate / ceiling.jobs_per_second:.3f}")
    s.figure("operator cpu seconds", f"{cpu:.1f}")
    s.figure("operator cpu ms per node", f"{cpu / total * 1000:.1f}")
    s.figure("operator peak rss MiB", f"{memory['VmHWM'] / 1024:.0f}")

    attempts = metrics.get("dagwright_attempts_started_total", float(total))
    s.figure("node attempts", int(attempts))
    s.figure("job watch relists", watch.relists - 1)
    # The API server counts every client. The bare loop's writes per Job are what the Job controller, the
    # scheduler and kwok do for any Job (plus the loop's own Job POST): subtract them from events (the Job
    # controller and scheduler post events too); the operator is the only writer of workflows/status here,
    # and the only creator of Jobs in its namespace.
    bare = dict(s.writes_table(ceiling.writes, ceiling.jobs))
    run = dict(s.writes_table(writes, attempts))
    for key in sorted(run, key=lambda k: -run[k]):
        if run[key] >= 0.005:
            s.figure(
                f"api writes per attempt {key} (operator run / bare Jobs run)",
                f"{run[key]:.2f} / {bare.get(key, 0):.2f}",
            )
    operator_writes = {
        "workflows/status PATCH": run.get("workflows/status PATCH", 0.0),
        "jobs POST": run.get("jobs POST", 0.0),
        "jobs DELETE": max(0.0, run.get("jobs DELETE", 0.0) - bare.get("jobs DELETE", 0.0)),
        "jobs PATCH": max(0.0, run.get("jobs PATCH", 0.0) - bare.get("jobs PATCH", 0.0)),
        "events POST": max(0.0, run.get("events POST", 0.0) - bare.get("events POST", 0.0)),
    }
    for key, value in operator_writes.items():
        s.figure(f"operator api writes per attempt {key} (API server metrics)", f"{value:.2f}")
    total_writes = sum(operator_writes.values())
    s.figure("operator api writes per attempt (API server metrics; target <= 3)", f"{total_writes:.2f}")
    own = {k: v for k, v in metrics.items() if k.startswith("dagwright_api_requests_total{")}
    own_writes = 0.0
    for key, value in sorted(own.items()):
        labels = s.labels_of(key)
        what = f"{labels['resource']} {labels['verb']}"
        s.figure(f"operator's own requests per attempt {what}", f"{value / attempts:.2f}")
        if labels["verb"] in s.WRITE_VERBS:
            own_writes += value
    if own:
        s.figure("operator's own write requests per attempt (target <= 3)", f"{own_writes / attempts:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
