"""The floor under the cron schedule lag: N Workflows created at one instant by 16 threads, with no operator.

What `cron_lag.py` measures is (scheduled time) -> (its run's Workflow created). Even an operator that did
nothing but create would need the API server to write N Workflows at once; this bench does only that, from as
many threads as the operator has cron workers, and prints when each create returned (after the instant) and
the API server's own mean POST latency for workflows over the same creates (`apiserver_request_duration_seconds`).
The runs are the same one-node Workflow as the lag bench's, with the same labels; nothing runs them.

    python bench/cron_floor.py [--count 200] [--rounds 3] [--threads 16]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as s
from cron_lag import cron_body


def run_bodies(count: int, round_: int) -> list[dict[str, Any]]:
    spec = cron_body("x")["spec"]["workflow"]
    stamp = str(1_800_000_000 + round_ * 60)
    labels = {"dagwright.io/cron-workflow": "floor", "dagwright.io/scheduled-time": stamp}
    return [
        {
            "apiVersion": f"{s.GROUP}/{s.VERSION}",
            "kind": "Workflow",
            "metadata": {"name": f"c{i:03d}-{stamp}", "labels": labels},
            "spec": spec,
        }
        for i in range(count)
    ]


def create_at_once(kube: s.Cluster, namespace: str, bodies: list[dict[str, Any]], threads: int) -> list[float]:
    """Seconds from the start to each create's return."""
    pending = list(bodies)
    lock = threading.Lock()
    done: list[float] = []
    start = time.time()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                body = pending.pop(0)
            kube.custom.create_namespaced_custom_object(s.GROUP, s.VERSION, namespace, s.PLURAL, body)
            with lock:
                done.append(time.time() - start)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return sorted(done)


def post_latency(kube: s.Cluster) -> tuple[float, float]:
    """(sum, count) of the API server's POST workflows request duration histogram."""
    total = count = 0.0
    for key, value in s.parse_metrics(kube.kubectl("get", "--raw", "/metrics").stdout).items():
        if 'resource="workflows"' not in key or 'verb="POST"' not in key:
            continue
        if key.startswith("apiserver_request_duration_seconds_sum{"):
            total += value
        elif key.startswith("apiserver_request_duration_seconds_count{"):
            count += value
    return total, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    kube = s.cluster()
    with s.namespace(kube, "bench-cron-floor") as ns:
        for round_ in range(args.rounds):
            before = post_latency(kube)
            done = create_at_once(kube, ns, run_bodies(args.count, round_), args.threads)
            after = post_latency(kube)
            server = (after[0] - before[0]) / max(1.0, after[1] - before[1])
            label = f"round {round_ + 1}: {args.count} creates, {args.threads} threads"
            s.figure(f"{label}: p50 / p99 / last returned", f"{s.ms(s.percentile(done, 0.5))} / "
                     f"{s.ms(s.percentile(done, 0.99))} / {s.ms(done[-1])}")  # fmt: skip
            s.figure(f"{label}: API server mean POST workflows latency", s.ms(server))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
