"""Launch latency: from a dependency's completion to the dependent node's Job being created (p50 50 ms, p99 250 ms).

Chains and diamonds (a few hundred dependency edges) run at once through the operator. Client-side watches
record, with the API server's event stream rather than its 1 s timestamps:

- pods (the figure users and bench/peers/run.py compare): a node's launch latency is (its pod first seen) -
  (the last of its dependencies' pods first seen Succeeded or Failed): the operator's reaction to the pod,
  its Job create, and the Job controller's pod create;
- Jobs: (its Job first seen) - (the last of its dependencies' Jobs first seen Complete). The operator reads an
  attempt's end from its pod, before the Job controller writes the Job's condition (about a second later), so
  this one can be negative: the dependent's Job exists before its dependency's Job says Complete.

The operator's `dagwright_launch_latency_seconds` histogram (dependency's end first seen -> Job created) is
printed as a third figure.

    python bench/operator_latency.py [--chains 4 --chain-length 40] [--diamonds 4 --diamond-count 12]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as s


def edges(bodies: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Dependent Job name -> its dependencies' Job names (first attempts)."""
    found: dict[str, list[str]] = {}
    for body in bodies:
        wf = body["metadata"]["name"]
        for node in body["spec"]["nodes"]:
            if node.get("dependsOn"):
                found[f"{wf}-{node['name']}-1"] = [f"{wf}-{dep}-1" for dep in node["dependsOn"]]
    return found


def node_of(pod: dict[str, Any]) -> s.PodKey | None:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if "dagwright.io/workflow" not in labels or "dagwright.io/node" not in labels:
        return None
    return labels["dagwright.io/workflow"], labels["dagwright.io/node"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--chain-length", type=int, default=40)
    parser.add_argument("--diamonds", type=int, default=4, help="workflows made of diamonds in a row")
    parser.add_argument("--diamond-count", type=int, default=12, help="diamonds per such workflow")
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator flag (repeatable)")
    args = parser.parse_args()

    bodies = [s.workflow(f"chain{i}", s.chain(args.chain_length)) for i in range(args.chains)]
    bodies += [s.workflow(f"diamond{i}", s.diamonds(args.diamond_count)) for i in range(args.diamonds)]
    deps = edges(bodies)
    jobs = sum(len(body["spec"]["nodes"]) for body in bodies)
    kube = s.cluster()
    with (
        s.namespace(kube, "bench-latency") as ns,
        s.operator(kube, ns, *args.operator_arg) as op,
        s.JobWatch(kube, ns) as watch,
        s.PodWatch(kube, ns, node_of) as pods,
    ):
        started = time.monotonic()
        s.create_workflows(kube, ns, bodies)
        watch.wait_count_complete(jobs, timeout=120 + jobs * 2)
        s.wait_finished(kube, ns, len(bodies), timeout=120)
        elapsed = time.monotonic() - started
        metrics = op.metrics()
    times = watch.times
    latencies = [times.created[job] - max(times.complete[p] for p in parents) for job, parents in deps.items()]
    s.figure(
        "workflows", f"{args.chains} chains x {args.chain_length}, {args.diamonds} x {args.diamond_count} diamonds"
    )
    s.figure("jobs", jobs)
    s.figure("dependency edges", sum(len(p) for p in deps.values()))
    s.figure("dependent launches measured", len(latencies))
    s.figure("job watch relists", watch.relists - 1)
    s.figure("wall seconds", f"{elapsed:.1f}")
    parents = {
        (body["metadata"]["name"], node["name"]): [(body["metadata"]["name"], dep) for dep in node["dependsOn"]]
        for body in bodies
        for node in body["spec"]["nodes"]
        if node.get("dependsOn")
    }
    by_pod = [
        pods.times.created[node] - max(pods.times.done[dep] for dep in deps)
        for node, deps in parents.items()
        if node in pods.times.created and all(dep in pods.times.done for dep in deps)
    ]
    reaction = [
        watch.times.created[f"{wf}-{name}-1"] - max(pods.times.done[dep] for dep in deps)
        for (wf, name), deps in parents.items()
        if f"{wf}-{name}-1" in watch.times.created and all(dep in pods.times.done for dep in deps)
    ]
    s.figure("pod launches measured", len(by_pod))
    for q in (0.5, 0.9, 0.99):
        s.figure(f"launch latency p{int(q * 100)} (pod done -> dependent's pod created)", s.ms(s.percentile(by_pod, q)))
    for q in (0.5, 0.99):
        # The operator's part of it; the rest is the Job controller creating the pod of the new Job.
        name = f"launch latency p{int(q * 100)} (pod done -> dependent's Job created)"
        s.figure(name, s.ms(s.percentile(reaction, q)))
    s.figure("launch latency p50 (Job watch; target 50 ms)", s.ms(s.percentile(latencies, 0.50)))
    s.figure("launch latency p90 (Job watch)", s.ms(s.percentile(latencies, 0.90)))
    s.figure("launch latency p99 (Job watch; target 250 ms)", s.ms(s.percentile(latencies, 0.99)))
    s.figure("launch latency max (Job watch)", s.ms(max(latencies)))
    kinds: dict[str, list[float]] = {"chain link": [], "fan-out (diamond side)": [], "fan-in (diamond bottom)": []}
    for (job, parents), latency in zip(deps.items(), latencies, strict=True):
        kind = "chain link" if job.startswith("chain") else "fan-in (diamond bottom)" if len(parents) > 1 else None
        if kind is None:
            kind = "fan-out (diamond side)" if "-l-" in job or "-r-" in job else "chain link"
        kinds[kind].append(latency)
    for kind, values in kinds.items():
        if values:
            p50, p99 = s.ms(s.percentile(values, 0.5)), s.ms(s.percentile(values, 0.99))
            s.figure(f"launch latency {kind} p50 / p99 (watch; {len(values)} launches)", f"{p50} / {p99}")
    for q in (0.5, 0.99):
        value = s.histogram_quantile(metrics, "dagwright_launch_latency_seconds", q)
        if value is not None:
            s.figure(f"launch latency p{int(q * 100)} (operator histogram)", s.ms(value))
    count = metrics.get("dagwright_reconcile_duration_seconds_count", 0)
    if count:
        mean = metrics["dagwright_reconcile_duration_seconds_sum"] / count
        s.figure("reconcile passes", int(count))
        s.figure("reconcile pass mean", s.ms(mean))
        s.figure(
            "reconcile pass p99 (histogram)",
            s.ms(s.histogram_quantile(metrics, "dagwright_reconcile_duration_seconds", 0.99) or 0),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
