"""Launch latency: from a dependency's completion to the dependent node's Job being created (p50 50 ms, p99 250 ms).

Chains and diamonds (a few hundred dependency edges) run at once through the operator. A client-side watch
on the namespace's Jobs records when each Job was first seen and when it was first seen Complete; a node's
launch latency is (its Job first seen) - (the last of its dependencies' Jobs seen Complete). The operator's
own watch hears the same Complete events at about the same moment, so this is its reaction time plus one
create round trip, measured with the API server's event stream rather than its 1 s timestamps. The
operator's `dagwright_launch_latency_seconds` histogram is printed as a second figure.

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
    s.figure("launch latency p50 (watch; target 50 ms)", s.ms(s.percentile(latencies, 0.50)))
    s.figure("launch latency p90 (watch)", s.ms(s.percentile(latencies, 0.90)))
    s.figure("launch latency p99 (watch; target 250 ms)", s.ms(s.percentile(latencies, 0.99)))
    s.figure("launch latency max (watch)", s.ms(max(latencies)))
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
