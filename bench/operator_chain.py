"""A 100-node chain through the operator against a bare loop running the same Jobs in order (target <= 1.2).

The bare loop creates one Job, waits on a watch until it is Complete, creates the next: the fastest any
controller could run a chain on this cluster. The operator runs a Workflow whose nodes form the same chain.
Both are timed on the client from the first create to the receipt of the last Job's Complete event (and the
operator also to the Workflow's phase Succeeded).

    python bench/operator_chain.py [--nodes 100] [--workers 4]
    python bench/operator_chain.py --real-node --nodes 20   # real containers on the plane's real node

With --real-node, every Job (the bare loop's and the operator's) runs `true` in dagwright's node-runner image on
the kubelet node (tests/e2e/cluster/node.py) instead of kwok's fake nodes: the ratio then includes real pod
sandboxes and container starts, the same for both sides.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as s


def bare_loop(kube: s.Cluster, length: int, placement: s.Placement) -> float:
    with s.namespace(kube, "bench-chain-bare") as ns, s.JobWatch(kube, ns) as watch:
        batch = kube.batch
        started = time.monotonic()
        for i in range(length):
            name = f"bare-{i:04d}"
            batch.create_namespaced_job(ns, placement.job(s.job_body(name)))
            watch.wait_complete(name, timeout=120)
        return time.monotonic() - started


def operator_run(
    kube: s.Cluster, length: int, extra: list[str], placement: s.Placement
) -> tuple[float, float, dict[str, float]]:
    with s.namespace(kube, "bench-chain-op") as ns, s.operator(kube, ns, *extra) as op, s.JobWatch(kube, ns) as watch:
        body = placement.workflow(s.workflow("chain", s.chain(length)))
        started = time.monotonic()
        s.create_workflows(kube, ns, [body])
        last = watch.wait_complete(f"chain-n{length - 1:05d}-1", timeout=60 + length * 10)
        s.wait_finished(kube, ns, 1, timeout=120, interval=0.1)
        finished = time.monotonic()
        return last - started, finished - started, op.metrics()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator flag (repeatable)")
    parser.add_argument("--real-node", action="store_true", help="run every Job as a real container")
    args = parser.parse_args()
    kube = s.cluster()
    placement = s.real_node_placement() if args.real_node else s.Placement()
    bare = bare_loop(kube, args.nodes, placement)
    last_job, succeeded, metrics = operator_run(kube, args.nodes, args.operator_arg, placement)
    s.figure("pods", "real containers on the real node" if args.real_node else "kwok (simulated)")
    s.figure("chain nodes", args.nodes)
    s.figure("bare loop seconds", f"{bare:.2f}")
    s.figure("bare loop seconds per node", f"{bare / args.nodes:.3f}")
    s.figure("operator seconds (to last Job Complete)", f"{last_job:.2f}")
    s.figure("operator seconds (to Workflow Succeeded)", f"{succeeded:.2f}")
    s.figure("operator seconds per node", f"{last_job / args.nodes:.3f}")
    s.figure("chain ratio operator/bare (target <= 1.2)", f"{last_job / bare:.3f}")
    p50 = s.histogram_quantile(metrics, "dagwright_launch_latency_seconds", 0.5)
    if p50 is not None:
        s.figure("operator launch latency p50 (own histogram)", s.ms(p50))
    return 0


if __name__ == "__main__":
    sys.exit(main())
